//! LayerNormalization (ONNX LayerNormalization-17): normalizes over the axes from `axis`
//! (default −1) to the last, `(x − mean) / √(var + epsilon) · Scale + B`, with the
//! population variance; Scale and the optional B broadcast against those trailing axes.
//! The optional Mean and InvStdDev outputs (f32, X's shape with 1 from `axis` on) are
//! computed by the interpreter; code generation needs them unused. `passes::fuse_layernorm` turns the common
//! case (last axis, vectors of the width) into the fused `LayerNorm`.

use super::elementwise::broadcast_offsets;
use super::{input, norm_axis, req, Attrs, InferIn, Op, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// Parses `axis`, `epsilon` and `stash_type` (only 1, f32 statistics) into
/// `Op::LayerNormalization`; the number of outputs is up to the last named one in `outputs`.
pub fn parse(a: &Attrs, outputs: &[String]) -> Result<Op, String> {
    a.only(&["axis", "epsilon", "stash_type"])?;
    if a.int_or("stash_type", 1)? != 1 {
        return Err("only stash_type = 1 (f32 statistics) is supported".into());
    }
    let outputs = outputs
        .iter()
        .rposition(|o| !o.is_empty())
        .map_or(1, |i| i + 1);
    if outputs > 3 {
        return Err(format!(
            "LayerNormalization has at most 3 outputs, found {outputs}"
        ));
    }
    Ok(Op::LayerNormalization {
        axis: a.int_or("axis", -1)?,
        eps: a.float_or("epsilon", 1e-5)?,
        outputs,
    })
}

/// X's shape with every axis from `a` on set to 1: the shape of Mean and InvStdDev.
fn stat_shape(x: &[usize], a: usize) -> Vec<usize> {
    x.iter()
        .enumerate()
        .map(|(i, &d)| if i < a { d } else { 1 })
        .collect()
}

/// The normalized trailing shape must take Scale and B by broadcasting.
fn check(axis: i64, x: &[usize], dtype: DType, params: &[(DType, &[usize])]) -> OpResult<usize> {
    if !dtype.is_float() {
        return op_err!("LayerNormalization needs a float input, found {dtype}");
    }
    let a = norm_axis(axis, x.len())?;
    let tail = &x[a..];
    for (d, s) in params {
        let fits = s.len() <= tail.len()
            && s.iter()
                .rev()
                .zip(tail.iter().rev())
                .all(|(&p, &t)| p == t || p == 1);
        if *d != dtype || !fits {
            return op_err!(
                "LayerNormalization's scale and bias must be {dtype} broadcasting to {tail:?}, found {d}{s:?}"
            );
        }
    }
    Ok(a)
}

/// Output types: Y like X, then Mean and InvStdDev as requested.
pub fn infer(axis: i64, outputs: usize, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let x = req(ins, 0)?;
    let params: Vec<(DType, &[usize])> = ins[1..]
        .iter()
        .flatten()
        .map(|p| (p.dtype, p.shape))
        .collect();
    if req(ins, 1).is_err() {
        return op_err!("LayerNormalization needs a Scale input");
    }
    let a = check(axis, x.shape, x.dtype, &params)?;
    let mut outs = vec![(x.dtype, x.shape.to_vec())];
    outs.extend(vec![(DType::F32, stat_shape(x.shape, a)); outputs - 1]);
    Ok(outs)
}

/// Reference evaluation of LayerNormalization.
pub fn eval(axis: i64, eps: f32, outputs: usize, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let (x, scale) = (input(ins, 0)?, input(ins, 1)?);
    let bias = ins.get(2).copied().flatten();
    let params: Vec<(DType, &[usize])> = [Some(scale), bias]
        .into_iter()
        .flatten()
        .map(|p| (p.dtype(), p.shape()))
        .collect();
    let a = check(axis, x.shape(), x.dtype(), &params)?;
    let tail = &x.shape()[a..];
    let n: usize = tail.iter().product();
    let xv: Vec<f64> = (0..x.numel()).map(|i| x.get_f64(i)).collect();
    let so = broadcast_offsets(scale.shape(), tail);
    let bo = bias.map(|b| broadcast_offsets(b.shape(), tail));
    let mut out = vec![0f64; xv.len()];
    let (mut means, mut invs) = (Vec::new(), Vec::new());
    if n > 0 {
        for (row, o) in xv.chunks(n).zip(out.chunks_mut(n)) {
            let mean = row.iter().sum::<f64>() / n as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            means.push(mean as f32);
            invs.push(inv as f32);
            for i in 0..n {
                let b = match (&bo, bias) {
                    (Some(bo), Some(b)) => b.get_f64(bo[i]),
                    _ => 0.0,
                };
                o[i] = (row[i] - mean) * inv * scale.get_f64(so[i]) + b;
            }
        }
    }
    let shape = x.shape().to_vec();
    let stats = stat_shape(&shape, a);
    let mut outs = vec![match x.dtype() {
        DType::F32 => Tensor::from_vec(shape, out.into_iter().map(|v| v as f32).collect()),
        _ => Tensor::from_vec(shape, out),
    }];
    for v in [means, invs].into_iter().take(outputs - 1) {
        outs.push(Tensor::from_vec(stats.clone(), v));
    }
    Ok(outs)
}
