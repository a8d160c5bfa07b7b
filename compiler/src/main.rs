//! `gpt2c`: the compiler's command line.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gpt2c::gpt2::{token_input, Gpt2Config};
use gpt2c::ir::Graph;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "gpt2c",
    version,
    about = "Compiles the GPT-2 LM-head ONNX model into Rust"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a model's interface, configuration and graph before and after each pass.
    Inspect {
        /// The ONNX model file.
        model: PathBuf,
        /// Sequence length to specialize to [default: 1, or the model's static length].
        #[arg(long)]
        len: Option<usize>,
        /// Also list every node after each pass.
        #[arg(long)]
        nodes: bool,
        /// Switch optional passes off (comma-separated: fuse-layernorm, fuse-gelu,
        /// fuse-attention, tie-weights, fuse-linear, fuse-linear-gelu, fold-copies,
        /// fold-attention-layout).
        #[arg(long, value_delimiter = ',')]
        disable: Vec<String>,
        /// Show the graph at one stage in detail: every node with its shapes, FLOPs and
        /// bytes, totals, and the sequence analysis or memory plan (import, specialize,
        /// simplify, fuse, sequence, plan, or an optional pass's name).
        #[arg(long, value_name = "STAGE")]
        stop_after: Option<String>,
        /// Print JSON instead of text (every stage, or the one of --stop-after).
        #[arg(long, conflicts_with = "dot")]
        json: bool,
        /// Print a Graphviz digraph of one stage (--stop-after, default fuse).
        #[arg(long)]
        dot: bool,
    },
    /// Compile a model into a standalone crate: DIR/Cargo.toml, DIR/src/{lib,main,model}.rs
    /// and a weight object (DIR/gpt2c_weights_*.o); `cargo build --release` in DIR builds it.
    Emit {
        /// The ONNX model file.
        model: PathBuf,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
        /// The runtime crate (gpt2rt) the package depends on [default: runtime/ of the
        /// source tree gpt2c was built from].
        #[arg(long, value_name = "DIR")]
        runtime_path: Option<PathBuf>,
        /// How to store the weight matrices: f32, bf16, f16, q8 or q4 [default: GPT2_WEIGHTS,
        /// or f32].
        #[arg(long, value_name = "FORMAT")]
        weights: Option<String>,
        /// How to store the attention cache: f32, f16, bf16 or q8 [default: GPT2_KV, or f32].
        #[arg(long, value_name = "FORMAT")]
        kv: Option<String>,
    },
    /// Measure what a weight format costs: the f32 model and the model with its matrices
    /// rounded to the format, through the reference interpreter on fixed token sequences.
    Accuracy {
        /// The ONNX model file.
        model: PathBuf,
        /// Weight format: f32, bf16, f16, q8 or q4 (as `GPT2_WEIGHTS`).
        #[arg(long)]
        format: String,
        /// Attention-cache format: f32, f16, bf16 or q8 (as `GPT2_KV`).
        #[arg(long, default_value = "f32")]
        kv: String,
        /// Token sequences to run.
        #[arg(long, default_value_t = 4)]
        sequences: usize,
        /// Tokens per sequence (at most the context).
        #[arg(long, default_value_t = 32)]
        len: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Inspect {
            model,
            len,
            nodes,
            disable,
            stop_after,
            json,
            dot,
        } => {
            let format = if json {
                Format::Json
            } else if dot {
                Format::Dot
            } else {
                Format::Text
            };
            inspect(&model, len, nodes, &disable, stop_after.as_deref(), format)
        }
        Cmd::Emit {
            model,
            out,
            runtime_path,
            weights,
            kv,
        } => emit(
            &model,
            &out,
            runtime_path,
            weights.as_deref(),
            kv.as_deref(),
        ),
        Cmd::Accuracy {
            model,
            format,
            kv,
            sequences,
            len,
        } => accuracy(&model, &format, &kv, sequences, len),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn accuracy(model: &Path, format: &str, kv: &str, sequences: usize, len: usize) -> Result<()> {
    let format = gpt2c::codegen::layout::WeightFormat::parse(format).map_err(anyhow::Error::msg)?;
    let kv = gpt2rt::kv::KvFormat::parse(kv).map_err(|e| anyhow::anyhow!("--kv: {e}"))?;
    if sequences == 0 || len == 0 {
        anyhow::bail!("--sequences and --len must be at least 1");
    }
    let t = Instant::now();
    let graph = gpt2c::gpt2::bind_side_inputs(&gpt2c::onnx::load_graph(model)?)?;
    let r = gpt2c::accuracy::measure(&graph, format, kv, sequences, len)?;
    println!(
        "{r} of {} tokens ({:.1} s)",
        r.positions / sequences,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The weight format `GPT2_WEIGHTS` asks for (f32 when unset).
fn weight_format_from_env() -> Result<gpt2c::codegen::layout::WeightFormat> {
    gpt2c::codegen::layout::WeightFormat::parse(&std::env::var("GPT2_WEIGHTS").unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("GPT2_WEIGHTS: {e}"))
}

/// `GPT2C_DISABLE_PASSES=fuse-gelu,tie-weights`: optional passes switched off.
fn disabled_passes_from_env() -> Vec<String> {
    std::env::var("GPT2C_DISABLE_PASSES")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn emit(
    model: &Path,
    out: &Path,
    runtime: Option<PathBuf>,
    weights: Option<&str>,
    kv: Option<&str>,
) -> Result<()> {
    let t = Instant::now();
    let runtime = runtime.unwrap_or_else(gpt2c::emit::default_runtime_path);
    // The CLI honours the variables the build script does; the library takes arguments.
    let format = match weights {
        Some(w) => gpt2c::codegen::layout::WeightFormat::parse(w)
            .map_err(|e| anyhow::anyhow!("--weights: {e}"))?,
        None => weight_format_from_env()?,
    };
    let kv = match kv {
        Some(k) => gpt2rt::kv::KvFormat::parse(k).map_err(|e| anyhow::anyhow!("--kv: {e}"))?,
        None => gpt2rt::kv::KvFormat::parse(&std::env::var("GPT2_KV").unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("GPT2_KV: {e}"))?,
    };
    let options = gpt2c::driver::CompileOptions {
        weights: format,
        kv,
        disabled: disabled_passes_from_env(),
        fold_budget: None,
        // The emitted crate is built where gpt2c runs unless it is cross-compiled.
        machine: Default::default(),
    };
    let e = {
        let _progress = gpt2c::progress::Progress::start();
        gpt2c::emit::emit_crate(model, out, &runtime, &options)?
    };
    let s = &e.compiled.summary;
    println!(
        "wrote crate '{}' in {} ({:.1} s): {}",
        e.package,
        out.display(),
        t.elapsed().as_secs_f64(),
        e.files.join(", ")
    );
    println!(
        "  model.rs {} lines, {} statements; weight object {} weights, {} bytes; arenas {} f32 + {} i64",
        s.source_lines, s.statements, s.weights, s.weight_bytes, s.arena_f32, s.arena_i64
    );
    println!("  runtime {}", e.runtime.display());
    if let (true, Some(c)) = (
        e.files.iter().any(|f| f == "src/main.rs"),
        e.compiled.config,
    ) {
        // "The quick brown" in GPT-2's vocabulary, when the model has it.
        let ids = if c.vocab > 7586 {
            "464,2068,7586"
        } else {
            "1,2,3"
        };
        println!(
            "  run it: cd {} && cargo run --release -- {ids}",
            out.display()
        );
    } else {
        println!("  no runner (src/main.rs): the graph is not a GPT-2 LM head taking token ids");
    }
    Ok(())
}

fn histogram(g: &Graph) -> String {
    g.op_histogram()
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_nodes(g: &Graph) {
    for n in &g.nodes {
        let sig = gpt2c::inspect::node_signature(g, n);
        let (outs, ins) = sig.split_once(" <- ").unwrap_or((&sig, ""));
        println!("    {:<24} {:<16} {ins} -> {outs}", n.name, n.op.name());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Dot,
}

fn inspect(
    path: &Path,
    len: Option<usize>,
    nodes: bool,
    disable: &[String],
    stop: Option<&str>,
    format: Format,
) -> Result<()> {
    use gpt2c::inspect::{self as ins, Inspection};
    use gpt2c::progress;
    if let Some(s) = stop {
        ins::check_stage(s, disable).map_err(anyhow::Error::msg)?;
    }
    let t0 = Instant::now();
    let file_len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    // Everything is computed under the progress line, then printed.
    let progress = progress::Progress::start();
    let data = gpt2c::onnx::map_model(path)?;
    progress::stage("decoding", None);
    let loaded = gpt2c::onnx::decode_at(data, path)?;
    progress::stage("importing", None);
    let graph = gpt2c::onnx::import(&loaded.model)?;
    let external = match loaded.data_files.as_slice() {
        [] => String::new(),
        files => format!(
            " + {:.2} MB of external data in {} file{}",
            files.iter().map(|f| f.data.len()).sum::<usize>() as f64 / 1e6,
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        ),
    };
    drop(loaded);
    let graph = gpt2c::gpt2::bind_side_inputs(&graph)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let (name, dims) = token_input(&graph)?;
    let config = Gpt2Config::derive(&graph)?;
    let len = match len {
        Some(l) => l,
        None => match dims.last() {
            Some(gpt2c::ir::Dim::Known(n)) => *n,
            _ => 1,
        },
    };
    config.check_len(&graph, len)?;
    let inputs = vec![(name, gpt2c::gpt2::token_shape(&dims, len))];
    let t1 = Instant::now();
    let result = Inspection::run(&graph, inputs.clone(), disable, stop);
    let passes_ms = t1.elapsed().as_secs_f64() * 1e3;
    drop(progress);
    let result = result?;

    match format {
        Format::Json => {
            let views = match stop {
                Some(s) => vec![result.stage(s)?],
                None => result.all(),
            };
            let info = ins::ModelInfo {
                path: &path.display().to_string(),
                file_bytes: file_len,
                config: Some(&config),
                inputs: &inputs,
                disabled: disable,
            };
            let doc = ins::json_document(&info, &graph, &views);
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(());
        }
        Format::Dot => {
            print!("{}", ins::dot(&result.stage(stop.unwrap_or("fuse"))?));
            return Ok(());
        }
        Format::Text => {}
    }

    let m = &graph.meta;
    println!(
        "model      {} ({:.2} MB{external}), loaded in {load_ms:.0} ms",
        path.display(),
        file_len as f64 / 1e6
    );
    println!(
        "format     ONNX IR {}, opset {}, producer '{}'",
        m.ir_version, m.opset, m.producer
    );
    for (kind, ids) in [("input ", &graph.inputs), ("output", &graph.outputs)] {
        for &id in ids.iter() {
            let v = &graph.values[id];
            println!(
                "{kind}     {} {}",
                v.name,
                v.ty.as_ref().map_or("?".into(), |t| t.to_string())
            );
        }
    }
    let (bytes, params) = graph.weight_stats();
    println!(
        "weights    {params} parameters, {bytes} bytes ({:.2} MB)",
        bytes as f64 / 1e6
    );
    println!(
        "graph      {} nodes: {}",
        graph.nodes.len(),
        histogram(&graph)
    );
    if nodes {
        print_nodes(&graph);
    }
    println!("config     {config}");
    println!("vocabulary size {}", config.vocab);
    // The passes up to the stage asked for (all of them without --stop-after).
    let shown = match stop {
        Some("import") => 0,
        Some(s) => result
            .passes
            .iter()
            .position(|p| p.name == s)
            .map_or(result.passes.len(), |k| k + 1),
        None => result.passes.len(),
    };
    for p in &result.passes[..shown] {
        let g = &p.graph;
        println!("after {} (L={len}): {}", p.name, p.summary);
        println!("           {} nodes: {}", g.nodes.len(), histogram(g));
        println!(
            "           cost per forward: {}",
            ins::totals_line(&ins::totals(g))
        );
        if nodes {
            print_nodes(g);
        }
    }
    match stop {
        Some(s) => {
            println!();
            print!("{}", ins::text(&result.stage(s)?));
        }
        None => {
            if let Ok(v) = result.stage("sequence") {
                print!(
                    "{}",
                    ins::sequence_text(v.graph, v.sequence.expect("analysed"))
                );
            }
            match result.stage("plan") {
                Ok(v) => print!("{}", ins::plan_summary(v.graph, v.plan.expect("planned"))),
                Err(e) => println!("memory     {e}"),
            }
        }
    }
    println!("passes     {passes_ms:.0} ms");
    Ok(())
}
