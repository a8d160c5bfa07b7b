//! Simplification: removes ops that do nothing once shapes are static, then dead code.
//!
//! ```text
//! x ─► Identity ─► y                        ==> x
//! x ─► Reshape/Squeeze/Unsqueeze/Expand ─► y, shape(y) == shape(x)   ==> x
//! x ─► Transpose(perm = identity) ─► y      ==> x
//! x ─► Cast(to = dtype(x)) ─► y             ==> x
//! x ─► Concat (one input) ─► y              ==> x
//! ```
//! Needs: static types (run after `specialize`). A node whose output is a graph output is
//! kept, so outputs keep their names.

use super::{replace_uses, Pass};
use crate::error::Result;
use crate::ir::Graph;
use crate::ops::Op;

/// The simplification pass (see the module docs).
pub struct Simplify;

fn is_noop(graph: &Graph, op: &Op, input: usize, output: usize) -> bool {
    let (Some(a), Some(b)) = (&graph.values[input].ty, &graph.values[output].ty) else {
        return false;
    };
    let same = a == b;
    match op {
        Op::Identity => true,
        Op::Reshape { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Expand
        | Op::Cast { .. }
        | Op::Concat { .. } => same,
        Op::Transpose { perm } => {
            same && perm.as_ref().map_or(a.shape.len() <= 1, |p| {
                p.iter().enumerate().all(|(i, &x)| i == x)
            })
        }
        _ => false,
    }
}

impl Pass for Simplify {
    fn name(&self) -> &'static str {
        "simplify"
    }

    fn run(&self, graph: &mut Graph) -> Result<String> {
        let mut removed = 0;
        let mut i = 0;
        while i < graph.nodes.len() {
            let n = &graph.nodes[i];
            let candidate = match (n.inputs.first().copied().flatten(), n.outputs.as_slice()) {
                (Some(x), &[y])
                    if !graph.outputs.contains(&y)
                        && n.inputs.iter().flatten().count() == 1
                        && is_noop(graph, &n.op, x, y) =>
                {
                    Some((x, y))
                }
                _ => None,
            };
            if let Some((x, y)) = candidate {
                replace_uses(graph, y, x);
                graph.nodes.remove(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
        let dead = graph.remove_dead();
        Ok(format!(
            "{removed} no-op nodes removed, {dead} dead removed"
        ))
    }
}
