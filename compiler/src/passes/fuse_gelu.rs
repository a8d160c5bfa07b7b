//! Fuses GPT-2's tanh-approximated GELU, strength-reducing its `Pow(x, 3)`:
//!
//! ```text
//! x ─► Mul(0.5) ──────────────────────────────────────────────────────────────┐
//! x ─► Pow(3) ─► Mul(0.044715) ─► Add(x) ─► Mul(√(2/π)) ─► Tanh ─► Add(1) ─► Mul ==> Gelu(x)
//! ```
//! Constants must match GPT-2's to f32 precision. Needs static shapes.

use super::pattern::{replace, Matcher};
use super::Pass;
use crate::error::Result;
use crate::ir::{Graph, Node};
use crate::ops::fused::GELU_C;
use crate::ops::{BinaryOp, Op, UnaryOp};

pub struct FuseGelu;

const MUL: Op = Op::Binary(BinaryOp::Mul);
const ADD: Op = Op::Binary(BinaryOp::Add);

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

fn match_at(m: &Matcher, end: usize) -> Option<(Vec<usize>, Vec<Node>)> {
    let out = &m.g.nodes[end];
    if out.op != MUL {
        return None;
    }
    for (half, t1) in m.operands(out)? {
        let Some((i_half, half_n)) = m.inner(half, &MUL, 1) else {
            continue;
        };
        let Some((x, c_half)) = m.with_scalar(half_n) else {
            continue;
        };
        let Some((i_add1, add1)) = m.inner(t1, &ADD, 1) else {
            continue;
        };
        let (th, one) = m.with_scalar(add1)?;
        let (i_tanh, tanh) = m.inner(th, &Op::Unary(UnaryOp::Tanh), 1)?;
        let (i_mulc, mulc) = m.inner(tanh.inputs[0]?, &MUL, 1)?;
        let (u, c) = m.with_scalar(mulc)?;
        let (i_u, u_n) = m.inner(u, &ADD, 1)?;
        let [(a, b), (b2, a2)] = m.operands(u_n)?;
        let (w, xx) = if a == x {
            (b, a)
        } else if b2 == x {
            (a2, b2)
        } else {
            return None;
        };
        let (i_w, w_n) = m.inner(w, &MUL, 1)?;
        let (p3, c3) = m.with_scalar(w_n)?;
        let (i_pow, pow) = m.inner(p3, &Op::Binary(BinaryOp::Pow), 1)?;
        let ok = xx == x
            && pow.inputs[0] == Some(x)
            && m.scalar(pow.inputs[1]?) == Some(3.0)
            && close(c_half, 0.5)
            && close(one, 1.0)
            && close(c, GELU_C)
            && close(c3, 0.044715);
        if !ok {
            return None;
        }
        let node = Node {
            name: out.name.replace("/Mul_3", "/Gelu"),
            op: Op::Gelu,
            inputs: vec![Some(x)],
            outputs: out.outputs.clone(),
        };
        return Some((
            vec![i_half, i_pow, i_w, i_u, i_mulc, i_tanh, i_add1, end],
            vec![node],
        ));
    }
    None
}

impl Pass for FuseGelu {
    fn name(&self) -> &'static str {
        "fuse-gelu"
    }

    fn run(&self, g: &mut Graph) -> Result<String> {
        let m = Matcher::new(g);
        let edits: Vec<_> = (0..g.nodes.len()).filter_map(|i| match_at(&m, i)).collect();
        let count = edits.len();
        let dead = replace(g, edits);
        Ok(format!("{count} GELU(s) fused, {dead} dead removed"))
    }
}
