//! Transpose (ONNX Transpose-1..13): permutes axes; no `perm` reverses them.

use super::{gather_elems, req, strides, Attrs, InferIn, Op, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::Tensor;

/// Parses `perm` into `Op::Transpose`.
pub fn parse(a: &Attrs) -> Result<Op, String> {
    a.only(&["perm"])?;
    let perm = match a.ints("perm")? {
        None => None,
        Some(p) => Some(
            p.iter()
                .map(|&x| usize::try_from(x).map_err(|_| format!("negative perm entry {x}")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Op::Transpose { perm })
}

fn resolve(perm: Option<&[usize]>, rank: usize) -> OpResult<Vec<usize>> {
    let p: Vec<usize> = perm.map_or_else(|| (0..rank).rev().collect(), |p| p.to_vec());
    let mut seen = vec![false; rank];
    if p.len() != rank
        || p.iter()
            .any(|&a| a >= rank || std::mem::replace(&mut seen[a], true))
    {
        return op_err!("perm {p:?} is not a permutation of {rank} axes");
    }
    Ok(p)
}

/// Output type: the input's dims permuted.
pub fn infer(perm: Option<&[usize]>, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let x = req(ins, 0)?;
    let p = resolve(perm, x.shape.len())?;
    Ok(vec![(x.dtype, p.iter().map(|&a| x.shape[a]).collect())])
}

/// Reference evaluation of Transpose.
pub fn eval(perm: Option<&[usize]>, x: &Tensor) -> OpResult<Vec<Tensor>> {
    let p = resolve(perm, x.rank())?;
    let out: Vec<usize> = p.iter().map(|&a| x.shape()[a]).collect();
    // Input stride of each output axis: walking the output in order reads these strides.
    let s = strides(x.shape());
    let src_strides: Vec<usize> = p.iter().map(|&a| s[a]).collect();
    Ok(vec![gather_elems(
        x,
        out.clone(),
        strided_offsets(&out, &src_strides),
    )])
}

/// Offsets visited when walking `shape` row-major with the given (source) strides.
pub(crate) fn strided_offsets<'a>(
    shape: &'a [usize],
    st: &'a [usize],
) -> impl Iterator<Item = usize> + 'a {
    let n: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    let mut off = 0usize;
    (0..n).map(move |_| {
        let cur = off;
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            off += st[d];
            if idx[d] < shape[d] {
                break;
            }
            off -= st[d] * idx[d];
            idx[d] = 0;
        }
        cur
    })
}

/// Data movement only: reads the input, writes the output.
pub fn cost(ins: &[Option<super::InferIn>], outs: &[super::OutType]) -> super::Cost {
    super::Cost {
        flops: 0,
        bytes: super::traffic(ins, &[0], outs),
    }
}
