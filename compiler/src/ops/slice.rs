//! Ops that select or join parts of tensors: Concat (4..13), Slice (1..13: attributes before
//! opset 10, inputs starts/ends/axes/steps from 10 on), Split (2..18: `split` an attribute
//! before 13, an input from 13; `num_outputs` from 18) and Gather (1..13). All move bytes
//! and work for every dtype.

use super::transpose::strided_offsets;
use super::{gather_elems, input, norm_axis, req, strides, Attrs, InferIn, Op, OutType};
use crate::error::{OpError, OpResult};
use crate::op_err;
use crate::tensor::Tensor;

/// Slice-1 attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceAttrs {
    /// First index per axis; negative counts from the end, out-of-range values clamp.
    pub starts: Vec<i64>,
    /// End index (exclusive) per axis; negative counts from the end, out-of-range values clamp.
    pub ends: Vec<i64>,
    /// Axes sliced; `None` means `0..starts.len()`.
    pub axes: Option<Vec<i64>>,
}

/// Parses Concat, Slice or Gather.
pub fn parse(op: &str, a: &Attrs, opset: i64) -> Result<Op, String> {
    Ok(match op {
        "Concat" => {
            a.only(&["axis"])?;
            Op::Concat {
                axis: a.int("axis")?.ok_or("missing attribute 'axis'")?,
            }
        }
        "Gather" => {
            a.only(&["axis"])?;
            Op::Gather {
                axis: a.int_or("axis", 0)?,
            }
        }
        "Slice" if opset < 10 => {
            a.only(&["starts", "ends", "axes"])?;
            Op::Slice {
                attrs: Some(SliceAttrs {
                    starts: a.ints("starts")?.ok_or("missing attribute 'starts'")?,
                    ends: a.ints("ends")?.ok_or("missing attribute 'ends'")?,
                    axes: a.ints("axes")?,
                }),
            }
        }
        "Slice" => a.only(&[]).map(|_| Op::Slice { attrs: None })?,
        _ => unreachable!("not a slice op: {op}"),
    })
}

/// Parses Split into `outputs` parts (`split` an attribute before opset 13, `num_outputs` from 18).
pub fn parse_split(a: &Attrs, opset: i64, outputs: usize) -> Result<Op, String> {
    a.only(if opset >= 18 {
        &["axis", "num_outputs"]
    } else if opset >= 13 {
        &["axis"]
    } else {
        &["axis", "split"]
    })?;
    if outputs == 0 {
        return Err("Split has no outputs".into());
    }
    if let Some(n) = a.int("num_outputs")? {
        if n as usize != outputs {
            return Err(format!(
                "num_outputs = {n} but the node has {outputs} outputs"
            ));
        }
    }
    Ok(Op::Split {
        axis: a.int_or("axis", 0)?,
        split: a.ints("split")?,
        outputs,
    })
}

/// Resolved slice along each axis: (start, step, count).
pub(crate) fn slice_plan(
    shape: &[usize],
    op: &Op,
    ins: &[Option<&Tensor>],
) -> OpResult<Vec<(i64, i64, usize)>> {
    let Op::Slice { attrs } = op else {
        unreachable!()
    };
    let opt = |i: usize| ins.get(i).copied().flatten();
    let need = |i: usize, what: &str| {
        opt(i)
            .ok_or_else(|| OpError(format!("input {i} ({what}) must be a constant")))
            .and_then(|t| t.to_i64s())
    };
    let (starts, ends, axes, steps) = match attrs {
        Some(a) => (a.starts.clone(), a.ends.clone(), a.axes.clone(), None),
        None => (
            need(1, "starts")?,
            need(2, "ends")?,
            opt(3).map(|t| t.to_i64s()).transpose()?,
            opt(4).map(|t| t.to_i64s()).transpose()?,
        ),
    };
    let r = shape.len();
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return op_err!("Slice starts/ends/axes/steps lengths differ");
    }
    let mut plan: Vec<(i64, i64, usize)> = shape.iter().map(|&d| (0, 1, d)).collect();
    let mut seen = vec![false; r];
    for i in 0..starts.len() {
        let ax = norm_axis(axes[i], r)?;
        if std::mem::replace(&mut seen[ax], true) {
            return op_err!("Slice axis {ax} given twice");
        }
        let d = shape[ax] as i64;
        let step = steps[i];
        if step == 0 {
            return op_err!("Slice step 0");
        }
        let fix = |x: i64| if x < 0 { x.saturating_add(d) } else { x };
        let (s, e) = (fix(starts[i]), fix(ends[i]));
        let (s, e) = if step > 0 {
            (s.clamp(0, d), e.clamp(0, d))
        } else {
            (s.clamp(0, (d - 1).max(0)), e.clamp(-1, d - 1))
        };
        // In i128: a step near i64::MIN or i64::MAX must not overflow.
        let (span, stride) = if step > 0 {
            (i128::from(e) - i128::from(s), i128::from(step))
        } else {
            (i128::from(s) - i128::from(e), -i128::from(step))
        };
        let count = if d == 0 {
            0
        } else {
            (span + stride - 1).div_euclid(stride).max(0)
        };
        // With at most one element taken the step is irrelevant; a unit one keeps `step ×
        // stride` (the source stride of generated copies) from overflowing.
        let step = if count <= 1 { step.signum() } else { step };
        plan[ax] = (s, step, count as usize);
    }
    Ok(plan)
}

pub(crate) fn split_sizes(
    op: &Op,
    shape: &[usize],
    ins: &[Option<&Tensor>],
) -> OpResult<(usize, Vec<usize>)> {
    let Op::Split {
        axis,
        split,
        outputs,
    } = op
    else {
        unreachable!()
    };
    let ax = norm_axis(*axis, shape.len())?;
    let d = shape[ax];
    let given = match (split, ins.get(1).copied().flatten()) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(t)) => Some(t.to_i64s()?),
        _ => None,
    };
    let sizes: Vec<usize> = match given {
        Some(s) => s
            .iter()
            .map(|&x| usize::try_from(x).map_err(|_| OpError(format!("negative split {x}"))))
            .collect::<OpResult<_>>()?,
        // Equal parts; from opset 18 the last may be smaller.
        None => {
            let part = d.div_ceil(*outputs);
            (0..*outputs)
                .map(|i| part.min(d.saturating_sub(i * part)))
                .collect()
        }
    };
    let total = sizes.iter().try_fold(0usize, |a, &x| a.checked_add(x));
    if sizes.len() != *outputs || total != Some(d) {
        return op_err!("cannot split axis {ax} of size {d} into {sizes:?} for {outputs} outputs");
    }
    Ok((ax, sizes))
}

pub(crate) fn concat_shape(axis: i64, shapes: &[&[usize]]) -> OpResult<(usize, Vec<usize>)> {
    let first = shapes
        .first()
        .ok_or_else(|| OpError("Concat has no inputs".into()))?;
    let ax = norm_axis(axis, first.len())?;
    let mut out = first.to_vec();
    out[ax] = 0;
    for s in shapes {
        if s.len() != first.len()
            || s.iter()
                .zip(first.iter())
                .enumerate()
                .any(|(i, (a, b))| i != ax && a != b)
        {
            return op_err!("Concat inputs {shapes:?} differ outside axis {ax}");
        }
        out[ax] = out[ax]
            .checked_add(s[ax])
            .ok_or_else(|| OpError(format!("Concat of {shapes:?} overflows")))?;
    }
    Ok((ax, out))
}

pub(crate) fn gather_shape(
    axis: i64,
    data: &[usize],
    idx: &[usize],
) -> OpResult<(usize, Vec<usize>)> {
    let ax = norm_axis(axis, data.len())?;
    let mut out = data[..ax].to_vec();
    out.extend_from_slice(idx);
    out.extend_from_slice(&data[ax + 1..]);
    Ok((ax, out))
}

/// Output type of Concat, Slice, Split or Gather; the starts, ends, axes, steps and split
/// inputs must be constant.
pub fn infer(op: &Op, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let consts: Vec<Option<&Tensor>> = ins.iter().map(|i| i.and_then(|i| i.konst)).collect();
    let x = req(ins, 0)?;
    match op {
        Op::Concat { axis } => {
            let all: Vec<InferIn> = ins.iter().flatten().copied().collect();
            if all.iter().any(|i| i.dtype != x.dtype) {
                return op_err!("Concat inputs have different types");
            }
            let shapes: Vec<&[usize]> = all.iter().map(|i| i.shape).collect();
            Ok(vec![(x.dtype, concat_shape(*axis, &shapes)?.1)])
        }
        Op::Slice { .. } => {
            let plan = slice_plan(x.shape, op, &consts)?;
            Ok(vec![(x.dtype, plan.iter().map(|p| p.2).collect())])
        }
        Op::Split { .. } => {
            let (ax, sizes) = split_sizes(op, x.shape, &consts)?;
            Ok(sizes
                .iter()
                .map(|&s| {
                    let mut sh = x.shape.to_vec();
                    sh[ax] = s;
                    (x.dtype, sh)
                })
                .collect())
        }
        Op::Gather { axis } => {
            let i = req(ins, 1)?;
            if !matches!(
                i.dtype,
                crate::tensor::DType::I64 | crate::tensor::DType::I32
            ) {
                return op_err!("Gather indices must be i64 or i32, found {}", i.dtype);
            }
            Ok(vec![(x.dtype, gather_shape(*axis, x.shape, i.shape)?.1)])
        }
        _ => unreachable!(),
    }
}

/// Reference evaluation of Concat, Slice, Split or Gather.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let x = input(ins, 0)?;
    match op {
        Op::Concat { axis } => {
            let all: Vec<&Tensor> = ins.iter().flatten().copied().collect();
            if all.iter().any(|t| t.dtype() != x.dtype()) {
                return op_err!("Concat inputs have different types");
            }
            let shapes: Vec<&[usize]> = all.iter().map(|t| t.shape()).collect();
            let (ax, out) = concat_shape(*axis, &shapes)?;
            let outer: usize = out[..ax].iter().product();
            let mut bytes = Vec::with_capacity(crate::tensor::numel(&out) * x.dtype().size());
            for o in 0..outer {
                for t in &all {
                    let block = t.shape()[ax..].iter().product::<usize>() * x.dtype().size();
                    bytes.extend_from_slice(&t.bytes()[o * block..(o + 1) * block]);
                }
            }
            Ok(vec![Tensor::from_raw(x.dtype(), out, bytes.into())?])
        }
        Op::Slice { .. } => {
            let plan = slice_plan(x.shape(), op, ins)?;
            let st = strides(x.shape());
            let out: Vec<usize> = plan.iter().map(|p| p.2).collect();
            if out.contains(&0) {
                return Ok(vec![Tensor::from_raw(x.dtype(), out, Default::default())?]);
            }
            let base: i64 = plan.iter().zip(&st).map(|(p, &s)| p.0 * s as i64).sum();
            // Negative steps walk backwards: express them as offsets from the base.
            let offs: Vec<i64> = {
                let shape = &out;
                let n: usize = shape.iter().product();
                let mut idx = vec![0usize; shape.len()];
                (0..n)
                    .map(|_| {
                        let o = base
                            + idx
                                .iter()
                                .enumerate()
                                .map(|(d, &i)| i as i64 * plan[d].1 * st[d] as i64)
                                .sum::<i64>();
                        for d in (0..shape.len()).rev() {
                            idx[d] += 1;
                            if idx[d] < shape[d] {
                                break;
                            }
                            idx[d] = 0;
                        }
                        o
                    })
                    .collect()
            };
            Ok(vec![gather_elems(
                x,
                out,
                offs.into_iter().map(|o| o as usize),
            )])
        }
        Op::Split { .. } => {
            let (ax, sizes) = split_sizes(op, x.shape(), ins)?;
            let mut at = 0;
            let mut outs = Vec::new();
            for s in sizes {
                outs.push(part_along(x, ax, at, s));
                at += s;
            }
            Ok(outs)
        }
        Op::Gather { axis } => {
            let idx = input(ins, 1)?;
            let (ax, out) = gather_shape(*axis, x.shape(), idx.shape())?;
            let d = x.shape()[ax] as i64;
            let iv = idx.to_i64s()?;
            let mut fixed = Vec::with_capacity(iv.len());
            for &i in &iv {
                let j = if i < 0 { i + d } else { i };
                if j < 0 || j >= d {
                    return op_err!("Gather index {i} is out of range for axis {ax} of size {d}");
                }
                fixed.push(j as usize);
            }
            let outer: usize = x.shape()[..ax].iter().product();
            let inner: usize = x.shape()[ax + 1..].iter().product();
            let mut offs = Vec::with_capacity(crate::tensor::numel(&out));
            for o in 0..outer {
                for &j in &fixed {
                    let base = (o * x.shape()[ax] + j) * inner;
                    offs.extend(base..base + inner);
                }
            }
            Ok(vec![gather_elems(x, out, offs.into_iter())])
        }
        _ => unreachable!(),
    }
}

/// Elements `start..start + size` of `x` along axis `ax` (one part of a split).
fn part_along(x: &Tensor, ax: usize, start: usize, size: usize) -> Tensor {
    let st = strides(x.shape());
    let mut sh = x.shape().to_vec();
    sh[ax] = size;
    let base = start * st[ax];
    let offs: Vec<usize> = strided_offsets(&sh, &st).map(|o| o + base).collect();
    gather_elems(x, sh, offs.into_iter())
}

/// No arithmetic. Concat and Split read their whole data input; Slice reads only the part
/// it keeps and Gather only the rows it picks (as many bytes as it writes) plus the indices.
pub fn cost(op: &Op, ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    let written = super::traffic(&[], &[], outs);
    let bytes = match op {
        Op::Concat { .. } => super::traffic(ins, &(0..ins.len()).collect::<Vec<_>>(), outs),
        Op::Split { .. } => super::traffic(ins, &[0], outs),
        Op::Gather { .. } => 2 * written + super::traffic(ins, &[1], &[]),
        _ => 2 * written,
    };
    super::Cost { flops: 0, bytes }
}

/// `SequenceAt(SplitToSequence(x, split), position)` (ONNX SplitToSequence-11,
/// SequenceAt-11): one part of a split, as a tensor. The IR has no sequence values; the
/// importer fuses each SequenceAt with the SplitToSequence it reads. `split` absent: parts
/// of size 1, the axis dropped unless `keepdims`; a scalar: parts of that size, the last
/// one smaller if needed; a vector: the part sizes. A negative position counts from the
/// end. Shapes depend on `split` and `position`, so inference needs them constant.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitPart {
    /// Axis split along; negative counts from the end.
    pub axis: i64,
    /// With `split` absent, keep the split axis (as size 1).
    pub keepdims: bool,
}

/// Parses SplitToSequence's `axis` and `keepdims`.
pub fn parse_split_to_sequence(a: &Attrs) -> Result<SplitPart, String> {
    a.only(&["axis", "keepdims"])?;
    Ok(SplitPart {
        axis: a.int_or("axis", 0)?,
        keepdims: a.int_or("keepdims", 1)? != 0,
    })
}

/// (axis, start, size, keep the axis) of the part.
pub(crate) fn split_part(
    p: &SplitPart,
    shape: &[usize],
    split: Option<&Tensor>,
    position: &Tensor,
) -> OpResult<(usize, usize, usize, bool)> {
    let ax = norm_axis(p.axis, shape.len())?;
    let d = shape[ax];
    let (sizes, keep) = match split {
        None => (vec![1; d], p.keepdims),
        Some(t) if t.rank() == 0 => {
            let c = t.to_i64s()?[0];
            if c <= 0 {
                return op_err!("SplitToSequence's split {c} must be positive");
            }
            let c = c as usize;
            let n = d.div_ceil(c);
            ((0..n).map(|i| c.min(d - i * c)).collect(), true)
        }
        Some(t) => {
            let v = t.to_i64s()?;
            if v.iter().any(|&x| x < 0) || v.iter().sum::<i64>() != d as i64 {
                return op_err!("SplitToSequence's split {v:?} does not add up to {d}");
            }
            (v.into_iter().map(|x| x as usize).collect(), true)
        }
    };
    if position.numel() != 1 {
        return op_err!("SequenceAt's position must be a scalar");
    }
    let n = sizes.len() as i64;
    let i = position.to_i64s()?[0];
    let j = if i < 0 { i + n } else { i };
    if j < 0 || j >= n {
        return op_err!("SequenceAt position {i} is out of range for {n} parts");
    }
    let start = sizes[..j as usize].iter().sum();
    Ok((ax, start, sizes[j as usize], keep))
}

fn part_shape(shape: &[usize], ax: usize, size: usize, keep: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keep {
        s[ax] = size;
    } else {
        s.remove(ax);
    }
    s
}

/// Output type of the part; `split` and `position` must be constant.
pub fn infer_split_part(p: &SplitPart, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let x = req(ins, 0)?;
    let split = match ins.get(1).copied().flatten() {
        Some(_) => Some(super::req_const(ins, 1)?),
        None => None,
    };
    let (ax, _, size, keep) = split_part(p, x.shape, split, super::req_const(ins, 2)?)?;
    Ok(vec![(x.dtype, part_shape(x.shape, ax, size, keep))])
}

/// Reference evaluation: the part at `position`.
pub fn eval_split_part(p: &SplitPart, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let x = input(ins, 0)?;
    let (ax, start, size, keep) =
        split_part(p, x.shape(), ins.get(1).copied().flatten(), input(ins, 2)?)?;
    let part = part_along(x, ax, start, size);
    Ok(vec![part.reshaped(part_shape(x.shape(), ax, size, keep))])
}
