//! Comparisons, boolean logic, selection and elementwise extrema: the ops exporters write
//! for causal and padding masks.
//!
//! Spec: Equal-11..19, Less-9..13, LessOrEqual-12..16, Greater-9..13, GreaterOrEqual-12..16
//! (numpy broadcasting, both operands one type, output bool); Not-1, And-7, Or-7 (bool);
//! IsNaN-9..13 (float in, bool out);
//! Where-9..16 (bool condition, x and y of one type, all three broadcast); Min-8..13 and
//! Max-8..13 (one or more operands of one numeric type, broadcast). Comparisons on floats
//! follow IEEE (NaN compares unequal and unordered), as onnxruntime does.

use super::elementwise::{broadcast_offsets, broadcast_shapes};
use super::{input, req, Attrs, InferIn, Op, OutType};
use crate::error::OpResult;
use crate::op_err;
use crate::tensor::{DType, Tensor};

/// A comparison op: bool result per broadcast element pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `a == b`.
    Equal,
    /// `a < b`.
    Less,
    /// `a ≤ b`.
    LessOrEqual,
    /// `a > b`.
    Greater,
    /// `a ≥ b`.
    GreaterOrEqual,
}

/// A binary boolean op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogicOp {
    /// `a ∧ b`.
    And,
    /// `a ∨ b`.
    Or,
}

impl CmpOp {
    /// ONNX op type, e.g. `Less`.
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Equal => "Equal",
            CmpOp::Less => "Less",
            CmpOp::LessOrEqual => "LessOrEqual",
            CmpOp::Greater => "Greater",
            CmpOp::GreaterOrEqual => "GreaterOrEqual",
        }
    }

    /// Whether the comparison holds for this ordering of a and b; `None` (a NaN operand) never
    /// does.
    pub fn holds(self, o: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Equal => o == Some(Equal),
            CmpOp::Less => o == Some(Less),
            CmpOp::LessOrEqual => matches!(o, Some(Less | Equal)),
            CmpOp::Greater => o == Some(Greater),
            CmpOp::GreaterOrEqual => matches!(o, Some(Greater | Equal)),
        }
    }
}

impl LogicOp {
    /// ONNX op type, `And` or `Or`.
    pub fn name(self) -> &'static str {
        match self {
            LogicOp::And => "And",
            LogicOp::Or => "Or",
        }
    }
}

/// Parses a comparison, Not, And, Or, Where, Min, Max or IsNaN (none has attributes).
pub fn parse(op: &str, a: &Attrs) -> Result<Op, String> {
    a.only(&[])?;
    Ok(match op {
        "Equal" => Op::Compare(CmpOp::Equal),
        "Less" => Op::Compare(CmpOp::Less),
        "LessOrEqual" => Op::Compare(CmpOp::LessOrEqual),
        "Greater" => Op::Compare(CmpOp::Greater),
        "GreaterOrEqual" => Op::Compare(CmpOp::GreaterOrEqual),
        "And" => Op::Logic(LogicOp::And),
        "Or" => Op::Logic(LogicOp::Or),
        "Not" => Op::Not,
        "IsNaN" => Op::IsNaN,
        "Where" => Op::Where,
        "Min" => Op::MinMax { max: false },
        "Max" => Op::MinMax { max: true },
        _ => unreachable!("not a logic op: {op}"),
    })
}

fn numeric(d: DType) -> bool {
    matches!(
        d,
        DType::F32 | DType::F64 | DType::I64 | DType::I32 | DType::I8 | DType::U8
    )
}

/// Output type of a comparison, logic, Where, Min/Max or IsNaN op: the broadcast shape,
/// bool or the operands' type.
pub fn infer(op: &Op, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
    match op {
        Op::Compare(c) => {
            let (a, b) = (req(ins, 0)?, req(ins, 1)?);
            if a.dtype != b.dtype {
                return op_err!(
                    "{} operand types differ: {} and {}",
                    c.name(),
                    a.dtype,
                    b.dtype
                );
            }
            if !(numeric(a.dtype) || (a.dtype == DType::Bool && *c == CmpOp::Equal)) {
                return op_err!("{} is not defined for {}", c.name(), a.dtype);
            }
            Ok(vec![(DType::Bool, broadcast_shapes(a.shape, b.shape)?)])
        }
        Op::Logic(l) => {
            let (a, b) = (req(ins, 0)?, req(ins, 1)?);
            if a.dtype != DType::Bool || b.dtype != DType::Bool {
                return op_err!(
                    "{} needs bool operands, found {} and {}",
                    l.name(),
                    a.dtype,
                    b.dtype
                );
            }
            Ok(vec![(DType::Bool, broadcast_shapes(a.shape, b.shape)?)])
        }
        Op::Not => {
            let x = req(ins, 0)?;
            if x.dtype != DType::Bool {
                return op_err!("Not needs a bool input, found {}", x.dtype);
            }
            Ok(vec![(DType::Bool, x.shape.to_vec())])
        }
        Op::IsNaN => {
            let x = req(ins, 0)?;
            if !x.dtype.is_float() {
                return op_err!("IsNaN needs a float input, found {}", x.dtype);
            }
            Ok(vec![(DType::Bool, x.shape.to_vec())])
        }
        Op::Where => {
            let (c, x, y) = (req(ins, 0)?, req(ins, 1)?, req(ins, 2)?);
            if c.dtype != DType::Bool {
                return op_err!("Where needs a bool condition, found {}", c.dtype);
            }
            if x.dtype != y.dtype {
                return op_err!("Where's values differ in type: {} and {}", x.dtype, y.dtype);
            }
            let s = broadcast_shapes(&broadcast_shapes(c.shape, x.shape)?, y.shape)?;
            Ok(vec![(x.dtype, s)])
        }
        Op::MinMax { .. } => {
            let all: Vec<InferIn> = ins.iter().flatten().copied().collect();
            let Some(first) = all.first() else {
                return op_err!("{} needs at least one input", op.name());
            };
            if !numeric(first.dtype) || all.iter().any(|i| i.dtype != first.dtype) {
                return op_err!("{} needs operands of one numeric type", op.name());
            }
            let mut s = first.shape.to_vec();
            for i in &all[1..] {
                s = broadcast_shapes(&s, i.shape)?;
            }
            Ok(vec![(first.dtype, s)])
        }
        _ => unreachable!(),
    }
}

/// Elements of `t` as f64 (exact for every integer an index or mask holds) and, for i64,
/// as i64 too, so comparisons of large integers stay exact.
enum Vals {
    F(Vec<f64>),
    I(Vec<i64>),
}

fn vals(t: &Tensor) -> OpResult<Vals> {
    Ok(match t.dtype() {
        DType::I64 => Vals::I(t.to_vec::<i64>()?),
        DType::I32 | DType::I8 | DType::U8 | DType::Bool => {
            Vals::I((0..t.numel()).map(|i| t.get_f64(i) as i64).collect())
        }
        _ => Vals::F((0..t.numel()).map(|i| t.get_f64(i)).collect()),
    })
}

fn cmp_at(a: &Vals, i: usize, b: &Vals, j: usize) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Vals::I(a), Vals::I(b)) => Some(a[i].cmp(&b[j])),
        (Vals::F(a), Vals::F(b)) => a[i].partial_cmp(&b[j]),
        _ => None,
    }
}

/// A bool tensor of shape `out`: `f(i, j)` for the elements `i` of `a` and `j` of `b` that
/// each output element broadcasts from.
fn pairwise(a: &Tensor, b: &Tensor, out: Vec<usize>, f: impl Fn(usize, usize) -> bool) -> Tensor {
    let (ao, bo) = (
        broadcast_offsets(a.shape(), &out),
        broadcast_offsets(b.shape(), &out),
    );
    let v: Vec<bool> = ao.iter().zip(&bo).map(|(&i, &j)| f(i, j)).collect();
    Tensor::from_vec(out, v)
}

/// Reference evaluation of a comparison, logic, Where, Min/Max or IsNaN op.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let types: Vec<Option<InferIn>> = ins
        .iter()
        .map(|t| {
            t.map(|t| InferIn {
                dtype: t.dtype(),
                shape: t.shape(),
                konst: None,
            })
        })
        .collect();
    let (dtype, out) = infer(op, &types)?.remove(0);
    match op {
        Op::Compare(c) => {
            let (a, b) = (input(ins, 0)?, input(ins, 1)?);
            let (av, bv) = (vals(a)?, vals(b)?);
            Ok(vec![pairwise(a, b, out, |i, j| {
                c.holds(cmp_at(&av, i, &bv, j))
            })])
        }
        Op::Logic(l) => {
            let (a, b) = (input(ins, 0)?, input(ins, 1)?);
            let (av, bv) = (a.to_vec::<bool>()?, b.to_vec::<bool>()?);
            Ok(vec![pairwise(a, b, out, |i, j| match l {
                LogicOp::And => av[i] && bv[j],
                LogicOp::Or => av[i] || bv[j],
            })])
        }
        Op::Not => {
            let x = input(ins, 0)?;
            let v: Vec<bool> = x.to_vec::<bool>()?.into_iter().map(|b| !b).collect();
            Ok(vec![Tensor::from_vec(out, v)])
        }
        Op::IsNaN => {
            let x = input(ins, 0)?;
            let v: Vec<bool> = (0..x.numel()).map(|i| x.get_f64(i).is_nan()).collect();
            Ok(vec![Tensor::from_vec(out, v)])
        }
        Op::Where => {
            let (c, x, y) = (input(ins, 0)?, input(ins, 1)?, input(ins, 2)?);
            let cv = c.to_vec::<bool>()?;
            let (co, xo, yo) = (
                broadcast_offsets(c.shape(), &out),
                broadcast_offsets(x.shape(), &out),
                broadcast_offsets(y.shape(), &out),
            );
            let s = dtype.size();
            let (xb, yb) = (x.bytes(), y.bytes());
            let mut bytes = Vec::with_capacity(co.len() * s);
            for k in 0..co.len() {
                let (src, o) = if cv[co[k]] { (xb, xo[k]) } else { (yb, yo[k]) };
                bytes.extend_from_slice(&src[o * s..(o + 1) * s]);
            }
            Ok(vec![Tensor::from_raw(dtype, out, bytes.into())?])
        }
        Op::MinMax { max } => {
            let all: Vec<&Tensor> = ins.iter().flatten().copied().collect();
            let s = dtype.size();
            let offs: Vec<Vec<usize>> = all
                .iter()
                .map(|t| broadcast_offsets(t.shape(), &out))
                .collect();
            let vs: Vec<Vals> = all.iter().map(|t| vals(t)).collect::<OpResult<_>>()?;
            let mut bytes = Vec::with_capacity(crate::tensor::numel(&out) * s);
            for k in 0..crate::tensor::numel(&out) {
                // The winning operand's element, copied as is (keeps every dtype exact).
                let mut best = 0;
                for t in 1..all.len() {
                    let o = cmp_at(&vs[t], offs[t][k], &vs[best], offs[best][k]);
                    let better = match (o, max) {
                        (Some(std::cmp::Ordering::Greater), true)
                        | (Some(std::cmp::Ordering::Less), false) => true,
                        // NaN propagates (as onnxruntime's std::max/min-based kernels do
                        // for a NaN in a later operand).
                        (None, _) => matches!(&vs[t], Vals::F(v) if v[offs[t][k]].is_nan()),
                        _ => false,
                    };
                    if better {
                        best = t;
                    }
                }
                let o = offs[best][k];
                bytes.extend_from_slice(&all[best].bytes()[o * s..(o + 1) * s]);
            }
            Ok(vec![Tensor::from_raw(dtype, out, bytes.into())?])
        }
        _ => unreachable!(),
    }
}

/// One operation per output element; reads every operand.
pub fn cost(ins: &[Option<InferIn>], outs: &[OutType]) -> super::Cost {
    super::Cost {
        flops: super::out_count(outs),
        bytes: super::traffic(ins, &(0..ins.len()).collect::<Vec<_>>(), outs),
    }
}
