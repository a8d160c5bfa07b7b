//! Folds a GELU that reads only a Linear's output into the Linear:
//!
//! ```text
//! x ─► Linear(W, b) ─► Gelu              the product read only by the Gelu
//! x ─► Linear(W, b) ─► Reshape ─► Gelu   (the export's c_fc: a 2-D Gemm, then [1, L, N])
//!                          ==> Linear(x, W, b; gelu) (─► Reshape)
//! ```
//! The kernels apply the activation to each block of outputs right after computing it,
//! while it is in cache, instead of a separate pass over the whole tensor.

use super::pattern::{replace, Matcher};
use super::Pass;
use crate::error::Result;
use crate::ir::{Graph, Node};
use crate::ops::linear::Activation;
use crate::ops::Op;

/// The pass folding a Gelu into the Linear it reads (see the module docs).
pub struct FuseLinearGelu;

fn match_at(m: &Matcher, i: usize) -> Option<(Vec<usize>, Vec<Node>)> {
    let gelu = &m.g.nodes[i];
    if gelu.op != Op::Gelu {
        return None;
    }
    let linear = Op::Linear {
        activation: Activation::Identity,
    };
    let x = gelu.inputs[0]?;
    // Through a reshape: it is a view, so GELU may as well come before it.
    let reshape = m
        .producer(x)
        .filter(|(_, r)| matches!(r.op, Op::Reshape { .. }))
        .and_then(|(_, r)| m.inner(x, &r.op, 1));
    let product = match reshape {
        Some((_, r)) => r.inputs.first().copied()??,
        None => x,
    };
    let (j, lin) = m.inner(product, &linear, 1)?;
    let mut fused = Node {
        name: lin.name.clone(),
        op: Op::Linear {
            activation: Activation::Gelu,
        },
        inputs: lin.inputs.clone(),
        outputs: gelu.outputs.clone(),
    };
    match reshape {
        None => Some((vec![j, i], vec![fused])),
        Some((k, r)) => {
            fused.outputs = lin.outputs.clone();
            let mut view = r.clone();
            view.outputs = gelu.outputs.clone();
            Some((vec![j, k, i], vec![fused, view]))
        }
    }
}

impl Pass for FuseLinearGelu {
    fn name(&self) -> &'static str {
        "fuse-linear-gelu"
    }

    fn run(&self, g: &mut Graph) -> Result<String> {
        let m = Matcher::new(g);
        let edits: Vec<_> = (0..g.nodes.len()).filter_map(|i| match_at(&m, i)).collect();
        let count = edits.len();
        let dead = replace(g, edits);
        Ok(format!(
            "{count} GELU(s) folded into their Linear, {dead} dead removed"
        ))
    }
}
