//! Fused ops (not in ONNX; produced by the fusion passes): LayerNorm over the last axis and
//! the tanh approximation of GELU. Reference evaluation in f64.

use super::{input, req, InferIn, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// `√(2/π)`, as GPT-2's GELU writes it.
pub const GELU_C: f32 = 0.797_884_6;

/// Output type of LayerNorm: that of x, after checking f32 x `[.., N]` with gamma and beta `[N]`.
pub fn infer_layer_norm(ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let (x, g, b) = (req(ins, 0)?, req(ins, 1)?, req(ins, 2)?);
    let n = *x.shape.last().unwrap_or(&0);
    if x.dtype != DType::F32 || g.shape != [n] || b.shape != [n] {
        return op_err!("LayerNorm needs f32 x [.., N] with gamma and beta [N]");
    }
    Ok(vec![(DType::F32, x.shape.to_vec())])
}

/// `(x − mean) / √(var + eps) · γ + β` over the last axis (population variance).
pub fn eval_layer_norm(eps: f32, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let (x, g, b) = (input(ins, 0)?, input(ins, 1)?, input(ins, 2)?);
    let n = *x.shape().last().unwrap_or(&1);
    let (xv, gv, bv) = (x.to_vec::<f32>()?, g.to_vec::<f32>()?, b.to_vec::<f32>()?);
    let mut out = vec![0f32; xv.len()];
    for (row, o) in xv.chunks(n).zip(out.chunks_mut(n)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        // The graph computes in f32: mean, then the centred square's mean.
        let mean = mean as f32;
        let var = row
            .iter()
            .map(|&v| ((v - mean) as f64).powi(2))
            .sum::<f64>()
            / n as f64;
        let denom = ((var as f32) + eps).sqrt();
        for i in 0..n {
            o[i] = (row[i] - mean) / denom * gv[i] + bv[i];
        }
    }
    Ok(vec![Tensor::from_vec(x.shape().to_vec(), out)])
}

/// `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`.
pub fn gelu(x: f32) -> f32 {
    let x64 = x as f64;
    (0.5 * x64 * (1.0 + ((GELU_C as f64) * (x64 + 0.044715 * x64 * x64 * x64)).tanh())) as f32
}

/// Reference evaluation of the tanh GELU, elementwise.
pub fn eval_gelu(x: &Tensor) -> OpResult<Vec<Tensor>> {
    if x.dtype() != DType::F32 {
        return op_err!("Gelu needs f32");
    }
    Ok(vec![Tensor::from_vec(
        x.shape().to_vec(),
        x.to_vec::<f32>()?.into_iter().map(gelu).collect(),
    )])
}

/// ONNX Gelu-20: `approximate` "none" (exact, erf) or "tanh".
pub fn parse_gelu(a: &super::Attrs) -> Result<super::Op, String> {
    a.only(&["approximate"])?;
    match a.string("approximate")?.as_deref() {
        None | Some("none") => Ok(super::Op::GeluErf),
        Some("tanh") => Ok(super::Op::Gelu),
        Some(o) => Err(format!("unknown approximate '{o}' (expected none or tanh)")),
    }
}

/// `0.5 · x · (1 + erf(x / √2))`, in f64.
pub fn eval_gelu_erf(x: &Tensor) -> OpResult<Vec<Tensor>> {
    if x.dtype() != DType::F32 {
        return op_err!("GeluErf needs f32");
    }
    let f = |v: f32| {
        let v = v as f64;
        (0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2))) as f32
    };
    Ok(vec![Tensor::from_vec(
        x.shape().to_vec(),
        x.to_vec::<f32>()?.into_iter().map(f).collect(),
    )])
}

/// How `RoundRows` rounds each row (the last axis) of its input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowRounding {
    /// Blocks of `block` values on their int8 grid: `q · s` with `s = max|x| / 127` and
    /// `q` as the runtime's int8 kernels round it (`gpt2rt::q8::quantize_block`).
    Int8 {
        /// Values per block, each block with its own scale.
        block: usize,
    },
    /// Every value to bfloat16, nearest even (`gpt2rt::elem::Bf16`).
    Bf16,
    /// Every value to IEEE half precision, nearest even (`gpt2rt::elem::F16`).
    F16,
}

/// Reference evaluation of `RoundRows`.
pub fn eval_round_rows(r: RowRounding, x: &Tensor) -> OpResult<Vec<Tensor>> {
    if x.dtype() != DType::F32 {
        return op_err!("RoundRows needs f32");
    }
    let n = *x.shape().last().unwrap_or(&1);
    let mut v = x.to_vec::<f32>()?;
    match r {
        RowRounding::Int8 { block } => {
            if block == 0 {
                return op_err!("RoundRows needs a block of at least one value");
            }
            let mut q = vec![0i8; block];
            for row in v.chunks_mut(n.max(1)) {
                for b in row.chunks_mut(block) {
                    let (s, _) = gpt2rt::q8::quantize_block(b, &mut q[..b.len()]);
                    b.iter_mut().zip(&q).for_each(|(v, &q)| *v = q as f32 * s);
                }
            }
        }
        RowRounding::Bf16 => {
            use gpt2rt::elem::Bf16;
            v.iter_mut().for_each(|v| *v = Bf16::from_f32(*v).to_f32());
        }
        RowRounding::F16 => {
            use gpt2rt::elem::{PanelElem, F16};
            v.iter_mut().for_each(|v| *v = F16::from_f32(*v).to_f32());
        }
    }
    Ok(vec![Tensor::from_vec(x.shape().to_vec(), v)])
}

/// Three flops per element: the block's maximum, a multiply and a rounding.
pub fn cost_round_rows(ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    super::Cost {
        flops: 3 * super::out_count(outs),
        bytes: super::traffic(ins, &[0], outs),
    }
}

/// Eight flops per element: mean (1), centre (1), square and sum (2), then centre, divide,
/// scale and shift (4).
pub fn cost_layer_norm(ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    super::Cost {
        flops: 8 * super::out_count(outs),
        bytes: super::traffic(ins, &[0, 1, 2], outs),
    }
}

/// Nine flops per element: `0.5·x·(1 + tanh(c·(x + 0.044715·x³)))`, tanh counted once.
pub fn cost_gelu(ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    super::Cost {
        flops: 9 * super::out_count(outs),
        bytes: super::traffic(ins, &[0], outs),
    }
}
