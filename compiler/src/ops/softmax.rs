//! Softmax (ONNX Softmax-1..13). Before opset 13 the input is coerced to 2-D at `axis` and
//! the softmax runs over the flattened trailing block; from 13 on it runs along `axis` only.
//! Computed in f64 with the max subtracted.

use super::{norm_axis, Attrs, Op};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// Parses `axis` (default 1 before opset 13, −1 from 13) into `Op::Softmax`.
pub fn parse(a: &Attrs, opset: i64) -> Result<Op, String> {
    a.only(&["axis"])?;
    let default = if opset >= 13 { -1 } else { 1 };
    Ok(Op::Softmax {
        axis: a.int_or("axis", default)?,
        coerce_2d: opset < 13,
    })
}

/// Reference evaluation of Softmax.
pub fn eval(axis: i64, coerce_2d: bool, x: &Tensor) -> OpResult<Vec<Tensor>> {
    if !x.dtype().is_float() {
        return op_err!("Softmax needs a float input, found {}", x.dtype());
    }
    if x.rank() == 0 {
        return op_err!("Softmax needs an input of rank >= 1");
    }
    let shape = x.shape();
    let ax = norm_axis(axis, x.rank())?;
    let v: Vec<f64> = (0..x.numel()).map(|i| x.get_f64(i)).collect();
    // View as [outer, n, inner]: softmax over n for each (outer, inner).
    let (outer, n, inner) = if coerce_2d {
        (
            shape[..ax].iter().product(),
            shape[ax..].iter().product(),
            1,
        )
    } else {
        (
            shape[..ax].iter().product(),
            shape[ax],
            shape[ax + 1..].iter().product(),
        )
    };
    let mut out = vec![0f64; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| o * n * inner + k * inner + i;
            let m = (0..n).map(|k| v[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..n).map(|k| (v[at(k)] - m).exp()).sum();
            for k in 0..n {
                out[at(k)] = (v[at(k)] - m).exp() / s;
            }
        }
    }
    Ok(vec![match x.dtype() {
        DType::F32 => Tensor::from_vec(shape.to_vec(), out.into_iter().map(|f| f as f32).collect()),
        _ => Tensor::from_vec(shape.to_vec(), out),
    }])
}

/// Five flops per element: max, subtract, exp, sum, divide.
pub fn cost(ins: &[Option<super::InferIn>], outs: &[super::OutType]) -> super::Cost {
    super::Cost {
        flops: 5 * super::out_count(outs),
        bytes: super::traffic(ins, &[0], outs),
    }
}
