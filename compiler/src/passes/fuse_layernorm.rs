//! Fuses LayerNorm from its decomposed export:
//!
//! ```text
//! x ─► ReduceMean ─► Sub ─► Pow(2) ─► ReduceMean ─► Add(eps) ─► Sqrt ─► Div ─► Mul(γ) ─► Add(β)
//!   └──────────────────┘                                                 ▲
//!   └────────────────────────────────────────────────────────────────────┘     ==> LayerNorm(x, γ, β, eps)
//! ```
//! Both means over the last axis with keepdims; γ and β of shape `[N]`. ONNX's own
//! LayerNormalization (opset 17) over the last axis with γ and β (or no β) of shape `[N]`
//! becomes the same op. Needs static shapes.

use super::pattern::{replace, Matcher};
use super::Pass;
use crate::error::Result;
use crate::ir::{Graph, Node};
use crate::ops::{BinaryOp, Op, UnaryOp};

/// The LayerNorm fusion pass (see the module docs).
pub struct FuseLayerNorm;

fn last_axis_mean(m: &Matcher, n: &Node) -> bool {
    let Op::ReduceMean {
        axes: Some(a),
        keepdims: true,
        ..
    } = &n.op
    else {
        return false;
    };
    let rank = n.inputs[0]
        .and_then(|x| m.g.values[x].ty.as_ref())
        .map_or(0, |t| t.shape.len()) as i64;
    a.len() == 1 && (a[0] == -1 || a[0] == rank - 1)
}

fn vector_of(m: &Matcher, v: usize, n: usize) -> bool {
    m.g.values[v]
        .ty
        .as_ref()
        .and_then(|t| t.static_shape())
        .is_some_and(|s| s == [n])
}

/// The chain ending at node `end` (the Add of β), if it is a LayerNorm.
fn match_at(m: &Matcher, end: usize) -> Option<(Vec<usize>, Vec<Node>)> {
    let add_b = &m.g.nodes[end];
    if add_b.op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    for (mul_out, beta) in m.operands(add_b)? {
        let Some((i_mul, mul)) = m.inner(mul_out, &Op::Binary(BinaryOp::Mul), 1) else {
            continue;
        };
        for (div_out, gamma) in m.operands(mul)? {
            let Some((i_div, div)) = m.inner(div_out, &Op::Binary(BinaryOp::Div), 1) else {
                continue;
            };
            let (d, sq) = (div.inputs[0]?, div.inputs[1]?);
            let (i_sqrt, sqrt) = m.inner(sq, &Op::Unary(UnaryOp::Sqrt), 1)?;
            let (i_add, add_eps) = m.inner(sqrt.inputs[0]?, &Op::Binary(BinaryOp::Add), 1)?;
            let (var, eps) = m.with_scalar(add_eps)?;
            let (i_var, var_n) = m.inner(var, &m.producer(var)?.1.op, 1)?;
            let (i_pow, pow) = m.inner(var_n.inputs[0]?, &Op::Binary(BinaryOp::Pow), 1)?;
            let (i_sub, sub) = m.inner(d, &Op::Binary(BinaryOp::Sub), 2)?;
            let (x, mu) = (sub.inputs[0]?, sub.inputs[1]?);
            let (i_mu, mu_n) = m.inner(mu, &m.producer(mu)?.1.op, 1)?;
            let n = *m.g.values[x].ty.as_ref()?.static_shape()?.last()?;
            let ok = last_axis_mean(m, var_n)
                && last_axis_mean(m, mu_n)
                && mu_n.inputs[0] == Some(x)
                && pow.inputs[0] == Some(d)
                && m.scalar(pow.inputs[1]?) == Some(2.0)
                && vector_of(m, gamma, n)
                && vector_of(m, beta, n);
            if !ok {
                return None;
            }
            let node = Node {
                name: add_b.name.replace("/Add_1", "/LayerNorm"),
                op: Op::LayerNorm { eps },
                inputs: vec![Some(x), Some(gamma), Some(beta)],
                outputs: add_b.outputs.clone(),
            };
            return Some((
                vec![i_mu, i_sub, i_pow, i_var, i_add, i_sqrt, i_div, i_mul, end],
                vec![node],
            ));
        }
    }
    None
}

/// Rewrites LayerNormalization nodes that are a LayerNorm in place; returns how many.
fn from_onnx_op(g: &mut Graph) -> usize {
    let mut count = 0;
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let Op::LayerNormalization { axis, eps, .. } = n.op else {
            continue;
        };
        // Mean and InvStdDev outputs (the dynamo exporter names them) must be unused.
        let uses = g.use_counts();
        if n.outputs[1..]
            .iter()
            .any(|&o| uses[o] > 0 || g.outputs.contains(&o))
        {
            continue;
        }
        let Some(x) = n.inputs[0] else { continue };
        let s = g.shape(x);
        let Some(&width) = s.last() else { continue };
        let last = crate::ops::norm_axis(axis, s.len()).ok() == Some(s.len() - 1);
        let vector = |v: Option<usize>| v.is_some_and(|v| g.shape(v) == [width]);
        if !last
            || !vector(n.inputs[1])
            || !(n.inputs.len() < 3 || n.inputs[2].is_none() || vector(n.inputs[2]))
        {
            continue;
        }
        let beta = match n.inputs.get(2).copied().flatten() {
            Some(b) => b,
            None => {
                let name = format!("{}/zero_bias", n.name);
                g.add_const(
                    name,
                    crate::ir::Tensor::from_vec(vec![width], vec![0f32; width]),
                )
            }
        };
        let n = &mut g.nodes[i];
        n.inputs = vec![n.inputs[0], n.inputs[1], Some(beta)];
        n.outputs.truncate(1);
        n.op = Op::LayerNorm { eps };
        count += 1;
    }
    count
}

impl Pass for FuseLayerNorm {
    fn name(&self) -> &'static str {
        "fuse-layernorm"
    }

    fn run(&self, g: &mut Graph) -> Result<String> {
        let whole = from_onnx_op(g);
        let m = Matcher::new(g);
        let edits: Vec<_> = (0..g.nodes.len()).filter_map(|i| match_at(&m, i)).collect();
        let count = edits.len() + whole;
        let dead = replace(g, edits);
        let left = super::pattern::leftovers(g, "ReduceMean/LayerNormalization", |n| {
            matches!(n.op, Op::ReduceMean { .. } | Op::LayerNormalization { .. })
        });
        Ok(format!(
            "{count} LayerNorm(s) fused, {dead} dead removed{left}"
        ))
    }
}
