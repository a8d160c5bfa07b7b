//! gpt2c: compiles the GPT-2 LM-head ONNX model into Rust.
//!
//! Pipeline so far: `onnx` (load, zero-copy) → `ir` (typed graph) → `passes::specialize`
//! (static shapes, constant folding) → `passes::simplify`. `interp` evaluates a graph at any
//! stage and is the oracle the tests compare everything against.

pub mod codegen;
pub mod driver;
pub mod error;
pub mod gpt2;
pub mod interp;
pub mod ir;
pub mod onnx;
pub mod ops;
pub mod passes;
pub mod sequence;

pub use error::{Error, Result};

use ir::Graph;
use passes::{
    fuse_attention::FuseAttention, simplify::Simplify, specialize::Specialize,
    tie_weights::TieWeights, Pass,
};

/// The standard pipeline for one static input shape per graph input, calling `after` with
/// each pass's name, summary and resulting graph.
pub fn compile_graph(
    graph: &Graph,
    inputs: Vec<(String, Vec<usize>)>,
    after: impl FnMut(&str, &str, &Graph),
) -> Result<Graph> {
    let mut g = graph.clone();
    let spec = Specialize::new(inputs);
    let passes: [&dyn Pass; 4] = [&spec, &Simplify, &FuseAttention, &TieWeights];
    passes::run(&mut g, &passes, after)?;
    Ok(g)
}
