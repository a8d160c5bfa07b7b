//! Fuses matrix products by a constant weight, with their bias, into `Linear`:
//!
//! ```text
//! x ─► Gemm(W, b)               alpha = beta = 1, no transposes     ==> Linear(x, W, b)
//! x ─► MatMul(W) ─► Add(b)      the product read only by the Add    ==> Linear(x, W, b)
//! x ─► MatMul(W)                                                    ==> Linear(x, W)
//! ```
//! `W` must be a 2-D f32 constant `[K, N]`, or the transpose of one (the LM head reading the
//! tied token embedding), and `b` an f32 constant `[N]`. Code generation
//! stores a Linear's weight in the order its kernel streams it and adds the bias in the
//! kernel's last step, so the bias costs no extra pass over the output.

use super::pattern::{replace, Matcher};
use super::Pass;
use crate::error::Result;
use crate::ir::{DType, Graph, Node, ValueId};
use crate::ops::{BinaryOp, Op};

/// The Linear fusion pass (see the module docs).
pub struct FuseLinear;

/// N of `W [K, N]`: an f32 constant, or the transpose of one (a tied weight, see
/// `tie_weights`).
fn weight(m: &Matcher, v: ValueId) -> Option<usize> {
    let g = m.g;
    let matrix = |t: &crate::ir::Tensor| t.dtype() == DType::F32 && t.rank() == 2;
    if let Some(t) = g.konst(v) {
        return matrix(t).then(|| t.shape()[1]);
    }
    let (_, n) = m.producer(v)?;
    let t = g.konst(n.inputs.first().copied()??)?;
    let transposed = n.op
        == (Op::Transpose {
            perm: Some(vec![1, 0]),
        });
    (transposed && matrix(t)).then(|| t.shape()[0])
}

/// An f32 constant of shape `[n]`.
fn is_bias(g: &Graph, v: ValueId, n: usize) -> bool {
    g.konst(v)
        .is_some_and(|t| t.dtype() == DType::F32 && t.shape() == [n])
}

fn linear(name: &str, x: ValueId, w: ValueId, b: Option<ValueId>, out: ValueId) -> Node {
    let mut inputs = vec![Some(x), Some(w)];
    inputs.extend(b.map(Some));
    Node {
        name: name.to_string(),
        op: Op::Linear {
            activation: Default::default(),
        },
        inputs,
        outputs: vec![out],
    }
}

fn match_at(m: &Matcher, i: usize) -> Option<(Vec<usize>, Vec<Node>)> {
    let g = m.g;
    let n = &g.nodes[i];
    let (x, w) = (n.inputs.first().copied()??, n.inputs.get(1).copied()??);
    let cols = weight(m, w)?;
    if g.values[x]
        .ty
        .as_ref()
        .is_none_or(|t| t.dtype != DType::F32)
    {
        return None;
    }
    match &n.op {
        Op::Gemm {
            alpha,
            beta,
            trans_a: false,
            trans_b: false,
        } if *alpha == 1.0 => {
            let b = n.inputs.get(2).copied().flatten();
            if b.is_some_and(|b| *beta != 1.0 || !is_bias(g, b, cols)) {
                return None;
            }
            Some((vec![i], vec![linear(&n.name, x, w, b, n.outputs[0])]))
        }
        Op::MatMul => {
            let y = n.outputs[0];
            // The single reader of the product, if it adds a bias.
            let add =
                g.nodes.iter().enumerate().find(|(_, a)| {
                    a.op == Op::Binary(BinaryOp::Add) && a.inputs.contains(&Some(y))
                });
            if let Some((j, a)) = add {
                let other = if a.inputs[0] == Some(y) {
                    a.inputs[1]
                } else {
                    a.inputs[0]
                };
                let single = m.inner(y, &Op::MatMul, 1).is_some();
                if let Some(b) = other.filter(|&b| single && is_bias(g, b, cols)) {
                    return Some((
                        vec![i, j],
                        vec![linear(&n.name, x, w, Some(b), a.outputs[0])],
                    ));
                }
            }
            Some((vec![i], vec![linear(&n.name, x, w, None, y)]))
        }
        _ => None,
    }
}

impl Pass for FuseLinear {
    fn name(&self) -> &'static str {
        "fuse-linear"
    }

    fn run(&self, g: &mut Graph) -> Result<String> {
        let m = Matcher::new(g);
        let edits: Vec<_> = (0..g.nodes.len()).filter_map(|i| match_at(&m, i)).collect();
        let count = edits.len();
        let biased = edits.iter().filter(|(_, n)| n[0].inputs.len() == 3).count();
        let dead = replace(g, edits);
        // A MatMul or Gemm with a constant right operand is a Linear that was not fused.
        let left = super::pattern::leftovers(g, "MatMul/Gemm of a weight", |n| {
            matches!(n.op, Op::MatMul | Op::Gemm { .. })
                && n.inputs
                    .get(1)
                    .copied()
                    .flatten()
                    .is_some_and(|b| g.konst(b).is_some())
        });
        Ok(format!(
            "{count} Linear(s) fused ({biased} with bias), {dead} dead removed{left}"
        ))
    }
}
