//! StridedCopy (not an ONNX op: produced by `passes::fold_copies`): a copy of any strided
//! view of its input, `out[idx] = x[offset + Σ idx·strides]` over the flat (row-major)
//! input. One node stands for a chain of data movement (Split, Slice, Transpose and the
//! reshapes between them), so the chain costs one copy.

use super::{gather_elems, req, InferIn, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::Tensor;

/// A copy of a strided view of the input (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StridedCopy {
    /// Flat input offset of output element 0.
    pub offset: usize,
    /// Flat input stride of each output axis.
    pub strides: Vec<usize>,
    /// The output shape.
    pub shape: Vec<usize>,
}

impl StridedCopy {
    /// One past the last input element read (0 when the output is empty).
    pub fn end(&self) -> usize {
        if self.shape.contains(&0) {
            return 0;
        }
        self.offset
            + self
                .shape
                .iter()
                .zip(&self.strides)
                .map(|(&n, &s)| (n - 1) * s)
                .sum::<usize>()
            + 1
    }
}

/// Output type: the input's dtype and `shape`, after checking the view reads inside the input.
pub fn infer(c: &StridedCopy, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let x = req(ins, 0)?;
    if c.strides.len() != c.shape.len() {
        return op_err!(
            "{} strides for a rank-{} output",
            c.strides.len(),
            c.shape.len()
        );
    }
    if c.end() > crate::tensor::numel(x.shape) {
        return op_err!("the view {c:?} reads past the input {:?}", x.shape);
    }
    Ok(vec![(x.dtype, c.shape.clone())])
}

/// Reference evaluation: gathers the view's elements.
pub fn eval(c: &StridedCopy, x: &Tensor) -> OpResult<Vec<Tensor>> {
    let offsets = super::transpose::strided_offsets(&c.shape, &c.strides).map(|o| o + c.offset);
    Ok(vec![gather_elems(x, c.shape.clone(), offsets)])
}

/// Data movement only: reads what it copies, writes the output.
pub fn cost(outs: &[OutType]) -> super::Cost {
    super::Cost {
        flops: 0,
        bytes: 2 * super::traffic(&[], &[], outs),
    }
}
