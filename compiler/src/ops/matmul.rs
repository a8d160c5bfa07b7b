//! MatMul (ONNX MatMul-1..13, numpy `matmul` semantics: 1-D operands are promoted and the
//! batch dims broadcast) and Gemm (ONNX Gemm-7..13: `alpha·op(A)·op(B) + beta·C`, C
//! unidirectionally broadcast to [M, N] and optional from opset 11). f32/f64; every dot
//! product accumulates in f64.

use super::elementwise::{broadcast_offsets, broadcast_shapes};
use super::{input, req, Attrs, InferIn, Op, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// Parses MatMul, or Gemm's `alpha`, `beta`, `transA` and `transB`.
pub fn parse(op: &str, a: &Attrs) -> Result<Op, String> {
    if op == "MatMul" {
        a.only(&[])?;
        return Ok(Op::MatMul);
    }
    a.only(&["alpha", "beta", "transA", "transB", "broadcast"])?;
    Ok(Op::Gemm {
        alpha: a.float_or("alpha", 1.0)?,
        beta: a.float_or("beta", 1.0)?,
        trans_a: a.int_or("transA", 0)? != 0,
        trans_b: a.int_or("transB", 0)? != 0,
    })
}

/// Most matrices one batched MatMul may multiply. The generated code lists each one's
/// offsets (GPT-2 multiplies one per head), so this bounds the source a node can produce.
pub const MAX_BATCH: usize = 1 << 16;

/// Shapes of a numpy matmul.
struct MatMulDims {
    batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
    out: Vec<usize>,
}

fn matmul_dims(a: &[usize], b: &[usize]) -> OpResult<MatMulDims> {
    if a.is_empty() || b.is_empty() {
        return op_err!("MatMul operands must have rank >= 1, found {a:?} and {b:?}");
    }
    let (m, k) = if a.len() == 1 {
        (1, a[0])
    } else {
        (a[a.len() - 2], a[a.len() - 1])
    };
    let (k2, n) = if b.len() == 1 {
        (b[0], 1)
    } else {
        (b[b.len() - 2], b[b.len() - 1])
    };
    if k != k2 {
        return op_err!("MatMul inner dimensions differ: {a:?} x {b:?}");
    }
    let ab = if a.len() > 2 {
        &a[..a.len() - 2]
    } else {
        &[][..]
    };
    let bb = if b.len() > 2 {
        &b[..b.len() - 2]
    } else {
        &[][..]
    };
    let batch = broadcast_shapes(ab, bb)?;
    let count = batch
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d.max(1)));
    if count.is_none_or(|n| n > MAX_BATCH) {
        return op_err!(
            "MatMul of {a:?} x {b:?} multiplies more than {MAX_BATCH} matrices, the most supported"
        );
    }
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(MatMulDims {
        batch,
        m,
        k,
        n,
        out,
    })
}

pub(crate) fn gemm_dims(op: &Op, a: &[usize], b: &[usize]) -> OpResult<(usize, usize, usize)> {
    let Op::Gemm {
        trans_a, trans_b, ..
    } = op
    else {
        unreachable!()
    };
    if a.len() != 2 || b.len() != 2 {
        return op_err!("Gemm needs 2-D operands, found {a:?} and {b:?}");
    }
    let (m, k) = if *trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
    let (k2, n) = if *trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
    if k != k2 {
        return op_err!(
            "Gemm inner dimensions differ: {a:?} x {b:?} (transA={trans_a}, transB={trans_b})"
        );
    }
    Ok((m, k, n))
}

fn check_float(a: DType, b: DType) -> OpResult<()> {
    if a != b || !a.is_float() {
        return op_err!("expected two f32 or two f64 operands, found {a} and {b}");
    }
    Ok(())
}

/// Output type of MatMul (numpy `matmul` shape) or Gemm (`[M, N]`).
pub fn infer(op: &Op, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let (a, b) = (req(ins, 0)?, req(ins, 1)?);
    check_float(a.dtype, b.dtype)?;
    if let Op::MatMul = op {
        return Ok(vec![(a.dtype, matmul_dims(a.shape, b.shape)?.out)]);
    }
    let (m, _, n) = gemm_dims(op, a.shape, b.shape)?;
    if let Some(c) = ins.get(2).copied().flatten() {
        if broadcast_shapes(c.shape, &[m, n])? != [m, n] {
            return op_err!(
                "Gemm C of shape {:?} does not broadcast to [{m}, {n}]",
                c.shape
            );
        }
    }
    Ok(vec![(a.dtype, vec![m, n])])
}

fn f64s(t: &Tensor) -> Vec<f64> {
    (0..t.numel()).map(|i| t.get_f64(i)).collect()
}

fn finish(dtype: DType, shape: Vec<usize>, v: Vec<f64>) -> Tensor {
    match dtype {
        DType::F32 => Tensor::from_vec(shape, v.into_iter().map(|x| x as f32).collect()),
        _ => Tensor::from_vec(shape, v),
    }
}

/// `c[m,n] = sum_k a[m,k] * b[k,n]` with element strides, accumulating in f64.
#[allow(clippy::too_many_arguments)]
fn mm(
    a: &[f64],
    ars: usize,
    acs: usize,
    b: &[f64],
    brs: usize,
    bcs: usize,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f64> {
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let av = a[i * ars + p * acs];
            for (j, r) in row.iter_mut().enumerate() {
                *r += av * b[p * brs + j * bcs];
            }
        }
    }
    c
}

/// Reference evaluation of MatMul or Gemm.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let (a, b) = (input(ins, 0)?, input(ins, 1)?);
    check_float(a.dtype(), b.dtype())?;
    let (av, bv) = (f64s(a), f64s(b));
    match op {
        Op::MatMul => {
            let MatMulDims {
                batch,
                m,
                k,
                n,
                out,
            } = matmul_dims(a.shape(), b.shape())?;
            // Offsets of each batch's matrix in a and b, broadcasting the batch dims.
            let ab: Vec<usize> = a.shape()[..a.rank().saturating_sub(2)].to_vec();
            let bb: Vec<usize> = b.shape()[..b.rank().saturating_sub(2)].to_vec();
            let ao = broadcast_offsets(&ab, &batch);
            let bo = broadcast_offsets(&bb, &batch);
            let mut res = Vec::with_capacity(crate::tensor::numel(&out));
            for (&ia, &ib) in ao.iter().zip(&bo) {
                let aslice = &av[ia * m * k..(ia + 1) * m * k];
                let bslice = &bv[ib * k * n..(ib + 1) * k * n];
                res.extend(mm(aslice, k, 1, bslice, n, 1, m, k, n));
            }
            Ok(vec![finish(a.dtype(), out, res)])
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let (m, k, n) = gemm_dims(op, a.shape(), b.shape())?;
            let (ars, acs) = if *trans_a { (1, m) } else { (k, 1) };
            let (brs, bcs) = if *trans_b { (1, k) } else { (n, 1) };
            let mut y = mm(&av, ars, acs, &bv, brs, bcs, m, k, n);
            for v in &mut y {
                *v *= *alpha as f64;
            }
            if let Some(c) = ins.get(2).copied().flatten() {
                if c.dtype() != a.dtype() {
                    return op_err!("Gemm C is {}, A is {}", c.dtype(), a.dtype());
                }
                if broadcast_shapes(c.shape(), &[m, n])? != [m, n] {
                    return op_err!(
                        "Gemm C of shape {:?} does not broadcast to [{m}, {n}]",
                        c.shape()
                    );
                }
                let cv = f64s(c);
                for (v, o) in y.iter_mut().zip(broadcast_offsets(c.shape(), &[m, n])) {
                    *v += *beta as f64 * cv[o];
                }
            }
            Ok(vec![finish(a.dtype(), vec![m, n], y)])
        }
        _ => unreachable!(),
    }
}

/// Every output element is a dot product of length K: `2·K` flops each, plus one add per
/// element for Gemm's C and one multiply each for an alpha or beta other than 1.
pub fn cost(op: &Op, ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    let out = super::out_count(outs);
    let a = ins.first().copied().flatten().map_or(&[][..], |x| x.shape);
    let k = match op {
        Op::Gemm { trans_a: true, .. } => a.first(),
        _ => a.last(),
    }
    .map_or(0, |&k| k as u64);
    let mut flops = 2 * k * out;
    if let Op::Gemm { alpha, beta, .. } = op {
        let has_c = ins.get(2).copied().flatten().is_some();
        flops += out * (u64::from(has_c) + u64::from(*alpha != 1.0))
            + out * u64::from(has_c && *beta != 1.0);
    }
    super::Cost {
        flops,
        bytes: super::traffic(ins, &[0, 1, 2], outs),
    }
}
