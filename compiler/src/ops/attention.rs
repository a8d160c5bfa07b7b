//! Attention (not an ONNX op: produced by `passes::fuse_attention`).
//!
//! `out[b,h,i,:] = Σ_j softmax_j(scale · q[b,h,i,:]·k[b,h,j,:] + mask(i,j)) · v[b,h,j,:]`
//! with q `[B,H,Lq,D]`, v `[B,H,Lk,D]`, k `[B,H,Lk,D]` (or `[B,H,D,Lk]` when
//! `k_transposed`). With `causal`, query row i sees keys j ≤ i + (Lk − Lq); the scores of
//! the others are `masked` (the exported graph's large negative constant, whose softmax
//! weight is exactly 0 in f32, so kernels may skip those keys).

use super::{input, req, InferIn, OutType};
use crate::error::OpResult;
use crate::ir::{DType, Tensor};
use crate::op_err;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attention {
    pub scale: f32,
    pub causal: bool,
    pub masked: f32,
    pub k_transposed: bool,
}

/// (B·H, Lq, Lk, D) from the input shapes.
pub fn dims(
    a: &Attention,
    q: &[usize],
    k: &[usize],
    v: &[usize],
) -> OpResult<(usize, usize, usize, usize)> {
    if q.len() != 4 || k.len() != 4 || v.len() != 4 {
        return op_err!("Attention needs rank-4 q, k, v; found {q:?}, {k:?}, {v:?}");
    }
    let (lk, dk) = if a.k_transposed {
        (k[3], k[2])
    } else {
        (k[2], k[3])
    };
    if q[..2] != k[..2] || q[..2] != v[..2] || dk != q[3] || v[2] != lk || v[3] != q[3] {
        return op_err!("Attention shapes do not fit: q {q:?}, k {k:?}, v {v:?}");
    }
    if a.causal && lk < q[2] {
        return op_err!("causal Attention needs at least as many keys as queries");
    }
    Ok((q[0] * q[1], q[2], lk, q[3]))
}

pub fn infer(a: &Attention, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let (q, k, v) = (req(ins, 0)?, req(ins, 1)?, req(ins, 2)?);
    if [q.dtype, k.dtype, v.dtype] != [DType::F32; 3] {
        return op_err!("Attention needs f32 inputs");
    }
    dims(a, q.shape, k.shape, v.shape)?;
    Ok(vec![(DType::F32, q.shape.to_vec())])
}

pub fn eval(a: &Attention, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let (q, k, v) = (input(ins, 0)?, input(ins, 1)?, input(ins, 2)?);
    let (bh, lq, lk, d) = dims(a, q.shape(), k.shape(), v.shape())?;
    let (qv, kv, vv) = (q.to_vec::<f32>()?, k.to_vec::<f32>()?, v.to_vec::<f32>()?);
    let mut out = vec![0f32; bh * lq * d];
    let mut s = vec![0f64; lk];
    for b in 0..bh {
        for i in 0..lq {
            for (j, sj) in s.iter_mut().enumerate() {
                *sj = if a.causal && j > i + (lk - lq) {
                    a.masked as f64
                } else {
                    let dot: f64 = (0..d)
                        .map(|c| {
                            let kk = if a.k_transposed {
                                kv[(b * d + c) * lk + j]
                            } else {
                                kv[(b * lk + j) * d + c]
                            };
                            qv[(b * lq + i) * d + c] as f64 * kk as f64
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
                    .map(|j| (s[j] - m).exp() / z * vv[(b * lk + j) * d + c] as f64)
                    .sum();
                out[(b * lq + i) * d + c] = acc as f32;
            }
        }
    }
    Ok(vec![Tensor::from_vec(q.shape().to_vec(), out)])
}

/// Per visible (query, key) pair: a D-long dot product for the score (2·D), scaling (1),
/// softmax (5) and a D-long weighted sum of values (2·D). With `causal`, query i sees
/// `i + 1 + Lk − Lq` keys.
pub fn cost(a: &Attention, ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    let shape = |i: usize| ins.get(i).copied().flatten().map_or(&[][..], |x| x.shape);
    let Ok((bh, lq, lk, d)) = dims(a, shape(0), shape(1), shape(2)) else {
        return super::Cost::default();
    };
    let (bh, lq, lk, d) = (bh as u64, lq as u64, lk as u64, d as u64);
    let pairs = if a.causal {
        lq * (lk - lq) + lq * (lq + 1) / 2
    } else {
        lq * lk
    };
    super::Cost {
        flops: bh * pairs * (4 * d + 6),
        bytes: super::traffic(ins, &[0, 1, 2], outs),
    }
}
