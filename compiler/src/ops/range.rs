//! Range (ONNX Range-11): `start, start + delta, …` up to (not including) `limit`, of
//! length `max(⌈(limit − start) / delta⌉, 0)`. Exporters write it for position ids
//! (`Range(0, L, 1)` from the input's shape), so specialization folds it to a constant.
//! Types: f32, f64, i64, i32, all three inputs of one type and rank 0. A zero delta is an
//! error (onnxruntime rejects it too). The length depends on the values, so inference needs
//! all three inputs constant.

use super::{input, req, req_const, Attrs, InferIn, Op, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// Parses Range (no attributes).
pub fn parse(a: &Attrs) -> Result<Op, String> {
    a.only(&[])?;
    Ok(Op::Range)
}

fn scalar(t: &Tensor, what: &str) -> OpResult<f64> {
    if t.numel() != 1 || t.rank() > 1 {
        return op_err!(
            "Range's {what} must be a scalar, found shape {:?}",
            t.shape()
        );
    }
    Ok(t.get_f64(0))
}

/// The number of elements, from the three scalars.
fn length(start: f64, limit: f64, delta: f64) -> OpResult<usize> {
    if delta == 0.0 {
        return op_err!("Range's delta is zero");
    }
    let n = ((limit - start) / delta).ceil();
    // (The difference is taken in the inputs' type: f32 inputs arrive exact in f64, and
    // their f32 difference is what onnxruntime divides.)
    if !n.is_finite() || n > crate::tensor::MAX_ELEMS as f64 {
        return op_err!("Range({start}, {limit}, {delta}) has too many elements");
    }
    Ok(n.max(0.0) as usize)
}

/// `length` with the difference `limit − start` rounded to f32 for f32 inputs.
fn length_typed(d: DType, start: f64, limit: f64, delta: f64) -> OpResult<usize> {
    match d {
        DType::F32 => length(0.0, (limit as f32 - start as f32) as f64, delta),
        _ => length(start, limit, delta),
    }
}

fn check_types(ins: &[DType]) -> OpResult<DType> {
    let d = ins[0];
    if ins.iter().any(|&x| x != d)
        || !matches!(d, DType::F32 | DType::F64 | DType::I64 | DType::I32)
    {
        return op_err!(
            "Range needs start, limit and delta of one type (f32, f64, i64, i32), found {ins:?}"
        );
    }
    Ok(d)
}

/// Output type: 1-D of the inputs' type, its length computed from the three inputs, which
/// must be constant.
pub fn infer(ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let d = check_types(&[req(ins, 0)?.dtype, req(ins, 1)?.dtype, req(ins, 2)?.dtype])?;
    let (s, l, dl) = (req_const(ins, 0)?, req_const(ins, 1)?, req_const(ins, 2)?);
    let n = length_typed(
        d,
        scalar(s, "start")?,
        scalar(l, "limit")?,
        scalar(dl, "delta")?,
    )?;
    Ok(vec![(d, vec![n])])
}

/// Reference evaluation of Range.
pub fn eval(ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let (s, l, dl) = (input(ins, 0)?, input(ins, 1)?, input(ins, 2)?);
    let d = check_types(&[s.dtype(), l.dtype(), dl.dtype()])?;
    let (a, b, c) = (
        scalar(s, "start")?,
        scalar(l, "limit")?,
        scalar(dl, "delta")?,
    );
    let n = length_typed(d, a, b, c)?;
    Ok(vec![match d {
        // Integers step exactly; floats as onnxruntime: start + i·delta.
        DType::I64 => {
            let (a, c) = (s.to_i64s()?[0], dl.to_i64s()?[0]);
            Tensor::from_vec(vec![n], (0..n as i64).map(|i| a + i * c).collect())
        }
        DType::I32 => {
            let (a, c) = (s.to_i64s()?[0], dl.to_i64s()?[0]);
            Tensor::from_vec(vec![n], (0..n as i64).map(|i| (a + i * c) as i32).collect())
        }
        // Floats accumulate in their own type, as onnxruntime does (`v += delta`).
        DType::F32 => Tensor::from_vec(vec![n], accumulate(a as f32, c as f32, n)),
        _ => Tensor::from_vec(vec![n], accumulate(a, c, n)),
    }])
}

/// `n` values from `start`, adding `delta` each time in `T`.
fn accumulate<T: Copy + std::ops::AddAssign>(start: T, delta: T, n: usize) -> Vec<T> {
    let mut v = start;
    (0..n)
        .map(|_| {
            let x = v;
            v += delta;
            x
        })
        .collect()
}
