//! Linear (fused; from `passes::fuse_linear`): `y[.., N] = act(x[.., K] · W[K, N] + b[N])`
//! with `W` (and `b`, when present) constant. Every leading dimension of `x` is a row, so a
//! prompt's tokens are the rows. f32 only; the reference accumulates in f64.

use super::{input, req, InferIn, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// What a Linear applies to each output after the bias (`passes::fuse_linear_gelu`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// GPT-2's tanh-GELU (`fused::gelu`).
    Gelu,
}

/// Rows, K and N of a Linear with these input shapes.
pub fn dims(x: &[usize], w: &[usize]) -> OpResult<(usize, usize, usize)> {
    let (Some(&k), [k2, n]) = (x.last(), w) else {
        return op_err!("Linear needs x [.., K] and W [K, N], found {x:?} and {w:?}");
    };
    if k != *k2 {
        return op_err!("Linear inner dimensions differ: {x:?} x {w:?}");
    }
    Ok((x[..x.len() - 1].iter().product(), k, *n))
}

/// Output type: f32 `[.., N]` for x `[.., K]` and W `[K, N]`, checking b is `[N]` when present.
pub fn infer(ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let (x, w) = (req(ins, 0)?, req(ins, 1)?);
    if x.dtype != DType::F32 || w.dtype != DType::F32 {
        return op_err!("Linear needs f32, found {} and {}", x.dtype, w.dtype);
    }
    let (_, _, n) = dims(x.shape, w.shape)?;
    if let Some(b) = ins.get(2).copied().flatten() {
        if b.dtype != DType::F32 || b.shape != [n] {
            return op_err!(
                "Linear bias must be f32 [{n}], found {} {:?}",
                b.dtype,
                b.shape
            );
        }
    }
    let mut out = x.shape.to_vec();
    *out.last_mut().expect("rank >= 1") = n;
    Ok(vec![(DType::F32, out)])
}

/// Reference evaluation of `act(x · W + b)`.
pub fn eval(act: Activation, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let (x, w) = (input(ins, 0)?, input(ins, 1)?);
    let (m, k, n) = dims(x.shape(), w.shape())?;
    let (xv, wv) = (x.to_vec::<f32>()?, w.to_vec::<f32>()?);
    let bias = match ins.get(2).copied().flatten() {
        Some(b) => b.to_vec::<f32>()?,
        None => vec![0.0; n],
    };
    if bias.len() != n {
        return op_err!("Linear bias must have {n} elements, found {}", bias.len());
    }
    let mut y = vec![0f32; m * n];
    let mut acc = vec![0f64; n];
    for i in 0..m {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for p in 0..k {
            let xv = xv[i * k + p] as f64;
            for (a, &wv) in acc.iter_mut().zip(&wv[p * n..(p + 1) * n]) {
                *a += xv * wv as f64;
            }
        }
        for ((o, a), b) in y[i * n..(i + 1) * n].iter_mut().zip(&acc).zip(&bias) {
            // The graph rounds the product to f32 before adding the bias.
            *o = (*a as f32) + b;
            if act == Activation::Gelu {
                *o = super::fused::gelu(*o);
            }
        }
    }
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = n;
    Ok(vec![Tensor::from_vec(shape, y)])
}

/// `2·K` flops per output element, one for the bias, and a GELU's nine.
pub fn cost(act: Activation, ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    let k = ins
        .first()
        .copied()
        .flatten()
        .and_then(|x| x.shape.last())
        .map_or(0, |&k| k as u64);
    let has_bias = ins.get(2).copied().flatten().is_some();
    let out = super::out_count(outs);
    super::Cost {
        flops: (2 * k + u64::from(has_bias) + 9 * u64::from(act == Activation::Gelu)) * out,
        bytes: super::traffic(ins, &[0, 1, 2], outs),
    }
}
