//! Fuses causal self-attention as the GPT-2 export writes it:
//!
//! ```text
//! q ─┐
//!    ├─► MatMul ─► Div(√d) ─► Mul(mask) ─► Sub(10000·(1−mask)) ─► Softmax(last) ─┐
//! kᵀ ┘                                                                            ├─► MatMul ─► out
//! v ──────────────────────────────────────────────────────────────────────────────┘
//!                                        ==> Attention(q, k, v; scale 1/√d, causal)
//! ```
//! Needs: static shapes (after `specialize`). The mask operands must be constant (or
//! computed from constants only): `mask` lower-triangular ones, the subtrahend 0 where the
//! mask is 1 and one large constant c ≥ 1e4 where it is 0, so a masked score is exactly −c
//! and its softmax weight is exactly 0 in f32. When kᵀ is `Transpose(k4, [0,2,3,1])`, the
//! fused op reads `Transpose(k4, [0,2,1,3])` (the layout the present output already uses),
//! so the key cache is stored row by row. Anything else is left as it was.

use super::Pass;
use crate::error::Result;
use crate::ir::{Graph, Node, Tensor, TensorType, ValueId};
use crate::ops::attention::Attention;
use crate::ops::{BinaryOp, Op};
use std::collections::HashMap;

pub struct FuseAttention;

/// The value of `v` if it is a constant or computed from constants only.
fn const_value(g: &Graph, producers: &HashMap<ValueId, usize>, v: ValueId) -> Option<Tensor> {
    if let Some(t) = g.konst(v) {
        return Some(t.clone());
    }
    let node = &g.nodes[*producers.get(&v)?];
    let mut ins: Vec<Option<Tensor>> = Vec::with_capacity(node.inputs.len());
    for i in &node.inputs {
        ins.push(match i {
            None => None,
            Some(i) => Some(const_value(g, producers, *i)?),
        });
    }
    let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
    let outs = node.op.eval(&refs).ok()?;
    let k = node.outputs.iter().position(|&o| o == v)?;
    outs.into_iter().nth(k)
}

struct Match {
    /// Node indices to remove (the chain), the last being the final MatMul.
    nodes: Vec<usize>,
    q: ValueId,
    k_t: ValueId,
    v: ValueId,
    out: ValueId,
    scale: f32,
    masked: f32,
}

fn match_at(
    g: &Graph,
    producers: &HashMap<ValueId, usize>,
    uses: &[usize],
    users: &HashMap<ValueId, Vec<usize>>,
    softmax: usize,
) -> Option<Match> {
    let sm = &g.nodes[softmax];
    let Op::Softmax { axis, .. } = sm.op else {
        return None;
    };
    let x = sm.inputs[0]?;
    let rank = g.shape(x).len();
    if rank != 4 || !(axis == -1 || axis == 3) {
        return None;
    }
    let single = |v: ValueId| uses[v] == 1 && !g.outputs.contains(&v);
    let prod = |v: ValueId| producers.get(&v).copied();
    // Softmax ← Sub(a, c)
    let sub_i = prod(x)?;
    let sub = &g.nodes[sub_i];
    if sub.op != Op::Binary(BinaryOp::Sub) || !single(x) {
        return None;
    }
    let (a, c) = (sub.inputs[0]?, sub.inputs[1]?);
    // a ← Mul(b, mask) in either order
    let mul_i = prod(a)?;
    let mul = &g.nodes[mul_i];
    if mul.op != Op::Binary(BinaryOp::Mul) || !single(a) {
        return None;
    }
    let (m0, m1) = (mul.inputs[0]?, mul.inputs[1]?);
    let (b, mask) = if const_value(g, producers, m1).is_some() {
        (m0, m1)
    } else {
        (m1, m0)
    };
    let mask_t = const_value(g, producers, mask)?;
    let c_t = const_value(g, producers, c)?;
    // b ← Div(mm, s) | Mul(mm, s) | mm
    let mut chain = vec![];
    let (mm, scale) = match prod(b).map(|i| (i, &g.nodes[i])) {
        Some((i, n))
            if matches!(n.op, Op::Binary(BinaryOp::Div) | Op::Binary(BinaryOp::Mul))
                && single(b) =>
        {
            let s = g.konst(n.inputs[1]?).filter(|t| t.numel() == 1)?.get_f64(0) as f32;
            chain.push(i);
            (
                n.inputs[0]?,
                if n.op == Op::Binary(BinaryOp::Div) {
                    1.0 / s
                } else {
                    s
                },
            )
        }
        _ => (b, 1.0),
    };
    let mm_i = prod(mm)?;
    let mmn = &g.nodes[mm_i];
    if mmn.op != Op::MatMul || !single(mm) {
        return None;
    }
    let (q, k_t) = (mmn.inputs[0]?, mmn.inputs[1]?);
    // Softmax → MatMul(·, v)
    let s_out = sm.outputs[0];
    let [user] = users.get(&s_out)?[..] else {
        return None;
    };
    let pv = &g.nodes[user];
    if pv.op != Op::MatMul || pv.inputs[0] != Some(s_out) || !single(s_out) {
        return None;
    }
    let v = pv.inputs[1]?;
    let (qs, ks, vs) = (g.shape(q), g.shape(k_t), g.shape(v));
    if qs.len() != 4 || ks.len() != 4 || vs.len() != 4 {
        return None;
    }
    let (lq, lk) = (qs[2], ks[3]);
    // The mask: lower-triangular ones over [Lq, Lk], broadcast over batch and heads.
    let ms = mask_t.shape().to_vec();
    if ms.len() != 4 || ms[0] != 1 || ms[1] != 1 || ms[2] != lq || ms[3] != lk {
        return None;
    }
    let cs = c_t.shape().to_vec();
    if cs != ms && c_t.numel() != 1 {
        return None;
    }
    let mut masked = None;
    for i in 0..lq {
        for j in 0..lk {
            let keep = j <= i + (lk - lq);
            let mv = mask_t.get_f64(i * lk + j);
            let cv = c_t.get_f64(if c_t.numel() == 1 { 0 } else { i * lk + j });
            if mv != if keep { 1.0 } else { 0.0 } || (keep && cv != 0.0) {
                return None;
            }
            if !keep {
                match masked {
                    None => masked = Some(cv),
                    Some(m) if m == cv => {}
                    Some(_) => return None,
                }
            }
        }
    }
    let masked = -(masked.unwrap_or(1e4) as f32);
    if masked > -1e4 {
        return None;
    }
    let mut nodes = vec![mm_i];
    nodes.extend(chain);
    nodes.extend([mul_i, sub_i, softmax, user]);
    Some(Match {
        nodes,
        q,
        k_t,
        v,
        out: pv.outputs[0],
        scale,
        masked,
    })
}

impl Pass for FuseAttention {
    fn name(&self) -> &'static str {
        "fuse-attention"
    }

    fn run(&self, g: &mut Graph) -> Result<String> {
        let producers = g.producers();
        let uses = g.use_counts();
        let mut users: HashMap<ValueId, Vec<usize>> = HashMap::new();
        for (i, n) in g.nodes.iter().enumerate() {
            for v in n.inputs.iter().flatten() {
                users.entry(*v).or_default().push(i);
            }
        }
        let matches: Vec<Match> = (0..g.nodes.len())
            .filter(|&i| matches!(g.nodes[i].op, Op::Softmax { .. }))
            .filter_map(|i| match_at(g, &producers, &uses, &users, i))
            .collect();
        if matches.is_empty() {
            return Ok("no attention pattern found".into());
        }
        let mut edits = Vec::new();
        for m in matches {
            let mut k_transposed = true;
            let mut k = m.k_t;
            let mut extra = Vec::new();
            // Read keys row by row: Transpose(k4, [0,2,3,1]) → Transpose(k4, [0,2,1,3]).
            if let Some(&ti) = producers.get(&m.k_t) {
                if let Op::Transpose { perm: Some(p) } = &g.nodes[ti].op {
                    if p[..] == [0, 2, 3, 1] {
                        let k4 = g.nodes[ti].inputs[0].expect("transpose input");
                        let want = Op::Transpose {
                            perm: Some(vec![0, 2, 1, 3]),
                        };
                        let existing = g
                            .nodes
                            .iter()
                            .find(|n| n.op == want && n.inputs[0] == Some(k4))
                            .map(|n| n.outputs[0]);
                        k = existing.unwrap_or_else(|| {
                            let s = g.shape(k4);
                            let ty =
                                TensorType::known(crate::ir::DType::F32, &[s[0], s[2], s[1], s[3]]);
                            let name = format!("{}_rows", g.values[m.k_t].name);
                            let id = g.add_value(name.clone(), Some(ty));
                            extra.push(Node {
                                name,
                                op: want,
                                inputs: vec![Some(k4)],
                                outputs: vec![id],
                            });
                            id
                        });
                        k_transposed = false;
                    }
                }
            }
            let (qs, ks, vs) = (g.shape(m.q), g.shape(k), g.shape(m.v));
            let Ok(attn) = Attention::dense(m.scale, true, m.masked, &qs, &ks, &vs, k_transposed)
            else {
                continue;
            };
            let name = g.nodes[m.nodes[0]].name.replace("/MatMul", "/Attention");
            extra.push(Node {
                name,
                op: Op::Attention(attn),
                inputs: vec![Some(m.q), Some(k), Some(m.v)],
                outputs: vec![m.out],
            });
            edits.push((m.nodes, extra));
        }
        let count = edits.len();
        let dead = super::pattern::replace(g, edits);
        Ok(format!(
            "{count} attention blocks fused, {dead} dead nodes removed"
        ))
    }
}
