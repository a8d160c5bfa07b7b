//! `gpt2`: the compiled model as a command-line tool.

use clap::{Parser, Subcommand};
use gpt2::{build_info, Model, GPT2, INPUTS, OUTPUTS, WEIGHT_BYTES};
use gpt2rt::io::TensorRef;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gpt2",
    version,
    about = "GPT-2 compiled to native code by gpt2c (model embedded)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the full forward pass on token ids; write the logits [L, vocab] as raw
    /// little-endian f32 (row-major), exactly the ONNX model's output 0.
    Logits {
        /// Comma-separated token ids, e.g. 464,2068,7586.
        #[arg(long, value_delimiter = ',', required = true, num_args = 1.., allow_negative_numbers = true)]
        ids: Vec<i64>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Worker threads (accepted for the CLI contract; kernels are single-threaded so far).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: u32,
    },
    /// Print the model's dimensions, weight format and bytes, and where its source is.
    Info,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Logits {
            ids,
            out,
            threads: _,
        } => logits(&ids, &out),
        Cmd::Info => {
            info();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn logits(ids: &[i64], out: &Path) -> Result<(), String> {
    let cfg = GPT2.ok_or("the embedded model is not a GPT-2 LM head; `logits` needs one")?;
    let len = INPUTS[0].numel();
    if ids.is_empty() {
        return Err("--ids is empty".into());
    }
    if ids.len() > len {
        return Err(format!(
            "{} ids given; the model's context is {len} tokens",
            ids.len()
        ));
    }
    if let Some((i, bad)) = ids
        .iter()
        .enumerate()
        .find(|(_, &t)| t < 0 || t as usize >= cfg.vocab)
    {
        return Err(format!(
            "token id {bad} at position {i} is outside the vocabulary [0, {})",
            cfg.vocab
        ));
    }
    // The code runs the specialized length; GPT-2 is causal, so padding after the prompt
    // leaves the prompt's rows unchanged.
    let mut input = vec![*ids.last().expect("non-empty"); len];
    input[..ids.len()].copy_from_slice(ids);
    let mut model = Model::new();
    model.forward(&input)?;
    let Some(TensorRef::F32(all)) = model.output(0) else {
        return Err("output 0 is not f32 logits".into());
    };
    let rows = &all[..ids.len() * cfg.vocab];
    let mut bytes = Vec::with_capacity(rows.len() * 4);
    for x in rows {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let mut f =
        std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    f.write_all(&bytes)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(())
}

fn info() {
    let t = std::time::Instant::now();
    let _ = gpt2::Weights::new();
    let startup = t.elapsed();
    println!("model      {}", build_info::MODEL_PATH);
    println!("sha256     {}", build_info::MODEL_SHA256);
    if let Some(c) = GPT2 {
        println!(
            "config     {} layers, {} heads, embedding width {}, vocabulary {}, context {}",
            c.n_layer, c.n_head, c.n_embd, c.vocab, c.n_ctx
        );
    }
    for t in INPUTS {
        println!("input      {} {:?}{:?}", t.name, t.dtype, t.shape);
    }
    for t in OUTPUTS {
        println!("output     {} {:?}{:?}", t.name, t.dtype, t.shape);
    }
    println!(
        "weights    f32, {} bytes ({:.2} MB), embedded in the binary",
        WEIGHT_BYTES,
        WEIGHT_BYTES as f64 / 1e6
    );
    println!(
        "arena      {} bytes of activations",
        gpt2::ARENA_F32 * 4 + gpt2::ARENA_I64 * 8
    );
    println!(
        "source     {} ({} lines)",
        build_info::SOURCE_PATH,
        build_info::SOURCE_LINES
    );
    println!(
        "start-up   weight views in {:.1} us",
        startup.as_secs_f64() * 1e6
    );
}
