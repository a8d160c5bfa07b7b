//! Attention (not an ONNX op: produced by `passes::fuse_attention`).
//!
//! `out[b,h,i,:] = Σ_j softmax_j(scale · q[b,h,i,:]·k[b,h,j,:] + mask(i,j)) · v[b,h,j,:]`
//! over logical q `[B,H,Lq,D]` and k, v `[B,H,Lk,D]`. Each operand is a strided view
//! (`HeadView`) of the tensor the node reads: dense after fusion (k possibly transposed),
//! and after `passes::fold_attention_layout` e.g. q read straight from a fused QKV
//! projection. The output is `[B,H,Lq,D]` with its axes permuted by `out_perm`, dense.
//! With `causal`, query row i sees keys j ≤ i + (Lk − Lq); the scores of the others are
//! `masked` (the exported graph's large negative constant, whose softmax weight is exactly
//! 0 in f32, so kernels may skip those keys).

use super::{input, req, InferIn, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// A strided view of one operand: element `[b, h, i, c]` (batch, head, row, channel) is
/// element `offset + b·s₀ + h·s₁ + i·s₂ + c·s₃` of the tensor, in row-major order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadView {
    /// Index of element `[0, 0, 0, 0]`.
    pub offset: usize,
    /// Element strides `s₀..s₃` of the batch, head, row and channel axes.
    pub strides: [usize; 4],
}

impl HeadView {
    /// The tensor is the operand itself, row-major `shape`.
    pub fn dense(shape: [usize; 4]) -> HeadView {
        let s = super::strides(&shape);
        HeadView {
            offset: 0,
            strides: [s[0], s[1], s[2], s[3]],
        }
    }

    /// Element `[b, h, i, c]`.
    pub fn at(&self, idx: [usize; 4]) -> usize {
        self.offset + (0..4).map(|a| idx[a] * self.strides[a]).sum::<usize>()
    }

    /// One past the last element a `shape` view reads (0 when empty).
    pub fn end(&self, shape: [usize; 4]) -> usize {
        if shape.contains(&0) {
            return 0;
        }
        self.at(shape.map(|n| n - 1)) + 1
    }
}

/// A fused scaled-dot-product attention node: sizes, masking and the views of q, k and v.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attention {
    /// Factor on the scores `q·k`, typically `1/√D`.
    pub scale: f32,
    /// Query row i sees only keys `j ≤ i + (Lk − Lq)`.
    pub causal: bool,
    /// Score given to the keys `causal` hides.
    pub masked: f32,
    /// Batch size `B`.
    pub batch: usize,
    /// Number of heads `H`.
    pub heads: usize,
    /// Query rows `Lq`.
    pub q_rows: usize,
    /// Key and value rows `Lk`.
    pub kv_rows: usize,
    /// Head size `D`.
    pub head_dim: usize,
    /// Where the queries are read, as a view of input 0.
    pub q: HeadView,
    /// Where the keys are read, as a view of input 1.
    pub k: HeadView,
    /// Where the values are read, as a view of input 2.
    pub v: HeadView,
    /// The output holds `[B,H,Lq,D]` transposed by this permutation (as ONNX Transpose).
    pub out_perm: [usize; 4],
}

impl Attention {
    /// Dense operands of these shapes: q `[B,H,Lq,D]`, v `[B,H,Lk,D]`, k `[B,H,Lk,D]` or,
    /// with `k_transposed`, `[B,H,D,Lk]`.
    pub fn dense(
        scale: f32,
        causal: bool,
        masked: f32,
        q: &[usize],
        k: &[usize],
        v: &[usize],
        k_transposed: bool,
    ) -> OpResult<Attention> {
        if q.len() != 4 || k.len() != 4 || v.len() != 4 {
            return op_err!("Attention needs rank-4 q, k, v; found {q:?}, {k:?}, {v:?}");
        }
        let (lk, dk) = if k_transposed {
            (k[3], k[2])
        } else {
            (k[2], k[3])
        };
        if q[..2] != k[..2] || q[..2] != v[..2] || dk != q[3] || v[2] != lk || v[3] != q[3] {
            return op_err!("Attention shapes do not fit: q {q:?}, k {k:?}, v {v:?}");
        }
        let mut kv = HeadView::dense([k[0], k[1], k[2], k[3]]);
        if k_transposed {
            kv.strides.swap(2, 3);
        }
        Ok(Attention {
            scale,
            causal,
            masked,
            batch: q[0],
            heads: q[1],
            q_rows: q[2],
            kv_rows: lk,
            head_dim: q[3],
            q: HeadView::dense([q[0], q[1], q[2], q[3]]),
            k: kv,
            v: HeadView::dense([v[0], v[1], v[2], v[3]]),
            out_perm: [0, 1, 2, 3],
        })
    }

    /// Logical q (and output) shape `[B,H,Lq,D]`.
    pub fn q_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.q_rows, self.head_dim]
    }

    /// Logical k and v shape `[B,H,Lk,D]`.
    pub fn kv_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.kv_rows, self.head_dim]
    }

    /// The output tensor's shape.
    pub fn out_shape(&self) -> Vec<usize> {
        let s = self.q_shape();
        self.out_perm.iter().map(|&a| s[a]).collect()
    }

    /// Where the output tensor holds each logical `[b, h, i, c]`.
    pub fn out_view(&self) -> HeadView {
        let dense = super::strides(&self.out_shape());
        let mut strides = [0; 4];
        for (pos, &a) in self.out_perm.iter().enumerate() {
            strides[a] = dense[pos];
        }
        HeadView { offset: 0, strides }
    }

    /// The view of input `i` (q, k, v) and its logical shape.
    pub fn operand(&self, i: usize) -> (HeadView, [usize; 4]) {
        match i {
            0 => (self.q, self.q_shape()),
            1 => (self.k, self.kv_shape()),
            _ => (self.v, self.kv_shape()),
        }
    }
}

/// Output type: f32 `[B,H,Lq,D]` permuted by `out_perm`; checks the f32 inputs hold their views.
pub fn infer(a: &Attention, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let mut perm = a.out_perm;
    perm.sort_unstable();
    if perm != [0, 1, 2, 3] {
        return op_err!("Attention output permutation {:?} is not one", a.out_perm);
    }
    if a.causal && a.kv_rows < a.q_rows {
        return op_err!("causal Attention needs at least as many keys as queries");
    }
    for i in 0..3 {
        let x = req(ins, i)?;
        if x.dtype != DType::F32 {
            return op_err!("Attention needs f32 inputs");
        }
        let (view, shape) = a.operand(i);
        let n = crate::tensor::numel(x.shape);
        if view.end(shape) > n {
            return op_err!(
                "Attention input {i} ({:?}) is too small for its view {view:?} of {shape:?}",
                x.shape
            );
        }
    }
    Ok(vec![(DType::F32, a.out_shape())])
}

/// Reference evaluation, accumulating in f64.
pub fn eval(a: &Attention, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let (q, k, v) = (input(ins, 0)?, input(ins, 1)?, input(ins, 2)?);
    let (qv, kv, vv) = (q.to_vec::<f32>()?, k.to_vec::<f32>()?, v.to_vec::<f32>()?);
    let (lq, lk, d) = (a.q_rows, a.kv_rows, a.head_dim);
    let ov = a.out_view();
    let mut out = vec![0f32; crate::tensor::numel(&a.out_shape())];
    let mut s = vec![0f64; lk];
    for b in 0..a.batch {
        for h in 0..a.heads {
            for i in 0..lq {
                for (j, sj) in s.iter_mut().enumerate() {
                    *sj = if a.causal && j > i + (lk - lq) {
                        a.masked as f64
                    } else {
                        let dot: f64 = (0..d)
                            .map(|c| {
                                qv[a.q.at([b, h, i, c])] as f64 * kv[a.k.at([b, h, j, c])] as f64
                            })
                            .sum();
                        // The exported graph divides the f32 product by the scale's inverse.
                        ((dot as f32) * a.scale) as f64
                    };
                }
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                for c in 0..d {
                    let acc: f64 = (0..lk)
                        .map(|j| (s[j] - m).exp() / z * vv[a.v.at([b, h, j, c])] as f64)
                        .sum();
                    out[ov.at([b, h, i, c])] = acc as f32;
                }
            }
        }
    }
    Ok(vec![Tensor::from_vec(a.out_shape(), out)])
}

/// Per visible (query, key) pair: a D-long dot product for the score (2·D), scaling (1),
/// softmax (5) and a D-long weighted sum of values (2·D). With `causal`, query i sees
/// `i + 1 + Lk − Lq` keys. Bytes: q, k, v and the output once each (the operands' views,
/// not the whole tensors they sit in). Query rows come from the output's size, so a caller
/// may cost other row counts by shrinking the shapes; the keys follow the rows.
pub fn cost(a: &Attention, _ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    let per_row = (a.batch * a.heads * a.head_dim) as u64;
    if per_row == 0 {
        return super::Cost::default();
    }
    let lq = super::out_count(outs) / per_row;
    let lk = lq + (a.kv_rows - a.q_rows.min(a.kv_rows)) as u64;
    let (bh, d) = ((a.batch * a.heads) as u64, a.head_dim as u64);
    let pairs = if a.causal {
        lq * (lk - lq) + lq * (lq + 1) / 2
    } else {
        lq * lk
    };
    super::Cost {
        flops: bh * pairs * (4 * d + 6),
        bytes: 4 * bh * d * (2 * lq + 2 * lk),
    }
}
