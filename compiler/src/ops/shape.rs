//! Shape-manipulating ops: Shape (1..21), ConstantOfShape (9..21), NonZero (9..13),
//! Expand (8..13), Reshape (5..21), Squeeze and Unsqueeze (1..21: axes an attribute before
//! opset 13, an input from 13 on), Flatten (1..21: negative axes from 11).
//!
//! After specialization these either fold away (their results depend only on shapes) or
//! become pure data movement; NonZero's output shape depends on data, so it must fold.

use super::elementwise::{broadcast_offsets, broadcast_shapes};
use super::{input, norm_axis, req, req_const, Attrs, InferIn, Op, OutType};
use crate::error::{OpError, OpResult};
use crate::op_err;
use crate::tensor::{checked_numel, DType, Tensor};

/// Parses Shape, ConstantOfShape, NonZero, Expand, Reshape, Squeeze, Unsqueeze or Flatten.
pub fn parse(op: &str, a: &Attrs, opset: i64) -> Result<Op, String> {
    Ok(match op {
        "Shape" => {
            a.only(&["start", "end"])?;
            Op::Shape {
                start: a.int_or("start", 0)?,
                end: a.int("end")?,
            }
        }
        "ConstantOfShape" => {
            a.only(&["value"])?;
            let value = a.tensor("value")?.unwrap_or_else(|| Tensor::scalar(0f32));
            if value.numel() != 1 {
                return Err(format!(
                    "'value' must hold one element, found {:?}",
                    value.shape()
                ));
            }
            Op::ConstantOfShape {
                value: value.reshaped(vec![]),
            }
        }
        "NonZero" => a.only(&[]).map(|_| Op::NonZero)?,
        "Flatten" => {
            a.only(&["axis"])?;
            Op::Flatten {
                axis: a.int_or("axis", 1)?,
            }
        }
        "Expand" => a.only(&[]).map(|_| Op::Expand)?,
        "Reshape" => {
            a.only(&["allowzero"])?;
            Op::Reshape {
                allow_zero: a.int_or("allowzero", 0)? != 0,
            }
        }
        "Squeeze" | "Unsqueeze" => {
            a.only(if opset >= 13 { &[] } else { &["axes"] })?;
            let axes = if opset >= 13 { None } else { a.ints("axes")? };
            if op == "Unsqueeze" && opset < 13 && axes.is_none() {
                return Err("missing attribute 'axes'".into());
            }
            if op == "Squeeze" {
                Op::Squeeze { axes }
            } else {
                Op::Unsqueeze { axes }
            }
        }
        _ => unreachable!("not a shape op: {op}"),
    })
}

/// Flatten's 2-D result; `axis` may equal the rank (everything in the first dim).
pub fn flatten_shape(x: &[usize], axis: i64) -> OpResult<Vec<usize>> {
    let r = x.len() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a > r {
        return op_err!("Flatten axis {axis} is out of range for rank {r}");
    }
    let a = a as usize;
    Ok(vec![x[..a].iter().product(), x[a..].iter().product()])
}

/// A 1-D integer tensor read as dims (must be non-negative).
fn dims_of(t: &Tensor) -> OpResult<Vec<i64>> {
    if t.rank() != 1 {
        return op_err!("expected a 1-D shape tensor, found shape {:?}", t.shape());
    }
    t.to_i64s()
}

fn to_usize_dims(d: &[i64]) -> OpResult<Vec<usize>> {
    let dims = d
        .iter()
        .map(|&x| usize::try_from(x).map_err(|_| OpError(format!("negative dimension in {d:?}"))))
        .collect::<OpResult<Vec<_>>>()?;
    if checked_numel(&dims).is_none_or(|n| n > (1 << 40)) {
        return op_err!("shape {dims:?} is too large");
    }
    Ok(dims)
}

fn shape_range(start: i64, end: Option<i64>, rank: usize) -> (usize, usize) {
    let clamp = |x: i64| {
        let x = if x < 0 { x + rank as i64 } else { x };
        x.clamp(0, rank as i64) as usize
    };
    let (s, e) = (clamp(start), clamp(end.unwrap_or(rank as i64)));
    (s, e.max(s))
}

fn reshape_target(x: &[usize], target: &[i64], allow_zero: bool) -> OpResult<Vec<usize>> {
    let total: usize = x.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                out.push(1);
            }
            -1 => return op_err!("Reshape target {target:?} has more than one -1"),
            0 if !allow_zero => match x.get(i) {
                Some(&d) => out.push(d),
                None => {
                    return op_err!(
                        "Reshape target {target:?}: 0 at {i} copies a missing dim of {x:?}"
                    )
                }
            },
            t if t >= 0 => out.push(t as usize),
            _ => return op_err!("Reshape target {target:?} has a negative dimension"),
        }
    }
    let known = checked_numel(&out).ok_or_else(|| OpError("Reshape target overflows".into()))?;
    if let Some(i) = infer_at {
        if known == 0 || !total.is_multiple_of(known) {
            return op_err!("cannot reshape {x:?} to {target:?}");
        }
        out[i] = total / known;
    } else if known != total {
        return op_err!("cannot reshape {x:?} ({total} elements) to {target:?}");
    }
    Ok(out)
}

fn squeeze_shape(x: &[usize], axes: Option<&[i64]>) -> OpResult<Vec<usize>> {
    match axes {
        None => Ok(x.iter().copied().filter(|&d| d != 1).collect()),
        Some(ax) => {
            let ax = ax
                .iter()
                .map(|&a| norm_axis(a, x.len()))
                .collect::<OpResult<Vec<_>>>()?;
            for &a in &ax {
                if x[a] != 1 {
                    return op_err!("cannot squeeze axis {a} of shape {x:?}: its size is not 1");
                }
            }
            Ok(x.iter()
                .enumerate()
                .filter(|(i, _)| !ax.contains(i))
                .map(|(_, &d)| d)
                .collect())
        }
    }
}

fn unsqueeze_shape(x: &[usize], axes: &[i64]) -> OpResult<Vec<usize>> {
    let r = x.len() + axes.len();
    let mut ax = axes
        .iter()
        .map(|&a| norm_axis(a, r))
        .collect::<OpResult<Vec<_>>>()?;
    ax.sort_unstable();
    if ax.windows(2).any(|w| w[0] == w[1]) {
        return op_err!("Unsqueeze axes {axes:?} repeat");
    }
    let mut src = x.iter();
    Ok((0..r)
        .map(|i| {
            if ax.contains(&i) {
                1
            } else {
                *src.next().expect("rank")
            }
        })
        .collect())
}

/// Axes of Squeeze/Unsqueeze: the attribute, or the optional constant input 1.
fn axes_from(attr: &Option<Vec<i64>>, input1: Option<&Tensor>) -> OpResult<Option<Vec<i64>>> {
    match (attr, input1) {
        (Some(a), _) => Ok(Some(a.clone())),
        (None, Some(t)) => Ok(Some(t.to_i64s()?)),
        (None, None) => Ok(None),
    }
}

/// Output shape from the input shape and the constant inputs (the shared core of
/// inference and evaluation). `consts[i]` is input i's data when known.
fn out_shape(op: &Op, x: &[usize], consts: &[Option<&Tensor>]) -> OpResult<Vec<usize>> {
    let c = |i: usize| {
        consts
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| OpError(format!("input {i} must be a constant")))
    };
    match op {
        Op::Shape { start, end } => {
            let (s, e) = shape_range(*start, *end, x.len());
            Ok(vec![e - s])
        }
        Op::ConstantOfShape { .. } => to_usize_dims(&dims_of(c(0)?)?),
        Op::Expand => broadcast_shapes(x, &to_usize_dims(&dims_of(c(1)?)?)?),
        Op::Reshape { allow_zero } => reshape_target(x, &dims_of(c(1)?)?, *allow_zero),
        Op::Flatten { axis } => flatten_shape(x, *axis),
        Op::Squeeze { axes } => {
            let ax = axes_from(axes, consts.get(1).copied().flatten())?;
            squeeze_shape(x, ax.as_deref())
        }
        Op::Unsqueeze { axes } => {
            let ax = match axes {
                Some(a) => a.clone(),
                None => c(1)?.to_i64s()?,
            };
            unsqueeze_shape(x, &ax)
        }
        _ => unreachable!(),
    }
}

/// Output type of a shape op; shapes read from an input need it constant.
pub fn infer(op: &Op, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let consts: Vec<Option<&Tensor>> = ins.iter().map(|i| i.and_then(|i| i.konst)).collect();
    match op {
        Op::Shape { .. } => Ok(vec![(
            DType::I64,
            out_shape(op, req(ins, 0)?.shape, &consts)?,
        )]),
        Op::ConstantOfShape { value } => {
            req_const(ins, 0)?;
            Ok(vec![(value.dtype(), out_shape(op, &[], &consts)?)])
        }
        Op::NonZero => {
            // The count of non-zeros is data: only a constant input has a static output.
            let x = req_const(ins, 0)?;
            Ok(eval(op, &[Some(x)])?
                .into_iter()
                .map(|t| (t.dtype(), t.shape().to_vec()))
                .collect())
        }
        _ => {
            let x = req(ins, 0)?;
            Ok(vec![(x.dtype, out_shape(op, x.shape, &consts)?)])
        }
    }
}

/// Reference evaluation of a shape op.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    Ok(vec![match op {
        Op::Shape { start, end } => {
            let x = input(ins, 0)?;
            let (s, e) = shape_range(*start, *end, x.rank());
            Tensor::from_vec(
                vec![e - s],
                x.shape()[s..e].iter().map(|&d| d as i64).collect(),
            )
        }
        Op::ConstantOfShape { value } => {
            let shape = out_shape(op, &[], ins)?;
            let n = crate::tensor::numel(&shape);
            let bytes = value.bytes().repeat(n);
            Tensor::from_raw(value.dtype(), shape, bytes.into())?
        }
        Op::NonZero => {
            let x = input(ins, 0)?;
            let st = super::strides(x.shape());
            let nz: Vec<usize> = (0..x.numel()).filter(|&i| x.get_f64(i) != 0.0).collect();
            let mut out = Vec::with_capacity(x.rank() * nz.len());
            for (&s, &d) in st.iter().zip(x.shape()) {
                out.extend(nz.iter().map(|&i| ((i / s) % d) as i64));
            }
            Tensor::from_vec(vec![x.rank(), nz.len()], out)
        }
        Op::Expand => {
            let x = input(ins, 0)?;
            let shape = out_shape(op, x.shape(), ins)?;
            let offs = broadcast_offsets(x.shape(), &shape);
            super::gather_elems(x, shape, offs.into_iter())
        }
        _ => {
            let x = input(ins, 0)?;
            x.reshaped(out_shape(op, x.shape(), ins)?)
        }
    }])
}

/// No arithmetic. Shape reads only its input's type; ConstantOfShape only writes; NonZero
/// and Expand read their data input.
pub fn cost(op: &Op, ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    let read: &[usize] = match op {
        Op::NonZero | Op::Expand => &[0],
        _ => &[],
    };
    super::Cost {
        flops: 0,
        bytes: super::traffic(ins, read, outs),
    }
}
