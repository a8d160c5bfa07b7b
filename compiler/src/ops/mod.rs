//! The ops the IR supports, one module per family.
//!
//! Each family module has, for its ops: attribute parsing and validation (`parse*`, from the
//! format-free `attrs::Attrs` the front end converts a node's attributes into), static shape
//! inference, and a reference evaluation with the ONNX semantics of the opsets it names. `Op`
//! ties them together; `REGISTRY` lists the ONNX op types we accept.

pub mod attention;
pub mod cast;
pub mod cumsum;
pub mod elementwise;
pub mod fused;
pub mod linear;
pub mod logic;
pub mod matmul;
pub mod norm;
pub mod range;
pub mod reduce;
pub mod shape;
pub mod slice;
pub mod softmax;
pub mod strided_copy;
pub mod transpose;
pub mod trilu;

use crate::attrs::Attrs;
use crate::error::{OpError, OpResult};
use crate::tensor::{DType, Tensor};

pub use elementwise::{BinaryOp, UnaryOp};
pub use logic::{CmpOp, LogicOp};

/// A typed op with validated attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Identity: the input unchanged.
    Identity,
    /// Add, Sub, Mul, Div, Pow, broadcasting.
    Binary(BinaryOp),
    /// Sqrt, Tanh, Erf, Sigmoid, Exp, Log, Neg, Abs, Reciprocal, Ceil, Floor.
    Unary(UnaryOp),
    /// Cast: converts the elements to another type.
    Cast {
        /// Target element type.
        to: DType,
    },
    /// Cast to the type of input 1 (specialization makes it a `Cast`).
    CastLike,
    /// `[d₀…d_{axis−1}, d_axis…]` → `[Πd₀…, Πd_axis…]` (specialization makes it a `Reshape`).
    Flatten {
        /// Number of leading axes folded into the first output dim.
        axis: i64,
    },
    /// Equal, Less, LessOrEqual, Greater, GreaterOrEqual: bool results, broadcasting.
    Compare(CmpOp),
    /// And, Or on bools.
    Logic(LogicOp),
    /// Not: logical negation of bools.
    Not,
    /// IsNaN: bool result, true where the float input is NaN.
    IsNaN,
    /// `cond ? x : y`, broadcasting all three.
    Where,
    /// Min or Max of one or more operands.
    MinMax {
        /// `true` for Max, `false` for Min.
        max: bool,
    },
    /// Range: the 1-D sequence `start, start + delta, …` below `limit` (scalar inputs).
    Range,
    /// CumSum: running sums along the axis given as input 1.
    CumSum {
        /// Each sum leaves out its own element.
        exclusive: bool,
        /// Sums run from the end of the axis backwards.
        reverse: bool,
    },
    /// Trilu: keeps the upper or lower triangle of the last two axes, offset by the optional
    /// diagonal `k` (input 1), and zeroes the rest.
    Trilu {
        /// Keep the upper triangle (`j − i ≥ k`) rather than the lower (`j − i ≤ k`).
        upper: bool,
    },
    /// ONNX LayerNormalization over axes `axis..` (`passes::fuse_layernorm` makes the common
    /// case a `LayerNorm`).
    LayerNormalization {
        /// First normalized axis; negative counts from the end.
        axis: i64,
        /// Epsilon added to the variance.
        eps: f32,
        /// 1 (Y), 2 (+ Mean) or 3 (+ InvStdDev).
        outputs: usize,
    },
    /// One part of a SplitToSequence, as SequenceAt reads it (fused at import).
    SplitPart(slice::SplitPart),
    /// Shape: the input's shape as a 1-D int64 tensor, optionally sliced to `start..end`.
    Shape {
        /// First axis reported; negative counts from the end.
        start: i64,
        /// End (exclusive) of the reported axes; `None` means the rank.
        end: Option<i64>,
    },
    /// ConstantOfShape: a tensor of the shape given by input 0, filled with one value.
    ConstantOfShape {
        /// The fill value, a one-element tensor whose type is the output's.
        value: Tensor,
    },
    /// NonZero: `[rank, n]` int64 indices of the input's non-zero elements.
    NonZero,
    /// Expand: broadcasts input 0 to the shape given by input 1.
    Expand,
    /// Reshape: the same elements with the shape given by input 1 (`-1` inferred).
    Reshape {
        /// A `0` in the target shape means size 0 (ONNX `allowzero = 1`), not "copy the input dim".
        allow_zero: bool,
    },
    /// `axes: None` means: from input 1 (opset ≥ 13), or every unit dim when that is absent.
    Squeeze {
        /// Axes to remove; negative counts from the end.
        axes: Option<Vec<i64>>,
    },
    /// `axes: None` means: from input 1 (opset ≥ 13).
    Unsqueeze {
        /// Positions of the inserted unit axes in the output; negative counts from the end.
        axes: Option<Vec<i64>>,
    },
    /// Concat: joins the inputs along one axis.
    Concat {
        /// Axis joined along; negative counts from the end.
        axis: i64,
    },
    /// `attrs: Some` for opset < 10 (starts/ends/axes as attributes), `None` for inputs.
    Slice {
        /// Starts, ends and optional axes as attributes (Slice-1).
        attrs: Option<slice::SliceAttrs>,
    },
    /// Split: cuts the input along one axis into consecutive parts.
    Split {
        /// Axis cut along; negative counts from the end.
        axis: i64,
        /// Part lengths; `None` means from input 1, or equal parts when that is absent.
        split: Option<Vec<i64>>,
        /// Number of parts (node outputs).
        outputs: usize,
    },
    /// Gather: picks the slices of input 0 at the indices of input 1 along an axis.
    Gather {
        /// Axis indexed; negative counts from the end.
        axis: i64,
    },
    /// Transpose: permutes the axes.
    Transpose {
        /// Output axis `i` is input axis `perm[i]`; `None` reverses the axes.
        perm: Option<Vec<usize>>,
    },
    /// ReduceMean: the mean over the given axes.
    ReduceMean {
        /// Axes reduced; `None` means from input 1 (opset ≥ 18), or all axes when that is absent.
        axes: Option<Vec<i64>>,
        /// Keep each reduced axis as size 1.
        keepdims: bool,
        /// With no axes given, reduce nothing (identity) instead of all axes.
        noop_with_empty_axes: bool,
    },
    /// MatMul: numpy-style matrix product, batch dims broadcasting.
    MatMul,
    /// Gemm: `alpha · A' · B' + beta · C` of 2-D A and B (`'` = optional transpose), C broadcast.
    Gemm {
        /// Scale of the product.
        alpha: f32,
        /// Scale of C.
        beta: f32,
        /// Transpose A first.
        trans_a: bool,
        /// Transpose B first.
        trans_b: bool,
    },
    /// `coerce_2d`: opset < 13 semantics (softmax over all dims from `axis` on).
    Softmax {
        /// Softmax axis; negative counts from the end.
        axis: i64,
        /// Opset < 13: softmax over the input seen as 2-D `[Πd₀…d_{axis−1}, Πd_axis…]`.
        coerce_2d: bool,
    },
    /// Fused scaled-dot-product attention (from `passes::fuse_attention`).
    Attention(attention::Attention),
    /// One copy of a strided view of the input (from `passes::fold_copies`).
    StridedCopy(strided_copy::StridedCopy),
    /// LayerNorm over the last axis: inputs x, gamma, beta (from `passes::fuse_layernorm`).
    LayerNorm {
        /// Epsilon added to the variance.
        eps: f32,
    },
    /// tanh-approximated GELU (from `passes::fuse_gelu`, or ONNX Gelu-20 with
    /// `approximate = "tanh"`).
    Gelu,
    /// Exact GELU, `0.5·x·(1 + erf(x/√2))` (from `passes::fuse_gelu`, or ONNX Gelu-20).
    GeluErf,
    /// `act(x · W + b)` with constant W `[K, N]` and optional constant b `[N]` (from
    /// `passes::fuse_linear`; `passes::fuse_linear_gelu` folds a following Gelu in).
    Linear {
        /// Activation applied after the bias.
        activation: linear::Activation,
    },
    /// What the kernels of a narrow weight format do to a Linear's input, for the reference
    /// interpreter only (`codegen::narrowed` adds it; code generation refuses it).
    RoundRows(fused::RowRounding),
}

/// ONNX op types (default domain) the importer accepts. `Constant` becomes a constant value.
pub const REGISTRY: &[&str] = &[
    "Constant",
    "Identity",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Tanh",
    "Erf",
    "Sigmoid",
    "Exp",
    "Log",
    "Neg",
    "Abs",
    "Reciprocal",
    "Ceil",
    "Floor",
    "IsNaN",
    "Flatten",
    "Gelu",
    "Cast",
    "CastLike",
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Where",
    "Min",
    "Max",
    "Range",
    "CumSum",
    "Trilu",
    "LayerNormalization",
    "SplitToSequence",
    "SequenceAt",
    "Shape",
    "ConstantOfShape",
    "NonZero",
    "Expand",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Slice",
    "Split",
    "Gather",
    "Transpose",
    "ReduceMean",
    "MatMul",
    "Gemm",
    "Softmax",
];

/// Static type of one op input, for shape inference: constant data when it is known.
#[derive(Clone, Copy, Debug)]
pub struct InferIn<'a> {
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost axis first.
    pub shape: &'a [usize],
    /// The value, when it is a compile-time constant.
    pub konst: Option<&'a Tensor>,
}

/// Static type of an op output.
pub type OutType = (DType, Vec<usize>);

impl Op {
    /// Parses a node of the default ONNX domain at the given opset from its op type,
    /// attributes and output names (empty names are outputs not produced).
    /// `Err` says why it cannot be imported (unknown op or bad attributes).
    pub fn parse(op: &str, a: &Attrs, opset: i64, outputs: &[String]) -> Result<Op, String> {
        Ok(match op {
            "Identity" => a.only(&[]).map(|_| Op::Identity)?,
            "Add" | "Sub" | "Mul" | "Div" | "Pow" => elementwise::parse_binary(op, a, opset)?,
            "Sqrt" | "Tanh" | "Erf" | "Sigmoid" | "Exp" | "Log" | "Neg" | "Abs" | "Reciprocal"
            | "Ceil" | "Floor" => elementwise::parse_unary(op, a)?,
            "Cast" => cast::parse(a)?,
            "CastLike" => cast::parse_like(a)?,
            "Equal" | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" | "Not" | "And"
            | "Or" | "Where" | "Min" | "Max" | "IsNaN" => logic::parse(op, a)?,
            "Flatten" => shape::parse(op, a, opset)?,
            "Gelu" => fused::parse_gelu(a)?,
            "Range" => range::parse(a)?,
            "CumSum" => cumsum::parse(a)?,
            "Trilu" => trilu::parse(a)?,
            "LayerNormalization" => norm::parse(a, outputs)?,
            // The importer fuses SplitToSequence into each SequenceAt that reads it.
            "SplitToSequence" | "SequenceAt" => {
                return Err("sequence ops are handled by the importer".into())
            }
            "Shape" | "ConstantOfShape" | "NonZero" | "Expand" | "Reshape" | "Squeeze"
            | "Unsqueeze" => shape::parse(op, a, opset)?,
            "Concat" | "Slice" | "Gather" => slice::parse(op, a, opset)?,
            "Split" => slice::parse_split(a, opset, outputs.len())?,
            "Transpose" => transpose::parse(a)?,
            "ReduceMean" => reduce::parse(a, opset)?,
            "MatMul" | "Gemm" => matmul::parse(op, a)?,
            "Softmax" => softmax::parse(a, opset)?,
            _ => return Err("op type not supported".into()),
        })
    }

    /// The ONNX-style name of the op, for histograms and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Identity => "Identity",
            Op::Binary(b) => b.name(),
            Op::Unary(u) => u.name(),
            Op::Cast { .. } => "Cast",
            Op::CastLike => "CastLike",
            Op::Flatten { .. } => "Flatten",
            Op::Compare(c) => c.name(),
            Op::Logic(l) => l.name(),
            Op::Not => "Not",
            Op::IsNaN => "IsNaN",
            Op::Where => "Where",
            Op::MinMax { max: true } => "Max",
            Op::MinMax { max: false } => "Min",
            Op::Range => "Range",
            Op::CumSum { .. } => "CumSum",
            Op::Trilu { .. } => "Trilu",
            Op::LayerNormalization { .. } => "LayerNormalization",
            Op::SplitPart(_) => "SplitToSequence+SequenceAt",
            Op::Shape { .. } => "Shape",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::NonZero => "NonZero",
            Op::Expand => "Expand",
            Op::Reshape { .. } => "Reshape",
            Op::Squeeze { .. } => "Squeeze",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Concat { .. } => "Concat",
            Op::Slice { .. } => "Slice",
            Op::Split { .. } => "Split",
            Op::Gather { .. } => "Gather",
            Op::Transpose { .. } => "Transpose",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::MatMul => "MatMul",
            Op::Gemm { .. } => "Gemm",
            Op::Softmax { .. } => "Softmax",
            Op::Attention(_) => "Attention",
            Op::StridedCopy(_) => "StridedCopy",
            Op::LayerNorm { .. } => "LayerNorm",
            Op::Gelu => "Gelu",
            Op::GeluErf => "GeluErf",
            Op::RoundRows(_) => "RoundRows",
            Op::Linear {
                activation: linear::Activation::Identity,
            } => "Linear",
            Op::Linear {
                activation: linear::Activation::Gelu,
            } => "Linear+Gelu",
        }
    }

    /// Output types from static input types. Inputs that decide a shape (Reshape's target,
    /// Slice's bounds, ...) must be constants.
    ///
    /// Every output shape is within `ir::MAX_ELEMS`, so a shape read from a file cannot make
    /// later size arithmetic overflow.
    pub fn infer(&self, ins: &[Option<InferIn>]) -> OpResult<Vec<OutType>> {
        let outs = match self {
            Op::Identity => Ok(vec![owned(req(ins, 0)?)]),
            Op::Binary(b) => elementwise::infer_binary(*b, ins),
            Op::Unary(u) => elementwise::infer_unary(*u, ins),
            Op::Cast { to } => Ok(vec![(*to, req(ins, 0)?.shape.to_vec())]),
            Op::CastLike => Ok(vec![(req(ins, 1)?.dtype, req(ins, 0)?.shape.to_vec())]),
            Op::Compare(_) | Op::Logic(_) | Op::Not | Op::IsNaN | Op::Where | Op::MinMax { .. } => {
                logic::infer(self, ins)
            }
            Op::Range => range::infer(ins),
            Op::CumSum { .. } => cumsum::infer(ins),
            Op::Trilu { .. } => trilu::infer(ins),
            Op::LayerNormalization { axis, outputs, .. } => norm::infer(*axis, *outputs, ins),
            Op::SplitPart(p) => slice::infer_split_part(p, ins),
            Op::Shape { .. }
            | Op::ConstantOfShape { .. }
            | Op::NonZero
            | Op::Expand
            | Op::Reshape { .. }
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. }
            | Op::Flatten { .. } => shape::infer(self, ins),
            Op::Concat { .. } | Op::Slice { .. } | Op::Split { .. } | Op::Gather { .. } => {
                slice::infer(self, ins)
            }
            Op::Transpose { perm } => transpose::infer(perm.as_deref(), ins),
            Op::ReduceMean { .. } => reduce::infer(self, ins),
            Op::MatMul | Op::Gemm { .. } => matmul::infer(self, ins),
            Op::Softmax { .. } => Ok(vec![owned(float_in(ins, 0)?)]),
            Op::Attention(a) => attention::infer(a, ins),
            Op::StridedCopy(c) => strided_copy::infer(c, ins),
            Op::LayerNorm { .. } => fused::infer_layer_norm(ins),
            Op::Gelu | Op::GeluErf | Op::RoundRows(_) => Ok(vec![owned(float_in(ins, 0)?)]),
            Op::Linear { .. } => linear::infer(ins),
        }?;
        for (_, shape) in &outs {
            if crate::tensor::bounded_numel(shape).is_none() {
                return crate::op_err!("output shape {shape:?} has more than 2^40 elements");
            }
        }
        Ok(outs)
    }

    /// Reference evaluation: exact ONNX semantics, f32 math with f64 accumulation.
    pub fn eval(&self, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        match self {
            Op::Identity => Ok(vec![input(ins, 0)?.clone()]),
            Op::Binary(b) => elementwise::eval_binary(*b, input(ins, 0)?, input(ins, 1)?),
            Op::Unary(u) => elementwise::eval_unary(*u, input(ins, 0)?),
            Op::Cast { to } => cast::eval(*to, input(ins, 0)?),
            Op::CastLike => cast::eval(input(ins, 1)?.dtype(), input(ins, 0)?),
            Op::Compare(_) | Op::Logic(_) | Op::Not | Op::IsNaN | Op::Where | Op::MinMax { .. } => {
                logic::eval(self, ins)
            }
            Op::Range => range::eval(ins),
            Op::CumSum { exclusive, reverse } => cumsum::eval(*exclusive, *reverse, ins),
            Op::Trilu { upper } => trilu::eval(*upper, ins),
            Op::LayerNormalization { axis, eps, outputs } => norm::eval(*axis, *eps, *outputs, ins),
            Op::SplitPart(p) => slice::eval_split_part(p, ins),
            Op::Shape { .. }
            | Op::ConstantOfShape { .. }
            | Op::NonZero
            | Op::Expand
            | Op::Reshape { .. }
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. }
            | Op::Flatten { .. } => shape::eval(self, ins),
            Op::Concat { .. } | Op::Slice { .. } | Op::Split { .. } | Op::Gather { .. } => {
                slice::eval(self, ins)
            }
            Op::Transpose { perm } => transpose::eval(perm.as_deref(), input(ins, 0)?),
            Op::ReduceMean { .. } => reduce::eval(self, ins),
            Op::MatMul | Op::Gemm { .. } => matmul::eval(self, ins),
            Op::Softmax { axis, coerce_2d } => softmax::eval(*axis, *coerce_2d, input(ins, 0)?),
            Op::Attention(a) => attention::eval(a, ins),
            Op::StridedCopy(c) => strided_copy::eval(c, input(ins, 0)?),
            Op::LayerNorm { eps } => fused::eval_layer_norm(*eps, ins),
            Op::Gelu => fused::eval_gelu(input(ins, 0)?),
            Op::GeluErf => fused::eval_gelu_erf(input(ins, 0)?),
            Op::RoundRows(r) => fused::eval_round_rows(*r, input(ins, 0)?),
            Op::Linear { activation } => linear::eval(*activation, ins),
        }
    }
}

/// What one execution of a node costs, from its static input and output types: a model for
/// `gpt2c inspect`, not a measurement.
///
/// `flops` counts floating-point operations: a multiply-add is 2; exp, tanh, sqrt and a
/// division count 1 each; data movement counts 0. `bytes` is the traffic of an ideal
/// kernel: the bytes of every input read at run time (shape-deciding inputs, consumed at
/// compile time, are not) plus the bytes written. Views (Identity, Reshape, Squeeze,
/// Unsqueeze) move nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Floating-point operations.
    pub flops: u64,
    /// Bytes read and written.
    pub bytes: u64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            flops: self.flops + o.flops,
            bytes: self.bytes + o.bytes,
        }
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(it: I) -> Cost {
        it.fold(Cost::default(), |a, b| a + b)
    }
}

impl Op {
    /// The cost of one execution with these static types (`outs` as `infer` returns them).
    /// Each family module counts its own ops.
    pub fn cost(&self, ins: &[Option<InferIn>], outs: &[OutType]) -> Cost {
        match self {
            Op::Identity
            | Op::Reshape { .. }
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. }
            | Op::Flatten { .. } => Cost::default(),
            Op::Binary(_) | Op::Unary(_) => elementwise::cost(ins, outs),
            Op::Cast { .. } | Op::CastLike | Op::SplitPart(_) => cast::cost(ins, outs),
            Op::Compare(_)
            | Op::Logic(_)
            | Op::Not
            | Op::IsNaN
            | Op::Where
            | Op::MinMax { .. }
            | Op::CumSum { .. }
            | Op::Trilu { .. } => logic::cost(ins, outs),
            Op::Range => Cost {
                flops: 0,
                bytes: traffic(&[], &[], outs),
            },
            Op::LayerNormalization { .. } => fused::cost_layer_norm(ins, outs),
            Op::Shape { .. } | Op::ConstantOfShape { .. } | Op::NonZero | Op::Expand => {
                shape::cost(self, ins, outs)
            }
            Op::Concat { .. } | Op::Slice { .. } | Op::Split { .. } | Op::Gather { .. } => {
                slice::cost(self, ins, outs)
            }
            Op::Transpose { .. } => transpose::cost(ins, outs),
            Op::ReduceMean { .. } => reduce::cost(ins, outs),
            Op::MatMul | Op::Gemm { .. } => matmul::cost(self, ins, outs),
            Op::Softmax { .. } => softmax::cost(ins, outs),
            Op::Attention(a) => attention::cost(a, ins, outs),
            Op::StridedCopy(_) => strided_copy::cost(outs),
            Op::LayerNorm { .. } => fused::cost_layer_norm(ins, outs),
            Op::Gelu | Op::GeluErf => fused::cost_gelu(ins, outs),
            Op::RoundRows(_) => fused::cost_round_rows(ins, outs),
            Op::Linear { activation } => linear::cost(*activation, ins, outs),
        }
    }
}

/// Elements of a shape, as a cost count.
pub(crate) fn count(shape: &[usize]) -> u64 {
    shape.iter().map(|&d| d as u64).product()
}

/// Bytes of the inputs at positions `read` (absent ones skipped) and of every output.
pub(crate) fn traffic(ins: &[Option<InferIn>], read: &[usize], outs: &[OutType]) -> u64 {
    let r: u64 = read
        .iter()
        .filter_map(|&i| ins.get(i).copied().flatten())
        .map(|x| count(x.shape) * x.dtype.size() as u64)
        .sum();
    r + outs
        .iter()
        .map(|(d, s)| count(s) * d.size() as u64)
        .sum::<u64>()
}

/// Elements of output 0.
pub(crate) fn out_count(outs: &[OutType]) -> u64 {
    outs.first().map_or(0, |(_, s)| count(s))
}

// ---- helpers shared by the op modules ----

/// Required input `i` for evaluation.
pub(crate) fn input<'a>(ins: &[Option<&'a Tensor>], i: usize) -> OpResult<&'a Tensor> {
    ins.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| OpError(format!("missing input {i}")))
}

/// Required input `i` for inference.
pub(crate) fn req<'a>(ins: &[Option<InferIn<'a>>], i: usize) -> OpResult<InferIn<'a>> {
    ins.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| OpError(format!("missing input {i}")))
}

/// Required constant input `i` for inference (a shape-deciding input).
pub(crate) fn req_const<'a>(ins: &[Option<InferIn<'a>>], i: usize) -> OpResult<&'a Tensor> {
    req(ins, i)?.konst.ok_or_else(|| {
        OpError(format!(
            "input {i} decides the output shape and must be a constant"
        ))
    })
}

fn float_in<'a>(ins: &[Option<InferIn<'a>>], i: usize) -> OpResult<InferIn<'a>> {
    let x = req(ins, i)?;
    if !x.dtype.is_float() {
        return crate::op_err!("expected a float input, found {}", x.dtype);
    }
    Ok(x)
}

fn owned(x: InferIn) -> OutType {
    (x.dtype, x.shape.to_vec())
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return crate::op_err!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

/// Copies elements of `src` at the given element offsets into a new tensor of `shape`.
pub(crate) fn gather_elems(
    src: &Tensor,
    shape: Vec<usize>,
    offsets: impl Iterator<Item = usize>,
) -> Tensor {
    let s = src.dtype().size();
    let data = src.bytes();
    let mut out = Vec::with_capacity(crate::tensor::numel(&shape) * s);
    for o in offsets {
        out.extend_from_slice(&data[o * s..(o + 1) * s]);
    }
    Tensor::from_raw(src.dtype(), shape, out.into()).expect("gathered data fits its shape")
}
