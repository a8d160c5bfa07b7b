//! Fuses causal self-attention, recognised by what it computes rather than by one
//! exporter's node order:
//!
//! ```text
//! q ─► [Mul(c₁)] ─┐
//!                 ├─► MatMul ─► [Div|Mul(s)] ─► mask chain ─► Softmax(last) ─┐
//! kᵀ ─► [Mul(c₂)] ┘                                                          ├─► MatMul ─► out
//! v ─────────────────────────────────────────────────────────────────────────┘
//!                                   ==> Attention(q, k, v; scale c₁·c₂·s, causal)
//! ```
//! The mask chain is any run of Add, Sub, Mul and Where nodes whose other operands are
//! constant (or computed from constants only): the zoo's `Mul(mask) − 10000·(1 − mask)`,
//! transformers' `Where(causal, scores, min) + mask`, torch's SDPA `+ Where(mask, 0, −inf)`.
//! The chain is probed: run on two different score tensors it must return kept scores
//! unchanged exactly where key j ≤ query i (+ the past), and one constant c ≤ −10⁴ (or −∞,
//! softmax weight exactly 0 in f32) elsewhere. The scale is a constant Div or Mul after the
//! product, and/or constant Muls of q and kᵀ before it (SDPA writes √scale on each).
//! Needs: static shapes (after `specialize`). When kᵀ is `Transpose(k4, [0,2,3,1])`, the
//! fused op reads `Transpose(k4, [0,2,1,3])` (the layout the present output already uses),
//! so the key cache is stored row by row. Anything else is left as it was.

use super::Pass;
use crate::error::Result;
use crate::ir::{Graph, Node, Tensor, TensorType, ValueId};
use crate::ops::attention::Attention;
use crate::ops::{BinaryOp, Op};
use std::cell::RefCell;
use std::collections::HashMap;

/// The attention fusion pass (see the module docs).
pub struct FuseAttention;

/// Values computed from constants only, each evaluated once per attention block: the mask
/// chain is probed twice at full context, and each probe reads the same constants.
struct Consts<'g> {
    g: &'g Graph,
    producers: &'g HashMap<ValueId, usize>,
    memo: RefCell<HashMap<ValueId, Option<Tensor>>>,
}

impl<'g> Consts<'g> {
    fn new(g: &'g Graph, producers: &'g HashMap<ValueId, usize>) -> Self {
        Consts {
            g,
            producers,
            memo: RefCell::new(HashMap::new()),
        }
    }

    /// The value of `v` if it is a constant or computed from constants only.
    fn value(&self, v: ValueId) -> Option<Tensor> {
        if let Some(t) = self.g.konst(v) {
            return Some(t.clone());
        }
        if let Some(known) = self.memo.borrow().get(&v) {
            return known.clone();
        }
        let t = self.compute(v);
        self.memo.borrow_mut().insert(v, t.clone());
        t
    }

    fn compute(&self, v: ValueId) -> Option<Tensor> {
        let node = &self.g.nodes[*self.producers.get(&v)?];
        let mut ins: Vec<Option<Tensor>> = Vec::with_capacity(node.inputs.len());
        for i in &node.inputs {
            ins.push(match i {
                None => None,
                Some(i) => Some(self.value(*i)?),
            });
        }
        let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
        let outs = node.op.eval(&refs).ok()?;
        let k = node.outputs.iter().position(|&o| o == v)?;
        outs.into_iter().nth(k)
    }
}

struct Match {
    /// Node indices to remove (the chain), the last being the final MatMul.
    nodes: Vec<usize>,
    /// The q·kᵀ MatMul (names the fused node).
    matmul: usize,
    q: ValueId,
    k_t: ValueId,
    v: ValueId,
    out: ValueId,
    scale: f32,
    masked: f32,
}

/// A constant scalar operand of a binary Mul or Div: (other operand, factor it applies).
fn scaled_by(g: &Graph, n: &Node) -> Option<(ValueId, f32)> {
    let (a, b) = (n.inputs.first().copied()??, n.inputs.get(1).copied()??);
    let scalar = |v: ValueId| {
        g.konst(v)
            .filter(|t| t.numel() == 1 && t.dtype() == crate::ir::DType::F32)
            .map(|t| t.get_f64(0) as f32)
    };
    match (&n.op, scalar(a), scalar(b)) {
        (Op::Binary(BinaryOp::Div), None, Some(s)) => Some((a, 1.0 / s)),
        (Op::Binary(BinaryOp::Mul), None, Some(s)) => Some((a, s)),
        (Op::Binary(BinaryOp::Mul), Some(s), None) => Some((b, s)),
        _ => None,
    }
}

/// Runs the mask chain (nodes in graph order, each with one non-constant operand, the
/// previous node's output) on `x`.
fn run_chain(g: &Graph, consts: &Consts, chain: &[(usize, ValueId)], x: Tensor) -> Option<Tensor> {
    let mut cur = x;
    for &(ni, input) in chain {
        let n = &g.nodes[ni];
        let mut ins = Vec::with_capacity(n.inputs.len());
        for i in &n.inputs {
            ins.push(match i {
                Some(v) if *v == input => Some(cur.clone()),
                Some(v) => Some(consts.value(*v)?),
                None => None,
            });
        }
        let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
        cur = n.op.eval(&refs).ok()?.into_iter().next()?;
    }
    Some(cur)
}

/// The value masked scores take, if the chain keeps exactly the causal scores of an
/// `[lq, lk]` score matrix (for every batch and head: the probe must keep its shape).
fn causal_mask_value(
    g: &Graph,
    consts: &Consts,
    chain: &[(usize, ValueId)],
    lq: usize,
    lk: usize,
) -> Option<f32> {
    if chain.is_empty() || lk < lq {
        return None;
    }
    let shape = vec![1, 1, lq, lk];
    let probe = |f: &dyn Fn(usize) -> f32| -> Option<(Vec<f32>, Vec<f32>)> {
        let x: Vec<f32> = (0..lq * lk).map(f).collect();
        let y = run_chain(g, consts, chain, Tensor::from_vec(shape.clone(), x.clone()))?;
        (y.shape() == &shape[..]).then_some(())?;
        Some((x, y.to_vec::<f32>().ok()?))
    };
    let (x1, y1) = probe(&|_| 0.0)?;
    let (x2, y2) = probe(&|e| 1.5 + (e % 7) as f32 * 0.25 - (e % 3) as f32)?;
    let mut masked: Option<f32> = None;
    for i in 0..lq {
        for j in 0..lk {
            let e = i * lk + j;
            if j <= i + (lk - lq) {
                if y1[e] != x1[e] || y2[e] != x2[e] {
                    return None;
                }
            } else {
                let c = y1[e];
                // NaN is no mask value.
                if y2[e] != c || c.is_nan() || c > -1e4 || masked.is_some_and(|m| m != c) {
                    return None;
                }
                masked = Some(c);
            }
        }
    }
    Some(masked.unwrap_or(-1e4))
}

/// The attention block around the Softmax node `softmax`, or why there is none.
fn match_at(
    g: &Graph,
    producers: &HashMap<ValueId, usize>,
    consts: &Consts,
    uses: &[usize],
    users: &HashMap<ValueId, Vec<usize>>,
    softmax: usize,
) -> std::result::Result<Match, String> {
    let sm = &g.nodes[softmax];
    let Op::Softmax { axis, .. } = sm.op else {
        return Err("not a Softmax".into());
    };
    let x = sm.inputs[0].ok_or("no input")?;
    let rank = g.shape(x).len();
    if rank != 4 || !(axis == -1 || axis == 3) {
        return Err(format!(
            "softmax over axis {axis} of a rank-{rank} tensor, not the keys of [B,H,Lq,Lk]"
        ));
    }
    let single = |v: ValueId| uses[v] == 1 && !g.outputs.contains(&v);
    let prod = |v: ValueId| producers.get(&v).copied();
    // The mask chain, walked back from the softmax: one non-constant operand per node.
    let mut chain: Vec<(usize, ValueId)> = Vec::new();
    let mut cur = x;
    while let Some(i) = prod(cur).filter(|_| single(cur)) {
        let n = &g.nodes[i];
        if !matches!(
            n.op,
            Op::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul) | Op::Where
        ) {
            break;
        }
        let live: Vec<ValueId> = n
            .inputs
            .iter()
            .flatten()
            .copied()
            .filter(|&v| consts.value(v).is_none())
            .collect();
        let [input] = live[..] else { break };
        // A scalar Mul right after the product is the scale, not the mask.
        if scaled_by(g, n).is_some() && prod(input).is_some_and(|p| g.nodes[p].op == Op::MatMul) {
            break;
        }
        chain.push((i, input));
        cur = input;
    }
    chain.reverse();
    // cur ← [Div|Mul(s)] ← MatMul(q', k')
    let mut nodes: Vec<usize> = Vec::new();
    let mut scale = 1.0f32;
    let mut mm = cur;
    if let Some(i) = prod(mm).filter(|_| single(mm)) {
        if let Some((a, s)) = scaled_by(g, &g.nodes[i]) {
            nodes.push(i);
            scale *= s;
            mm = a;
        }
    }
    let mm_i = prod(mm).ok_or("the scores come from no node")?;
    let mmn = &g.nodes[mm_i];
    if mmn.op != Op::MatMul || !single(mm) {
        return Err(format!(
            "the scores (after a mask chain of {} node(s)) come from '{}' ({}), not a q·kᵀ MatMul read only here",
            chain.len(),
            mmn.name,
            mmn.op.name()
        ));
    }
    let (mut q, mut k_t) = (mmn.inputs[0].ok_or("no q")?, mmn.inputs[1].ok_or("no k")?);
    for operand in [&mut q, &mut k_t] {
        if let Some(i) = prod(*operand).filter(|_| single(*operand)) {
            if let Some((a, s)) = scaled_by(g, &g.nodes[i]) {
                nodes.push(i);
                scale *= s;
                *operand = a;
            }
        }
    }
    // Softmax → [Where(IsNaN(p), 0, p)] → MatMul(·, v). The guard (optimum's SDPA) only
    // changes rows whose every key is masked, which causal attention never has.
    let mut p_out = sm.outputs[0];
    let readers = users.get(&p_out).cloned().unwrap_or_default();
    if readers.len() == 2 && !g.outputs.contains(&p_out) {
        let isnan = readers
            .iter()
            .copied()
            .find(|&i| g.nodes[i].op == Op::IsNaN);
        let sel = readers
            .iter()
            .copied()
            .find(|&i| g.nodes[i].op == Op::Where);
        if let (Some(a), Some(w)) = (isnan, sel) {
            let (an, wn) = (&g.nodes[a], &g.nodes[w]);
            let zero = wn.inputs[1]
                .and_then(|v| consts.value(v))
                .is_some_and(|t| t.numel() == 1);
            if wn.inputs[0] == Some(an.outputs[0])
                && wn.inputs[2] == Some(p_out)
                && single(an.outputs[0])
                && zero
            {
                nodes.extend([a, w]);
                p_out = wn.outputs[0];
            }
        }
    }
    let [user] = users.get(&p_out).map(|u| &u[..]).unwrap_or_default() else {
        return Err(format!(
            "the probabilities have {} readers, expected one MatMul with v",
            users.get(&p_out).map_or(0, |u| u.len())
        ));
    };
    let pv = &g.nodes[*user];
    if pv.op != Op::MatMul || pv.inputs[0] != Some(p_out) || !single(p_out) {
        return Err(format!(
            "the probabilities go to '{}' ({}), not a MatMul with v",
            pv.name,
            pv.op.name()
        ));
    }
    let v = pv.inputs[1].ok_or("no v")?;
    let (qs, ks, vs) = (g.shape(q), g.shape(k_t), g.shape(v));
    if qs.len() != 4 || ks.len() != 4 || vs.len() != 4 {
        return Err(format!(
            "q, kᵀ, v have shapes {qs:?}, {ks:?}, {vs:?}; expected rank 4"
        ));
    }
    let masked = causal_mask_value(g, consts, &chain, qs[2], ks[3]).ok_or_else(|| {
        let names: Vec<&str> = chain.iter().map(|&(i, _)| g.nodes[i].name.as_str()).collect();
        format!(
            "the mask chain {names:?} does not keep exactly the causal scores (key j ≤ query i) and set the rest to one constant ≤ −1e4"
        )
    })?;
    nodes.push(mm_i);
    nodes.extend(chain.iter().map(|&(i, _)| i));
    nodes.extend([softmax, *user]);
    nodes.sort();
    Ok(Match {
        nodes,
        matmul: mm_i,
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
        let mut matches: Vec<Match> = Vec::new();
        let mut missed: Vec<String> = Vec::new();
        for i in 0..g.nodes.len() {
            if matches!(g.nodes[i].op, Op::Softmax { .. }) {
                // One memo per block: the constants of one layer are not another's.
                let consts = Consts::new(g, &producers);
                match match_at(g, &producers, &consts, &uses, &users, i) {
                    Ok(m) => matches.push(m),
                    Err(why) => missed.push(format!("'{}': {why}", g.nodes[i].name)),
                }
            }
        }
        // Name the first softmax that was not fused, and why.
        let not_fused = match &missed[..] {
            [] => String::new(),
            [first, rest @ ..] => format!(
                "; {} softmax(es) not fused, first {first}{}",
                missed.len(),
                if rest.is_empty() { "" } else { " (and others)" }
            ),
        };
        if matches.is_empty() {
            return Ok(format!("no attention pattern found{not_fused}"));
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
            let name = g.nodes[m.matmul].name.replace("/MatMul", "/Attention");
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
            "{count} attention blocks fused, {dead} dead nodes removed{not_fused}"
        ))
    }
}
