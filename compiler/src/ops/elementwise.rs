//! Elementwise ops: Add, Sub, Mul, Div, Pow (binary, with broadcasting) and the unary Sqrt,
//! Tanh, Erf, Sigmoid, Exp, Log, Neg, Abs, Reciprocal, Ceil, Floor.
//!
//! Spec: ONNX Add/Sub/Mul/Div-7..14, Pow-7..15, Sqrt/Tanh/Exp/Log/Neg/Abs/Reciprocal/
//! Sigmoid/Ceil/Floor-6..13, Erf-9..13. Unary ops are float-only except Neg and Abs, which also take
//! i64 and i32 (wrapping, as onnxruntime). Binary ops use numpy
//! multidirectional broadcasting. Types: f32 and f64; Add/Sub/Mul/Div also i64 and i32, with
//! integer division truncating toward zero (as onnxruntime) and division by zero an error.
//! Pow: float base; the exponent may be any numeric type (opset 12+ allows that).

use super::{req, strides, Attrs, InferIn, Op, OutType};
use crate::error::{OpError, OpResult};
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// A binary elementwise op; broadcasts numpy-style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b` (integers truncate toward zero).
    Div,
    /// `a` to the power `b`.
    Pow,
}

/// A unary elementwise op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `√x`.
    Sqrt,
    /// `tanh x`.
    Tanh,
    /// The error function `erf x`.
    Erf,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Log,
    /// `−x`.
    Neg,
    /// `|x|`.
    Abs,
    /// `1 / x`.
    Reciprocal,
    /// Round up to an integer.
    Ceil,
    /// Round down to an integer.
    Floor,
}

/// ONNX names of the unary ops, in `UnaryOp` order.
pub const UNARY: &[(&str, UnaryOp)] = &[
    ("Sqrt", UnaryOp::Sqrt),
    ("Tanh", UnaryOp::Tanh),
    ("Erf", UnaryOp::Erf),
    ("Sigmoid", UnaryOp::Sigmoid),
    ("Exp", UnaryOp::Exp),
    ("Log", UnaryOp::Log),
    ("Neg", UnaryOp::Neg),
    ("Abs", UnaryOp::Abs),
    ("Reciprocal", UnaryOp::Reciprocal),
    ("Ceil", UnaryOp::Ceil),
    ("Floor", UnaryOp::Floor),
];

impl BinaryOp {
    /// ONNX op type, e.g. `Add`.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "Div",
            BinaryOp::Pow => "Pow",
        }
    }
}

impl UnaryOp {
    /// ONNX op type, e.g. `Sqrt`.
    pub fn name(self) -> &'static str {
        UNARY
            .iter()
            .find(|(_, u)| *u == self)
            .map_or("?", |(n, _)| n)
    }

    /// Also defined for signed integers.
    pub fn takes_ints(self) -> bool {
        matches!(self, UnaryOp::Neg | UnaryOp::Abs)
    }

    /// The op on one f64 value (the reference computes in f64 and rounds once).
    pub fn apply(self, v: f64) -> f64 {
        match self {
            UnaryOp::Sqrt => v.sqrt(),
            UnaryOp::Tanh => v.tanh(),
            UnaryOp::Erf => libm::erf(v),
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            UnaryOp::Exp => v.exp(),
            UnaryOp::Log => v.ln(),
            UnaryOp::Neg => -v,
            UnaryOp::Abs => v.abs(),
            UnaryOp::Reciprocal => 1.0 / v,
            UnaryOp::Ceil => v.ceil(),
            UnaryOp::Floor => v.floor(),
        }
    }
}

/// Parses Add, Sub, Mul, Div or Pow (opset ≥ 7) into `Op::Binary`.
pub fn parse_binary(op: &str, a: &Attrs, opset: i64) -> Result<Op, String> {
    // Opset < 7 had explicit `broadcast`/`axis` attributes with other semantics.
    if opset < 7 {
        return Err(format!(
            "opset {opset} broadcasting semantics are not supported (need >= 7)"
        ));
    }
    a.only(&[])?;
    Ok(Op::Binary(match op {
        "Add" => BinaryOp::Add,
        "Sub" => BinaryOp::Sub,
        "Mul" => BinaryOp::Mul,
        "Div" => BinaryOp::Div,
        _ => BinaryOp::Pow,
    }))
}

/// Parses a unary op type into `Op::Unary`.
pub fn parse_unary(op: &str, a: &Attrs) -> Result<Op, String> {
    a.only(&[])?;
    let (_, u) = UNARY
        .iter()
        .find(|(n, _)| *n == op)
        .ok_or_else(|| format!("not a unary op: {op}"))?;
    Ok(Op::Unary(*u))
}

/// Output type: that of input 0, after checking it is one the op takes.
pub fn infer_unary(op: UnaryOp, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let x = req(ins, 0)?;
    let ok = x.dtype.is_float() || (op.takes_ints() && matches!(x.dtype, DType::I64 | DType::I32));
    if !ok {
        return op_err!("{} is not defined for {}", op.name(), x.dtype);
    }
    Ok(vec![(x.dtype, x.shape.to_vec())])
}

/// numpy broadcasting of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return op_err!("shapes {a:?} and {b:?} do not broadcast"),
        };
    }
    Ok(out)
}

/// For each element of `out` (row-major), the offset of the element of `src` it reads
/// under broadcasting. `src` must broadcast to `out`.
pub fn broadcast_offsets(src: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let s = strides(src);
    // Stride per output dim; 0 where `src` is broadcast (size 1 or missing).
    let mut bs = vec![0; r];
    for i in 0..src.len() {
        let o = r - src.len() + i;
        if src[i] != 1 {
            bs[o] = s[i];
        }
    }
    let n: usize = out.iter().product();
    let mut offs = Vec::with_capacity(n);
    let mut idx = vec![0usize; r];
    let mut off = 0usize;
    for _ in 0..n {
        offs.push(off);
        // Increment the multi-index, updating the offset incrementally.
        for d in (0..r).rev() {
            idx[d] += 1;
            off += bs[d];
            if idx[d] < out[d] {
                break;
            }
            off -= bs[d] * idx[d];
            idx[d] = 0;
        }
    }
    offs
}

/// Output type: the common element type and the broadcast shape.
pub fn infer_binary(op: BinaryOp, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    let (a, b) = (req(ins, 0)?, req(ins, 1)?);
    check_types(op, a.dtype, b.dtype)?;
    Ok(vec![(a.dtype, broadcast_shapes(a.shape, b.shape)?)])
}

fn check_types(op: BinaryOp, a: DType, b: DType) -> OpResult<()> {
    match op {
        BinaryOp::Pow if a.is_float() && b != DType::Bool => Ok(()),
        BinaryOp::Pow => op_err!("Pow needs a float base, found {a} ^ {b}"),
        _ if a != b => op_err!("operand types differ: {a} and {b}"),
        _ if matches!(a, DType::F32 | DType::F64 | DType::I64 | DType::I32) => Ok(()),
        _ => op_err!("{} is not defined for {a}", op.name()),
    }
}

fn zip<T: crate::tensor::Elem, U: crate::tensor::Elem, R: crate::tensor::Elem>(
    a: &Tensor,
    b: &Tensor,
    out: &[usize],
    f: impl Fn(T, U) -> OpResult<R>,
) -> OpResult<Tensor> {
    let (av, bv) = (a.to_vec::<T>()?, b.to_vec::<U>()?);
    // Operands of the output's shape, or single values, need no offset tables: the common
    // case, and it is most of what compile-time probes and the interpreter spend.
    let n: usize = out.iter().product();
    if (av.len() == n || av.len() == 1) && (bv.len() == n || bv.len() == 1) {
        fn at<X: Copy>(v: &[X], i: usize) -> X {
            v[if v.len() == 1 { 0 } else { i }]
        }
        let v = (0..n)
            .map(|i| f(at(&av, i), at(&bv, i)))
            .collect::<OpResult<Vec<R>>>()?;
        return Ok(Tensor::from_vec(out.to_vec(), v));
    }
    let (ao, bo) = (
        broadcast_offsets(a.shape(), out),
        broadcast_offsets(b.shape(), out),
    );
    let v = ao
        .iter()
        .zip(&bo)
        .map(|(&i, &j)| f(av[i], bv[j]))
        .collect::<OpResult<Vec<R>>>()?;
    Ok(Tensor::from_vec(out.to_vec(), v))
}

macro_rules! int_op {
    ($op:expr, $a:expr, $b:expr, $out:expr, $t:ty) => {
        zip::<$t, $t, $t>($a, $b, $out, |x, y| match $op {
            BinaryOp::Add => Ok(x.wrapping_add(y)),
            BinaryOp::Sub => Ok(x.wrapping_sub(y)),
            BinaryOp::Mul => Ok(x.wrapping_mul(y)),
            BinaryOp::Div if y == 0 => op_err!("integer division by zero"),
            BinaryOp::Div => Ok(x.wrapping_div(y)),
            BinaryOp::Pow => unreachable!("Pow is float-only"),
        })
    };
}

/// Reference evaluation of `a op b` with broadcasting.
pub fn eval_binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> OpResult<Vec<Tensor>> {
    check_types(op, a.dtype(), b.dtype())?;
    let out = broadcast_shapes(a.shape(), b.shape())?;
    let t = match (op, a.dtype()) {
        (BinaryOp::Pow, DType::F32) => {
            let e = to_f64(b)?;
            let e = Tensor::from_vec(b.shape().to_vec(), e);
            zip::<f32, f64, f32>(a, &e, &out, |x, y| Ok(pow_f32(x, y)))?
        }
        (BinaryOp::Pow, _) => {
            let e = Tensor::from_vec(b.shape().to_vec(), to_f64(b)?);
            zip::<f64, f64, f64>(a, &e, &out, |x, y| Ok(x.powf(y)))?
        }
        (_, DType::F32) => zip::<f32, f32, f32>(a, b, &out, |x, y| Ok(float_op(op, x, y)))?,
        (_, DType::F64) => zip::<f64, f64, f64>(a, b, &out, |x, y| Ok(float_op(op, x, y)))?,
        (_, DType::I64) => int_op!(op, a, b, &out, i64)?,
        (_, DType::I32) => int_op!(op, a, b, &out, i32)?,
        (_, d) => return op_err!("{} is not defined for {d}", op.name()),
    };
    Ok(vec![t])
}

fn float_op<
    T: std::ops::Add<Output = T>
        + std::ops::Sub<Output = T>
        + std::ops::Mul<Output = T>
        + std::ops::Div<Output = T>,
>(
    op: BinaryOp,
    x: T,
    y: T,
) -> T {
    match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Pow => unreachable!("Pow has its own path"),
    }
}

/// f32 power: integral exponents by repeated multiplication in f64 (exact for the small
/// exponents models use, and defined for negative bases), others by `powf`.
fn pow_f32(x: f32, e: f64) -> f32 {
    if e.fract() == 0.0 && e.abs() <= 16.0 {
        (x as f64).powi(e as i32) as f32
    } else {
        (x as f64).powf(e) as f32
    }
}

fn to_f64(t: &Tensor) -> OpResult<Vec<f64>> {
    Ok(match t.dtype() {
        DType::F32 => t.to_vec::<f32>()?.into_iter().map(f64::from).collect(),
        DType::F64 => t.to_vec::<f64>()?,
        DType::Bool => return Err(OpError("bool exponent".into())),
        _ => (0..t.numel()).map(|i| t.get_f64(i)).collect(),
    })
}

/// Reference evaluation of `op x`, elementwise.
pub fn eval_unary(op: UnaryOp, x: &Tensor) -> OpResult<Vec<Tensor>> {
    let f = |v: f64| op.apply(v);
    let int = |v: i64| match op {
        UnaryOp::Neg => v.wrapping_neg(),
        _ => v.wrapping_abs(),
    };
    let t = match x.dtype() {
        DType::I64 if op.takes_ints() => Tensor::from_vec(
            x.shape().to_vec(),
            x.to_vec::<i64>()?.into_iter().map(int).collect(),
        ),
        DType::I32 if op.takes_ints() => Tensor::from_vec(
            x.shape().to_vec(),
            x.to_vec::<i32>()?
                .into_iter()
                .map(|v| int(v as i64) as i32)
                .collect(),
        ),
        DType::F32 => Tensor::from_vec(
            x.shape().to_vec(),
            x.to_vec::<f32>()?
                .into_iter()
                .map(|v| f(v as f64) as f32)
                .collect(),
        ),
        DType::F64 => Tensor::from_vec(
            x.shape().to_vec(),
            x.to_vec::<f64>()?.into_iter().map(f).collect(),
        ),
        d => return op_err!("{} is not defined for {d}", op.name()),
    };
    Ok(vec![t])
}

/// One flop per output element; reads both operands (broadcast ones once).
pub fn cost(ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    super::Cost {
        flops: super::out_count(outs),
        bytes: super::traffic(ins, &[0, 1], outs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_offsets() {
        assert_eq!(broadcast_shapes(&[3, 1], &[1, 4]).unwrap(), vec![3, 4]);
        assert_eq!(broadcast_shapes(&[2, 3, 4], &[4]).unwrap(), vec![2, 3, 4]);
        assert!(broadcast_shapes(&[2, 3], &[4]).is_err());
        assert_eq!(broadcast_offsets(&[3, 1], &[3, 2]), vec![0, 0, 1, 1, 2, 2]);
        assert_eq!(broadcast_offsets(&[2], &[3, 2]), vec![0, 1, 0, 1, 0, 1]);
        assert_eq!(broadcast_offsets(&[], &[2]), vec![0, 0]);
    }

    #[test]
    fn int_division_truncates_and_rejects_zero() {
        let a = Tensor::from_vec(vec![2], vec![-7i64, 7]);
        let b = Tensor::from_vec(vec![1], vec![2i64]);
        let r = eval_binary(BinaryOp::Div, &a, &b).unwrap();
        assert_eq!(r[0].to_vec::<i64>().unwrap(), vec![-3, 3]);
        let z = Tensor::from_vec(vec![1], vec![0i64]);
        assert!(eval_binary(BinaryOp::Div, &a, &z).is_err());
    }
}
