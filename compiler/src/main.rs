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
        /// fuse-attention, tie-weights).
        #[arg(long, value_delimiter = ',')]
        disable: Vec<String>,
    },
    /// Compile a model to Rust: writes DIR/model.rs and DIR/weights.bin.
    Emit {
        /// The ONNX model file.
        model: PathBuf,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
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
        } => inspect(&model, len, nodes, &disable),
        Cmd::Emit { model, out } => emit(&model, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn emit(model: &Path, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let abs = std::fs::canonicalize(out)?.join("weights.bin");
    let c = gpt2c::driver::compile(
        model,
        out,
        gpt2c::codegen::WeightsPath::Absolute(abs.display().to_string()),
    )?;
    let s = &c.summary;
    println!(
        "wrote {}/model.rs ({} lines, {} statements) and weights.bin ({} weights, {} bytes); arenas {} f32 + {} i64",
        out.display(),
        s.source_lines,
        s.statements,
        s.weights,
        s.weight_bytes,
        s.arena_f32,
        s.arena_i64
    );
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
    let ty = |id: usize| {
        g.values[id]
            .ty
            .as_ref()
            .map_or("?".to_string(), |t| t.to_string())
    };
    for n in &g.nodes {
        let ins: Vec<String> = n
            .inputs
            .iter()
            .map(|i| match i {
                None => "-".into(),
                Some(i) if g.values[*i].konst.is_some() => {
                    format!("const {}:{}", g.values[*i].name, ty(*i))
                }
                Some(i) => format!("{}:{}", g.values[*i].name, ty(*i)),
            })
            .collect();
        let outs: Vec<String> = n
            .outputs
            .iter()
            .map(|&o| format!("{}:{}", g.values[o].name, ty(o)))
            .collect();
        println!(
            "    {:<24} {:<16} {} -> {}",
            n.name,
            n.op.name(),
            ins.join(", "),
            outs.join(", ")
        );
    }
}

fn inspect(path: &Path, len: Option<usize>, nodes: bool, disable: &[String]) -> Result<()> {
    let t0 = Instant::now();
    let file_len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let graph = gpt2c::onnx::load_graph(path)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let m = &graph.meta;
    println!(
        "model      {} ({:.2} MB), loaded in {load_ms:.0} ms",
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

    let (name, _) = token_input(&graph)?;
    let config = Gpt2Config::derive(&graph)?;
    println!("config     {config}");
    println!("vocabulary size {}", config.vocab);
    let len = match len {
        Some(l) => l,
        None => match token_input(&graph)?.1.get(2) {
            Some(gpt2c::ir::Dim::Known(n)) => *n,
            _ => 1,
        },
    };
    config.check_len(&graph, len)?;
    let t1 = Instant::now();
    gpt2c::compile_graph_with(
        &graph,
        vec![(name, vec![1, 1, len])],
        disable,
        |pass, summary, g| {
            println!("after {pass} (L={len}): {summary}");
            println!("           {} nodes: {}", g.nodes.len(), histogram(g));
            if nodes {
                print_nodes(g);
            }
        },
    )?;
    println!("passes     {:.0} ms", t1.elapsed().as_secs_f64() * 1e3);
    Ok(())
}
