//! CumSum (ONNX CumSum-11/14): running sums along one axis, given as a scalar (or
//! one-element) i64/i32 input. `exclusive` leaves each element out of its own sum;
//! `reverse` sums from the end. Types: f32, f64, i64, i32. Optimum's position ids are
//! `CumSum(attention_mask) − 1`.

use super::{input, norm_axis, req, Attrs, InferIn, Op, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// Parses `exclusive` and `reverse` into `Op::CumSum`.
pub fn parse(a: &Attrs) -> Result<Op, String> {
    a.only(&["exclusive", "reverse"])?;
    Ok(Op::CumSum {
        exclusive: a.int_or("exclusive", 0)? != 0,
        reverse: a.int_or("reverse", 0)? != 0,
    })
}

fn axis_of(t: &Tensor, rank: usize) -> OpResult<usize> {
    if t.numel() != 1 || t.rank() > 1 {
        return op_err!(
            "CumSum's axis must be a scalar, found shape {:?}",
            t.shape()
        );
    }
    norm_axis(t.to_i64s()?[0], rank)
}

/// Output type: that of input 0; the axis must be a scalar or one-element integer.
pub fn infer(ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let (x, ax) = (req(ins, 0)?, req(ins, 1)?);
    if !matches!(x.dtype, DType::F32 | DType::F64 | DType::I64 | DType::I32) {
        return op_err!("CumSum is not defined for {}", x.dtype);
    }
    if !matches!(ax.dtype, DType::I64 | DType::I32) || crate::tensor::numel(ax.shape) != 1 {
        return op_err!(
            "CumSum's axis must be one i64 or i32, found {}{:?}",
            ax.dtype,
            ax.shape
        );
    }
    if let Some(t) = ax.konst {
        axis_of(t, x.shape.len())?;
    }
    Ok(vec![(x.dtype, x.shape.to_vec())])
}

/// Reference evaluation of CumSum.
pub fn eval(exclusive: bool, reverse: bool, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let x = input(ins, 0)?;
    let shape = x.shape().to_vec();
    let ax = axis_of(input(ins, 1)?, shape.len())?;
    let (n, inner) = (shape[ax], shape[ax + 1..].iter().product::<usize>());
    let outer: usize = shape[..ax].iter().product();
    fn scan<T: Copy + std::ops::Add<Output = T> + Default>(
        v: &[T],
        outer: usize,
        n: usize,
        inner: usize,
        exclusive: bool,
        reverse: bool,
    ) -> Vec<T> {
        let mut out = vec![T::default(); v.len()];
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = T::default();
                for step in 0..n {
                    let j = if reverse { n - 1 - step } else { step };
                    let k = (o * n + j) * inner + i;
                    if exclusive {
                        out[k] = acc;
                        acc = acc + v[k];
                    } else {
                        acc = acc + v[k];
                        out[k] = acc;
                    }
                }
            }
        }
        out
    }
    let t = match x.dtype() {
        DType::F32 => Tensor::from_vec(
            shape,
            scan(&x.to_vec::<f32>()?, outer, n, inner, exclusive, reverse),
        ),
        DType::F64 => Tensor::from_vec(
            shape,
            scan(&x.to_vec::<f64>()?, outer, n, inner, exclusive, reverse),
        ),
        DType::I64 => Tensor::from_vec(
            shape,
            scan(&x.to_vec::<i64>()?, outer, n, inner, exclusive, reverse),
        ),
        DType::I32 => Tensor::from_vec(
            shape,
            scan(&x.to_vec::<i32>()?, outer, n, inner, exclusive, reverse),
        ),
        d => return op_err!("CumSum is not defined for {d}"),
    };
    Ok(vec![t])
}
