//! ReduceMean (ONNX ReduceMean-1..18): axes as an attribute before opset 18, as an optional
//! input from 18 on (`noop_with_empty_axes`). Float types; sums accumulate in f64.

use super::{input, norm_axis, req, Attrs, InferIn, Op, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// Parses `keepdims`, `noop_with_empty_axes` and (before opset 18) `axes`.
pub fn parse(a: &Attrs, opset: i64) -> Result<Op, String> {
    if opset >= 18 {
        a.only(&["keepdims", "noop_with_empty_axes"])?;
    } else {
        a.only(&["axes", "keepdims"])?;
    }
    Ok(Op::ReduceMean {
        axes: if opset >= 18 { None } else { a.ints("axes")? },
        keepdims: a.int_or("keepdims", 1)? != 0,
        noop_with_empty_axes: a.int_or("noop_with_empty_axes", 0)? != 0,
    })
}

/// The reduced axes (sorted, unique) and whether the op is a no-op.
pub(crate) fn axes_of(
    op: &Op,
    rank: usize,
    axes_input: Option<&Tensor>,
) -> OpResult<Option<Vec<usize>>> {
    let Op::ReduceMean {
        axes,
        noop_with_empty_axes,
        ..
    } = op
    else {
        unreachable!()
    };
    let given = match (axes, axes_input) {
        (Some(a), _) => Some(a.clone()),
        (None, Some(t)) => Some(t.to_i64s()?),
        (None, None) => None,
    };
    let mut ax: Vec<usize> = match given {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&x| norm_axis(x, rank))
            .collect::<OpResult<_>>()?,
        _ if *noop_with_empty_axes => return Ok(None),
        _ => (0..rank).collect(),
    };
    ax.sort_unstable();
    ax.dedup();
    Ok(Some(ax))
}

fn out_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, &d) in shape.iter().enumerate() {
        if !axes.contains(&i) {
            out.push(d);
        } else if keepdims {
            out.push(1);
        }
    }
    out
}

/// Output type: that of input 0 with the reduced axes removed or, with `keepdims`, 1.
pub fn infer(op: &Op, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let Op::ReduceMean { keepdims, .. } = op else {
        unreachable!()
    };
    let x = req(ins, 0)?;
    let axes_in = match ins.get(1).copied().flatten() {
        Some(a) => Some(
            a.konst
                .ok_or_else(|| crate::error::OpError("input 1 (axes) must be a constant".into()))?,
        ),
        None => None,
    };
    match axes_of(op, x.shape.len(), axes_in)? {
        None => Ok(vec![(x.dtype, x.shape.to_vec())]),
        Some(ax) => Ok(vec![(x.dtype, out_shape(x.shape, &ax, *keepdims))]),
    }
}

/// Reference evaluation of ReduceMean.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let Op::ReduceMean { keepdims, .. } = op else {
        unreachable!()
    };
    let x = input(ins, 0)?;
    let Some(ax) = axes_of(op, x.rank(), ins.get(1).copied().flatten())? else {
        return Ok(vec![x.clone()]);
    };
    let v: Vec<f64> = match x.dtype() {
        DType::F32 | DType::F64 => (0..x.numel()).map(|i| x.get_f64(i)).collect(),
        d => return op_err!("ReduceMean is not defined for {d} here"),
    };
    let shape = x.shape();
    // Output index of each input element: drop the reduced coordinates.
    let kept: Vec<usize> = out_shape(shape, &ax, false);
    let count: usize = ax.iter().map(|&a| shape[a]).product();
    let mut sums = vec![0f64; kept.iter().product()];
    let kept_strides = super::strides(&kept);
    let mut idx = vec![0usize; shape.len()];
    for &val in &v {
        let mut o = 0;
        let mut k = 0;
        for (d, &i) in idx.iter().enumerate() {
            if !ax.contains(&d) {
                o += i * kept_strides[k];
                k += 1;
            }
        }
        sums[o] += val;
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    let out = out_shape(shape, &ax, *keepdims);
    let means = sums.into_iter().map(|s| s / count as f64);
    Ok(vec![match x.dtype() {
        DType::F32 => Tensor::from_vec(out, means.map(|m| m as f32).collect()),
        _ => Tensor::from_vec(out, means.collect()),
    }])
}

/// One add per input element and one division per output element.
pub fn cost(ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    let n = ins
        .first()
        .copied()
        .flatten()
        .map_or(0, |x| super::count(x.shape));
    super::Cost {
        flops: n + super::out_count(outs),
        bytes: super::traffic(ins, &[0], outs),
    }
}
