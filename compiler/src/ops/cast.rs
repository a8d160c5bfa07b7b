//! Cast (ONNX Cast-6..13) and CastLike (15+, the type of its second input): converts element
//! types like a C++ `static_cast`, as onnxruntime does: float→int truncates toward zero,
//! anything→bool is `x != 0`. Specialization turns CastLike into Cast once types are known.

use super::{Attrs, Op};
use crate::error::OpResult;
use crate::tensor::{DType, Tensor};

/// Parses Cast's `to` (and the accepted `saturate`) into `Op::Cast`.
pub fn parse(a: &Attrs) -> Result<Op, String> {
    a.only(&["to", "saturate"])?;
    let code = a.int("to")?.ok_or("missing attribute 'to'")?;
    let to = i32::try_from(code)
        .map_err(|_| format!("bad 'to' {code}"))
        .and_then(|c| DType::from_onnx(c).map_err(|n| format!("cast to {n} is not supported")))?;
    Ok(Op::Cast { to })
}

/// Parses CastLike into `Op::CastLike`.
pub fn parse_like(a: &Attrs) -> Result<Op, String> {
    a.only(&["saturate"])?;
    Ok(Op::CastLike)
}

/// Converts `x` to `to`, as `static_cast` does.
pub fn eval(to: DType, x: &Tensor) -> OpResult<Vec<Tensor>> {
    let shape = x.shape().to_vec();
    let n = x.numel();
    // Integers pass through i64 exactly; floats through f64.
    let t = if x.dtype().is_float() {
        let v: Vec<f64> = (0..n).map(|i| x.get_f64(i)).collect();
        match to {
            DType::F32 => Tensor::from_vec(shape, v.iter().map(|&f| f as f32).collect()),
            DType::F64 => Tensor::from_vec(shape, v),
            DType::I64 => Tensor::from_vec(shape, v.iter().map(|&f| f as i64).collect()),
            DType::I32 => Tensor::from_vec(shape, v.iter().map(|&f| f as i32).collect()),
            DType::I8 => Tensor::from_vec(shape, v.iter().map(|&f| f as i64 as i8).collect()),
            DType::U8 => Tensor::from_vec(shape, v.iter().map(|&f| f as i64 as u8).collect()),
            DType::Bool => Tensor::from_vec(shape, v.iter().map(|&f| f != 0.0).collect()),
        }
    } else {
        let v: Vec<i64> = match x.dtype() {
            DType::I64 => x.to_vec::<i64>()?,
            _ => (0..n).map(|i| x.get_f64(i) as i64).collect(),
        };
        match to {
            DType::F32 => Tensor::from_vec(shape, v.iter().map(|&i| i as f32).collect()),
            DType::F64 => Tensor::from_vec(shape, v.iter().map(|&i| i as f64).collect()),
            DType::I64 => Tensor::from_vec(shape, v),
            DType::I32 => Tensor::from_vec(shape, v.iter().map(|&i| i as i32).collect()),
            DType::I8 => Tensor::from_vec(shape, v.iter().map(|&i| i as i8).collect()),
            DType::U8 => Tensor::from_vec(shape, v.iter().map(|&i| i as u8).collect()),
            DType::Bool => Tensor::from_vec(shape, v.iter().map(|&i| i != 0).collect()),
        }
    };
    Ok(vec![t])
}

/// Data movement only.
pub fn cost(ins: &[Option<super::InferIn>], outs: &[super::OutType]) -> super::Cost {
    super::Cost {
        flops: 0,
        bytes: super::traffic(ins, &[0], outs),
    }
}
