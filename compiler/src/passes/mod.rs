//! Graph passes. Each takes a valid graph and leaves a valid graph (`Graph::validate`), and
//! the reference interpreter gives the same outputs before and after it.
//! `run` applies a list of passes in order and lets a caller look at the graph after each.

pub mod fold_attention_layout;
pub mod fold_copies;
pub mod fuse_attention;
pub mod fuse_gelu;
pub mod fuse_layernorm;
pub mod fuse_linear;
pub mod fuse_linear_gelu;
pub mod pattern;
pub mod simplify;
pub mod specialize;
pub mod tie_weights;
pub mod views;

use crate::error::{Error, Result};
use crate::ir::Graph;

/// A graph transformation.
pub trait Pass {
    /// The pass's name (as `GPT2C_DISABLE_PASSES` and `inspect` spell it).
    fn name(&self) -> &'static str;
    /// Transforms the graph; returns a one-line summary of what changed.
    fn run(&self, graph: &mut Graph) -> Result<String>;
}

/// Runs `passes` in order, calling `after(pass name, summary, graph)` after each.
pub fn run(
    graph: &mut Graph,
    passes: &[&dyn Pass],
    mut after: impl FnMut(&str, &str, &Graph),
) -> Result<()> {
    for p in passes {
        let summary = p.run(graph)?;
        graph.validate().map_err(|e| {
            Error::Invalid(format!(
                "internal error: pass '{}' left an invalid graph: {e}",
                p.name()
            ))
        })?;
        after(p.name(), &summary, graph);
    }
    Ok(())
}

/// Points every use of `from` (by nodes and graph outputs) at `to`.
pub(crate) fn replace_uses(graph: &mut Graph, from: usize, to: usize) {
    for n in &mut graph.nodes {
        for i in n.inputs.iter_mut().flatten() {
            if *i == from {
                *i = to;
            }
        }
    }
    for o in &mut graph.outputs {
        if *o == from {
            *o = to;
        }
    }
}
