//! Sequence analysis: proves that a graph can run a few rows of its sequence at a time.
//!
//! Every value gets the axis that runs along the token sequence (or none: weights, and
//! values that do not depend on position). The proof holds when every op is row-wise along
//! that axis (elementwise, norms over other axes, linear layers whose weights have no
//! sequence axis, data movement that keeps the axis whole) or is a causal `Attention`,
//! whose keys and values for rows already computed stay valid. Then the generated code can
//! compute rows `r0..r0+n` alone, given the keys and values of rows `0..r0`: prompt
//! prefill and one-token steps are the same code as the full forward with other bounds.
//! When the proof fails, the reason says which node broke it, and the code recomputes the
//! whole sequence instead.

use crate::ir::{Graph, ValueId};
use crate::ops::{norm_axis, Op};

/// The result of the sequence analysis: which values and nodes run row by row.
#[derive(Clone, Debug)]
pub struct SeqInfo {
    /// Length of the sequence axis (the specialized context).
    pub len: usize,
    /// The sequence axis of each value, if it has one.
    pub axis: Vec<Option<usize>>,
    /// Values whose rows must survive between calls: the keys and values attention reads.
    pub cache: Vec<ValueId>,
    /// Nodes needed only for output 0 (the logits): with `last_only` they compute the
    /// last row alone.
    pub tail: Vec<bool>,
    /// Nodes that depend on weights only (e.g. a position-embedding lookup too large to
    /// fold): computed once, when the model is created.
    pub init: Vec<bool>,
    /// Values computed by `init` nodes that vary along the sequence and are read by row,
    /// with the axis that does.
    pub row_read: Vec<Option<usize>>,
}

/// Rows `r0..r0+n` of `v` are one contiguous block (all dims before the axis are 1).
pub fn rows_contiguous(g: &Graph, v: ValueId, axis: usize) -> bool {
    g.shape(v)[..axis].iter().all(|&d| d == 1)
}

/// The axis of a reshaped value that carries the same rows: same element count before it
/// and after it.
fn reshape_axis(from: &[usize], axis: usize, to: &[usize]) -> Option<usize> {
    let before: usize = from[..axis].iter().product();
    let after: usize = from[axis + 1..].iter().product();
    (0..to.len()).find(|&b| {
        to[b] == from[axis]
            && to[..b].iter().product::<usize>() == before
            && to[b + 1..].iter().product::<usize>() == after
    })
}

/// For a strided read of a tensor of shape `src` whose sequence axis is `axis` (element
/// `idx` of the view is flat element `offset + Σ idx·strides`): the view's axis that walks
/// the tensor's rows, when every element of view row i lies in row i of the tensor. That
/// holds when one view axis steps exactly one row, and every other stride and the offset
/// either stay inside a row (together) or jump whole sequences.
pub fn view_row_axis(
    src: &[usize],
    axis: usize,
    offset: usize,
    strides: &[usize],
    shape: &[usize],
) -> Option<usize> {
    let len = src[axis];
    let row = crate::ops::strides(src)[axis];
    let b = (0..shape.len()).find(|&b| shape[b] == len && strides[b] == row)?;
    let whole = len * row;
    let mut inner = offset % whole;
    for (k, (&n, &s)) in shape.iter().zip(strides).enumerate() {
        if k != b && n > 1 && s % whole != 0 {
            inner += (n - 1) * s;
        }
    }
    (inner < row).then_some(b)
}

/// Runs the analysis from graph input `input`, whose axis `input_axis` is the sequence;
/// `Err` says which node breaks the proof.
pub fn analyze(g: &Graph, input: ValueId, input_axis: usize) -> Result<SeqInfo, String> {
    let len = g.shape(input)[input_axis];
    if len < 2 {
        return Err(format!(
            "the sequence has {len} position(s): nothing to split"
        ));
    }
    let mut axis: Vec<Option<usize>> = vec![None; g.values.len()];
    axis[input] = Some(input_axis);
    let mut cache = Vec::new();
    let mut init = vec![false; g.nodes.len()];
    let producers = g.producers();
    let mut row_read: Vec<Option<usize>> = vec![None; g.values.len()];
    for (ni, n) in g.nodes.iter().enumerate() {
        let fail = |why: String| format!("node '{}' ({}): {why}", n.name, n.op.name());
        let ins: Vec<Option<ValueId>> = n.inputs.clone();
        let ax = |i: usize| ins.get(i).copied().flatten().and_then(|v| axis[v]);
        let out_shape = g.shape(n.outputs[0]);
        let contiguous_out = |a: usize| {
            if rows_contiguous(g, n.outputs[0], a) {
                Ok(())
            } else {
                Err(fail(format!(
                    "its output's rows are not contiguous (axis {a} of {out_shape:?})"
                )))
            }
        };
        let any_seq = ins.iter().flatten().any(|&v| axis[v].is_some());
        // The data operand's axis, when only a shape-deciding operand depends on position.
        let data_axis = |i: usize| {
            ax(i).ok_or_else(|| fail(format!("its operand {i} does not run along the sequence")))
        };
        let out_axis: Option<usize> = match &n.op {
            _ if !any_seq => {
                init[ni] = true; // computed from weights alone
                None
            }
            Op::Binary(_) | Op::Compare(_) | Op::Logic(_) | Op::Where | Op::MinMax { .. } => {
                let r = out_shape.len();
                let mut out = None;
                for &v in ins.iter().flatten() {
                    let s = g.shape(v);
                    let aligned = axis[v].map(|a| a + r - s.len());
                    if let Some(a) = aligned {
                        if out.is_some_and(|o| o != a) {
                            return Err(fail("operands disagree on the sequence axis".into()));
                        }
                        out = Some(a);
                    }
                }
                let a = out.expect("some input has the axis");
                // Constants that vary along the axis (position embeddings) are read by row.
                for &v in ins.iter().flatten() {
                    let s = g.shape(v);
                    if axis[v].is_none() && s.len() + a >= r && s[a + s.len() - r] == len {
                        let va = a + s.len() - r;
                        if !rows_contiguous(g, v, va) {
                            return Err(fail(
                                "a position-dependent operand's rows are not contiguous".into(),
                            ));
                        }
                        if g.values[v].konst.is_some() {
                            axis[v] = Some(va);
                        } else if producers.get(&v).is_some_and(|&p| init[p]) {
                            // Computed from weights by an init node: complete, read by row.
                            row_read[v] = Some(va);
                        } else {
                            return Err(fail(
                                "a position-dependent operand has no sequence axis".into(),
                            ));
                        }
                    }
                }
                contiguous_out(a)?;
                Some(a)
            }
            Op::LayerNorm { .. } => {
                if ax(1).is_some() || ax(2).is_some() {
                    return Err(fail("its scale or bias depends on position".into()));
                }
                let a = data_axis(0)?;
                if a + 1 == out_shape.len() {
                    return Err(fail("it normalizes over the sequence axis".into()));
                }
                contiguous_out(a)?;
                Some(a)
            }
            Op::RoundRows(_) => {
                let a = data_axis(0)?;
                if a + 1 == out_shape.len() {
                    return Err(fail("it rounds blocks along the sequence axis".into()));
                }
                contiguous_out(a)?;
                Some(a)
            }
            Op::LayerNormalization { axis: la, .. } => {
                if ax(1).is_some() || ax(2).is_some() {
                    return Err(fail("its scale or bias depends on position".into()));
                }
                let a = data_axis(0)?;
                if norm_axis(*la, out_shape.len()).map_err(|e| fail(e.0))? <= a {
                    return Err(fail("it normalizes over the sequence axis".into()));
                }
                contiguous_out(a)?;
                Some(a)
            }
            Op::CumSum { .. } => {
                let a = ax(0).ok_or_else(|| fail("its axis depends on position".into()))?;
                let c = ins[1]
                    .and_then(|v| g.konst(v))
                    .and_then(|t| t.to_i64s().ok())
                    .and_then(|v| v.first().copied())
                    .ok_or_else(|| fail("its axis is not a constant".into()))?;
                if norm_axis(c, out_shape.len()).map_err(|e| fail(e.0))? == a {
                    return Err(fail("it accumulates along the sequence axis".into()));
                }
                contiguous_out(a)?;
                Some(a)
            }
            Op::Trilu { .. } => {
                let a = ax(0).ok_or_else(|| fail("its k depends on position".into()))?;
                if a + 2 >= out_shape.len() {
                    return Err(fail("its triangle spans the sequence axis".into()));
                }
                Some(a)
            }
            Op::SplitPart(p) => {
                let a =
                    ax(0).ok_or_else(|| fail("only its split sizes depend on position".into()))?;
                let s = g.shape(ins[0].expect("input"));
                if norm_axis(p.axis, s.len()).map_err(|e| fail(e.0))? == a {
                    return Err(fail("it splits the sequence axis".into()));
                }
                if out_shape.len() == s.len() {
                    Some(a)
                } else {
                    reshape_axis(&s, a, &out_shape)
                }
            }
            Op::Range | Op::CastLike | Op::Flatten { .. } => return Err(fail(
                "specialization should have replaced it (its result's length depends on position)"
                    .into(),
            )),
            Op::Unary(_) | Op::Cast { .. } | Op::Gelu | Op::GeluErf | Op::Not | Op::IsNaN => {
                let a = data_axis(0)?;
                contiguous_out(a)?;
                Some(a)
            }
            Op::Identity => ax(0),
            Op::Reshape { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. } | Op::Expand => {
                let a = ax(0)
                    .ok_or_else(|| fail("only its shape operand depends on position".into()))?;
                let s = g.shape(ins[0].expect("input"));
                let b = if matches!(n.op, Op::Expand) {
                    Some(a + out_shape.len() - s.len())
                } else {
                    reshape_axis(&s, a, &out_shape)
                };
                Some(b.ok_or_else(|| {
                    fail(format!(
                        "the reshape {s:?} -> {out_shape:?} splits or merges the sequence axis"
                    ))
                })?)
            }
            Op::Transpose { perm } => {
                let a = data_axis(0)?;
                let p: Vec<usize> = perm
                    .clone()
                    .unwrap_or_else(|| (0..out_shape.len()).rev().collect());
                p.iter().position(|&x| x == a)
            }
            Op::Slice { .. } => {
                let a = data_axis(0)?;
                if out_shape[a] != len {
                    return Err(fail("it slices the sequence axis".into()));
                }
                Some(a)
            }
            Op::Split { axis: sa, .. } => {
                let a = data_axis(0)?;
                if norm_axis(*sa, out_shape.len()).ok() == Some(a) {
                    return Err(fail("it splits the sequence axis".into()));
                }
                for &o in &n.outputs {
                    axis[o] = Some(a);
                }
                Some(a)
            }
            Op::Concat { axis: ca } => {
                let a = ax(0);
                if ins.iter().flatten().any(|&v| axis[v] != a) || a.is_none() {
                    return Err(fail("its inputs disagree on the sequence axis".into()));
                }
                // One input is a copy (transformers' first cache update writes that).
                if norm_axis(*ca, out_shape.len()).ok() == a && ins.iter().flatten().count() > 1 {
                    return Err(fail("it concatenates along the sequence axis".into()));
                }
                a
            }
            Op::Gather { axis: ga } => {
                if ax(0).is_some() {
                    return Err(fail("it gathers from a position-dependent table".into()));
                }
                let gi =
                    norm_axis(*ga, g.shape(ins[0].expect("data")).len()).map_err(|e| fail(e.0))?;
                let a = gi + data_axis(1)?;
                contiguous_out(a)?;
                if !rows_contiguous(g, ins[1].expect("indices"), data_axis(1)?) {
                    return Err(fail("its indices' rows are not contiguous".into()));
                }
                Some(a)
            }
            Op::ReduceMean { .. } | Op::Softmax { .. } => {
                let a = data_axis(0)?;
                let r = g.shape(ins[0].expect("x")).len();
                let touches = match &n.op {
                    Op::Softmax {
                        axis: sa,
                        coerce_2d,
                    } => {
                        let s = norm_axis(*sa, r).map_err(|e| fail(e.0))?;
                        if *coerce_2d {
                            a >= s
                        } else {
                            a == s
                        }
                    }
                    op => crate::ops::reduce::axes_of(
                        op,
                        r,
                        ins.get(1).copied().flatten().and_then(|v| g.konst(v)),
                    )
                    .map_err(|e| fail(e.0))?
                    .is_none_or(|ax| ax.contains(&a)),
                };
                if touches {
                    return Err(fail("it reduces over the sequence axis".into()));
                }
                let b = match &n.op {
                    Op::ReduceMean {
                        keepdims: false, ..
                    } => reshape_axis(&g.shape(ins[0].expect("x")), a, &out_shape),
                    _ => Some(a),
                };
                let b = b.ok_or_else(|| fail("cannot follow the sequence axis".into()))?;
                contiguous_out(b)?;
                if !rows_contiguous(g, ins[0].expect("x"), a) {
                    return Err(fail("its input's rows are not contiguous".into()));
                }
                Some(b)
            }
            Op::MatMul | Op::Gemm { .. } | Op::Linear { .. } => {
                if ax(1).is_some() || ax(2).is_some() {
                    return Err(fail(
                        "its right operand depends on position (attention that was not fused?)"
                            .into(),
                    ));
                }
                let a = data_axis(0)?;
                let s = g.shape(ins[0].expect("a"));
                let row_axis = s.len().saturating_sub(2);
                if let Op::Gemm { trans_a: true, .. } = n.op {
                    return Err(fail("a transposed left operand".into()));
                }
                if a != row_axis || s.len() < 2 || !rows_contiguous(g, ins[0].expect("a"), a) {
                    return Err(fail("the sequence axis is not its row axis".into()));
                }
                let b = out_shape.len() - 2;
                contiguous_out(b)?;
                Some(b)
            }
            Op::Attention(at) => {
                if !at.causal {
                    return Err(fail("not causal self-attention over the sequence".into()));
                }
                // Each operand's rows are the sequence: row i of q, k and v is row i.
                for (i, x) in ins.iter().take(3).enumerate() {
                    let x = x.expect("q, k, v");
                    let (view, shape) = at.operand(i);
                    let rows = axis[x].and_then(|a| {
                        view_row_axis(&g.shape(x), a, view.offset, &view.strides, &shape)
                    });
                    if rows != Some(2) {
                        return Err(fail("not causal self-attention over the sequence".into()));
                    }
                }
                cache.extend([ins[1].expect("k"), ins[2].expect("v")]);
                at.out_perm.iter().position(|&a| a == 2)
            }
            Op::StridedCopy(c) => {
                let x = ins[0].expect("input");
                let a = data_axis(0)?;
                Some(
                    view_row_axis(&g.shape(x), a, c.offset, &c.strides, &c.shape).ok_or_else(
                        || fail("the copy does not keep each row of the sequence whole".into()),
                    )?,
                )
            }
            Op::Shape { .. } | Op::NonZero | Op::ConstantOfShape { .. } => {
                return Err(fail("shape computations must be folded first".into()))
            }
        };
        if !matches!(n.op, Op::Split { .. }) {
            axis[n.outputs[0]] = out_axis;
        }
    }
    for &o in &g.outputs {
        if axis[o].is_none() && g.values[o].konst.is_none() {
            return Err(format!(
                "output '{}' does not run along the sequence",
                g.values[o].name
            ));
        }
    }
    // Tail: nodes that feed output 0 but neither the cache nor any other output.
    let mut state = vec![false; g.values.len()];
    let mut stack: Vec<ValueId> = cache
        .iter()
        .copied()
        .chain(g.outputs[1..].iter().copied())
        .collect();
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut state[v], true) {
            continue;
        }
        if let Some(&p) = producers.get(&v) {
            stack.extend(g.nodes[p].inputs.iter().flatten().copied());
        }
    }
    let tail = g
        .nodes
        .iter()
        .map(|n| n.outputs.iter().all(|&o| !state[o]))
        .collect();
    Ok(SeqInfo {
        len,
        axis,
        cache,
        tail,
        init,
        row_read,
    })
}

/// The nodes in an order that runs every node feeding the cache or the other outputs
/// before the ones that feed only the logits (`SeqInfo::tail`), each group in its original
/// order; `None` when the graph is in that order already. A valid order: a node outside
/// the tail never reads one inside it (its inputs feed the cache too). Batched steps need
/// it, since they compact the rows the tail reads to one per sequence before the tail runs.
pub fn tail_last(g: &Graph, s: &SeqInfo) -> Option<Graph> {
    let first_tail = s.tail.iter().position(|&t| t)?;
    if !s.tail[first_tail..].iter().any(|&t| !t) {
        return None;
    }
    let mut out = g.clone();
    let (head, tail): (Vec<_>, Vec<_>) =
        g.nodes.iter().cloned().zip(&s.tail).partition(|(_, &t)| !t);
    out.nodes = head.into_iter().chain(tail).map(|(n, _)| n).collect();
    Some(out)
}
