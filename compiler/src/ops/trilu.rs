//! Trilu (ONNX Trilu-14): keeps the upper (`upper = 1`: column − row ≥ k) or lower
//! (`upper = 0`: column − row ≤ k) triangle of the last two axes and zeroes the rest. `k`
//! is an optional scalar i64 input (default 0). Any dtype; rank ≥ 2. Exporters build causal
//! masks with it (`Trilu(ones, upper = 0)` or `Trilu(min, k = 1)`).

use super::{input, req, Attrs, InferIn, Op, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// Parses `upper` (default 1) into `Op::Trilu`.
pub fn parse(a: &Attrs) -> Result<Op, String> {
    a.only(&["upper"])?;
    Ok(Op::Trilu {
        upper: a.int_or("upper", 1)? != 0,
    })
}

/// Output type: that of input 0 (rank ≥ 2); the optional k must be one i64.
pub fn infer(ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let x = req(ins, 0)?;
    if x.shape.len() < 2 {
        return op_err!("Trilu needs rank 2 or more, found {:?}", x.shape);
    }
    if let Some(k) = ins.get(1).copied().flatten() {
        if k.dtype != DType::I64 || crate::tensor::numel(k.shape) != 1 {
            return op_err!("Trilu's k must be one i64, found {}{:?}", k.dtype, k.shape);
        }
    }
    Ok(vec![(x.dtype, x.shape.to_vec())])
}

/// Reference evaluation of Trilu.
pub fn eval(upper: bool, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let x = input(ins, 0)?;
    let r = x.rank();
    if r < 2 {
        return op_err!("Trilu needs rank 2 or more, found {:?}", x.shape());
    }
    let k = match ins.get(1).copied().flatten() {
        Some(t) => t.to_i64s()?.first().copied().unwrap_or(0),
        None => 0,
    };
    let (rows, cols) = (x.shape()[r - 2], x.shape()[r - 1]);
    let s = x.dtype().size();
    let mut bytes = x.bytes().to_vec();
    for (e, chunk) in bytes.chunks_exact_mut(s).enumerate() {
        let (i, j) = (((e / cols) % rows) as i64, (e % cols) as i64);
        let keep = if upper { j - i >= k } else { j - i <= k };
        if !keep {
            chunk.fill(0);
        }
    }
    Ok(vec![Tensor::from_raw(
        x.dtype(),
        x.shape().to_vec(),
        bytes.into(),
    )?])
}
