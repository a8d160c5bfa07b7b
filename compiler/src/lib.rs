#![warn(missing_docs)]
//! gpt2c: compiles the GPT-2 LM-head ONNX model into Rust.
//!
//! Pipeline so far: `onnx` (load, zero-copy) → `ir` (typed graph) → `passes::specialize`
//! (static shapes, constant folding) → `passes::simplify`. `interp` evaluates a graph at any
//! stage and is the oracle the tests compare everything against.
//!
//! Layers, each importing only those before it: `error` → `mapped` (files as memory) →
//! `tensor` (DType, Tensor) → `attrs` (format-free node attributes) → `ops` → `ir` (the graph
//! of ops) → `onnx` (the only module that knows protobuf) and the passes, code generation and
//! drivers above them.

pub mod accuracy;
pub mod attrs;
pub mod builder;
pub mod codegen;
pub mod driver;
pub mod emit;
pub mod error;
pub mod gpt2;
pub mod inspect;
pub mod interp;
pub mod ir;
pub mod mapped;
pub mod model_path;
pub mod onnx;
pub mod ops;
pub mod passes;
pub mod progress;
pub mod sequence;
pub mod tensor;

pub use builder::Builder;
pub use error::{Error, Result};
/// How the attention cache stores keys and values (`Builder::kv`, `GPT2_KV`).
pub use gpt2rt::kv::KvFormat;

use ir::Graph;
use passes::{
    fold_attention_layout::FoldAttentionLayout, fold_copies::FoldCopies,
    fuse_attention::FuseAttention, fuse_gelu::FuseGelu, fuse_layernorm::FuseLayerNorm,
    fuse_linear::FuseLinear, fuse_linear_gelu::FuseLinearGelu, simplify::Simplify,
    specialize::Specialize, tie_weights::TieWeights, Pass,
};

/// Names of the optimization passes that can be switched off (`GPT2C_DISABLE_PASSES`,
/// `gpt2c inspect --disable`); `specialize` and `simplify` always run.
pub const OPTIONAL_PASSES: &[&str] = &[
    "fuse-layernorm",
    "fuse-gelu",
    "fuse-attention",
    "tie-weights",
    "fuse-linear",
    "fuse-linear-gelu",
    "fold-copies",
    "fold-attention-layout",
];

/// The standard pipeline for one static input shape per graph input, calling `after` with
/// each pass's name, summary and resulting graph.
pub fn compile_graph(
    graph: &Graph,
    inputs: Vec<(String, Vec<usize>)>,
    after: impl FnMut(&str, &str, &Graph),
) -> Result<Graph> {
    compile_graph_with(graph, inputs, &[], after)
}

/// `compile_graph` without the optional passes named in `disabled`.
pub fn compile_graph_with(
    graph: &Graph,
    inputs: Vec<(String, Vec<usize>)>,
    disabled: &[String],
    after: impl FnMut(&str, &str, &Graph),
) -> Result<Graph> {
    let budget = passes::specialize::FOLD_BUDGET_BYTES;
    compile_graph_folding(graph, inputs, disabled, budget, after)
}

/// `compile_graph_with` where constant folding may produce results of at most
/// `fold_budget` bytes per node (`passes::specialize::FOLD_BUDGET_BYTES` by default):
/// larger ones stay run-time ops.
pub fn compile_graph_folding(
    graph: &Graph,
    inputs: Vec<(String, Vec<usize>)>,
    disabled: &[String],
    fold_budget: usize,
    after: impl FnMut(&str, &str, &Graph),
) -> Result<Graph> {
    for d in disabled {
        if !OPTIONAL_PASSES.contains(&d.as_str()) {
            return Err(Error::Invalid(format!(
                "unknown pass '{d}'; optional passes: {}",
                OPTIONAL_PASSES.join(", ")
            )));
        }
    }
    let mut g = graph.clone();
    let mut spec = Specialize::new(inputs);
    spec.fold_budget = fold_budget;
    let all: [&dyn Pass; 10] = [
        &spec,
        &Simplify,
        &FuseLayerNorm,
        &FuseGelu,
        &FuseAttention,
        &TieWeights,
        &FuseLinear,
        &FuseLinearGelu,
        &FoldCopies,
        &FoldAttentionLayout,
    ];
    let passes: Vec<&dyn Pass> = all
        .into_iter()
        .filter(|p| !disabled.iter().any(|d| d == p.name()))
        .collect();
    passes::run(&mut g, &passes, after)?;
    Ok(g)
}
