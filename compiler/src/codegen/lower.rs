//! Lowering: one IR node → the Rust statements that compute it, as tokens.
//!
//! Every op has a generic lowering driven by its static shapes: data movement becomes
//! `copy_strided` with compile-time strides, arithmetic `broadcast`/`map` with a closure,
//! contractions `matmul` on matrixmultiply. Fusions only add faster forms.
//!
//! With a sequence analysis (`crate::sequence`), statements compute rows `r0..r0 + rn` of
//! the sequence axis: buffers keep their full size (so strides stay constants), offsets and
//! the row count are run-time values. Without one, every size is a constant.

use super::layout::WeightFormat;
use super::plan::{data_inputs, is_alias, transposed_weight, Elem, Plan, Storage, WeightLayout};
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Tensor, ValueId};
use crate::ops::attention::HeadView;
use crate::ops::elementwise::broadcast_offsets;
use crate::ops::{strides, BinaryOp, CmpOp, LogicOp, Op, UnaryOp};
use crate::sequence::SeqInfo;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

/// Names the generated code uses for values.
pub struct Symbols {
    /// Field of `Weights` for each weight index.
    pub weight_fields: Vec<syn::Ident>,
    /// `buf::NAME` constant for each value that owns an arena range (aliases map to the
    /// owner's constant).
    pub buf_consts: Vec<Option<syn::Ident>>,
}

pub struct Lowerer<'a> {
    pub graph: &'a Graph,
    pub plan: &'a Plan,
    pub syms: &'a Symbols,
    pub seq: Option<&'a SeqInfo>,
    /// Each node's index in the profile table (`profile::ids`).
    pub profile_ids: Vec<Option<usize>>,
    /// Readers of each value (nodes and graph outputs).
    pub uses: Vec<usize>,
    /// Lowering a batched step (`forward_batch`, see `super::batch`): rows of several
    /// sequences stacked from row 0, read by position where a value is indexed by position,
    /// attention against each sequence's own cache.
    pub step: Option<&'a super::batch::Batching>,
    /// How the attention cache stores its values (`GPT2_KV`): a narrow cache is read
    /// through `KvCache::view` (the model's own, or each sequence's in a batched step).
    pub kv: gpt2rt::kv::KvFormat,
}

fn lit(x: usize) -> Literal {
    Literal::usize_unsuffixed(x)
}

fn usizes(v: &[usize]) -> TokenStream {
    let v = v.iter().map(|&x| lit(x));
    quote!(&[#(#v),*])
}

fn isizes(v: &[isize]) -> TokenStream {
    let v = v.iter().map(|&x| Literal::isize_unsuffixed(x));
    quote!(&[#(#v),*])
}

fn f32_lit(x: f32) -> TokenStream {
    if x.is_finite() {
        let l = Literal::f32_suffixed(x);
        quote!(#l)
    } else {
        let bits = Literal::u32_unsuffixed(x.to_bits());
        quote!(f32::from_bits(#bits))
    }
}

/// `base + r0 · coef` as tokens.
fn lin(base: usize, coef: usize) -> TokenStream {
    lin_at(base, coef, &quote!(r0))
}

/// `base + row · coef` as tokens, `row` naming the first row.
fn lin_at(base: usize, coef: usize, row: &TokenStream) -> TokenStream {
    let (b, c) = (lit(base), lit(coef));
    match (base, coef) {
        (_, 0) => quote!(#b),
        (0, 1) => quote!(#row),
        (0, _) => quote!(#row * #c),
        _ => quote!(#b + #row * #c),
    }
}

/// `k` or `k · rn` as tokens.
fn rows_times(k: usize, rows: bool) -> TokenStream {
    let kl = lit(k);
    match (rows, k) {
        (false, _) => quote!(#kl),
        (true, 1) => quote!(rn),
        (true, _) => quote!(#kl * rn),
    }
}

/// Strides of `src` when broadcast to `out` (0 on broadcast dims), right-aligned.
fn bcast_strides(src: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(src);
    let mut r = vec![0; out.len()];
    for i in 0..src.len() {
        if src[i] != 1 {
            r[out.len() - src.len() + i] = s[i];
        }
    }
    r
}

fn signed(v: &[usize]) -> Vec<isize> {
    v.iter().map(|&x| x as isize).collect()
}

impl Lowerer<'_> {
    fn shape(&self, v: ValueId) -> Vec<usize> {
        self.graph.values[v]
            .ty
            .as_ref()
            .and_then(|t| t.static_shape())
            .expect("static shape after specialization")
    }

    fn elem(&self, v: ValueId) -> Elem {
        match &self.plan.storage[v] {
            Some(Storage::Arena { elem, .. }) => *elem,
            Some(Storage::Weight(k)) => self.plan.weights[*k].elem,
            None => Elem::F32,
        }
    }

    fn konst(&self, v: ValueId) -> Option<&Tensor> {
        self.graph.values[v].konst.as_ref()
    }

    /// The format of `v`'s panels, when it is a weight stored in panels.
    fn panel_format(&self, v: ValueId) -> Option<WeightFormat> {
        let Some(Storage::Weight(i)) = self.plan.storage[v] else {
            return None;
        };
        let w = &self.plan.weights[i];
        w.panels.map(|_| w.format)
    }

    /// Whether `v` is a table stored as f16 (`plan::narrow_table`): its readers widen it.
    fn f16_table(&self, v: ValueId) -> bool {
        let Some(Storage::Weight(i)) = self.plan.storage[v] else {
            return false;
        };
        let w = &self.plan.weights[i];
        w.table && w.format == WeightFormat::F16
    }

    /// `w.<field>_scales` when `v` is stored as q8 or q4 panels.
    fn scales(&self, v: ValueId) -> Option<TokenStream> {
        let Some(Storage::Weight(i)) = self.plan.storage[v] else {
            return None;
        };
        self.plan.weights[i].scales_offset?;
        let f = format_ident!("{}_scales", self.syms.weight_fields[i]);
        Some(quote!(w.#f))
    }

    /// The constant `b` is a transposed view of (see `plan::transposed_weight`).
    fn transposed_source(&self, b: ValueId) -> Option<ValueId> {
        let n = self
            .graph
            .nodes
            .iter()
            .find(|n| n.outputs.first() == Some(&b))?;
        transposed_weight(self.graph, n)
    }

    /// The sequence axis of `v`, when rows are computed separately.
    fn ax(&self, v: ValueId) -> Option<usize> {
        self.seq.and_then(|s| s.axis[v])
    }

    /// The variable holding the first row of `v` that this statement reads: `r0`, or in a
    /// batched step `q0` (the position) for a value indexed by position (a constant that
    /// varies along the sequence, or one the init nodes computed), since a step's rows are
    /// not the positions of their sequence.
    fn row_var(&self, v: ValueId) -> TokenStream {
        match self.step {
            Some(_) if super::batch::by_position(self.graph, self.plan, self.seq, v) => {
                quote!(q0)
            }
            _ => quote!(r0),
        }
    }

    /// Shape with the sequence dim as the run-time row count.
    fn dims(&self, v: ValueId) -> TokenStream {
        let s = self.shape(v);
        let a = self.ax(v);
        let d = s.iter().enumerate().map(|(i, &x)| {
            if Some(i) == a {
                quote!(rn)
            } else {
                let l = lit(x);
                quote!(#l)
            }
        });
        quote!(&[#(#d),*])
    }

    /// Product of `v`'s dims in `range`, the sequence dim counting `rn`.
    fn prod(&self, v: ValueId, range: std::ops::Range<usize>) -> TokenStream {
        let s = self.shape(v);
        let a = self.ax(v);
        let rows = a.is_some_and(|a| range.contains(&a));
        let k: usize = range.filter(|&i| Some(i) != a).map(|i| s[i]).product();
        rows_times(k, rows)
    }

    /// An expression reading value `v` while `writing` (the arena being written) is split.
    pub fn read(&self, v: ValueId, writing: Elem) -> TokenStream {
        match &self.plan.storage[v] {
            Some(Storage::Weight(k)) => {
                let f = &self.syms.weight_fields[*k];
                quote!(w.#f)
            }
            Some(Storage::Arena { elem, .. }) => {
                let b = self.syms.buf_consts[v].as_ref().expect("buffer name");
                match (elem, *elem == writing) {
                    (_, true) => quote!(rest.get(buf::#b)),
                    (Elem::F32, false) => quote!(&f32s[buf::#b]),
                    (Elem::I64, false) => quote!(&i64s[buf::#b]),
                }
            }
            None => quote!(compile_error!("value without storage")),
        }
    }

    /// The rows `r0..r0+rn` of `v` (contiguous by the sequence analysis), or all of it.
    fn read_rows(&self, v: ValueId, writing: Elem) -> TokenStream {
        let r = self.read(v, writing);
        match self.ax(v) {
            Some(a) => {
                let s = lit(strides(&self.shape(v))[a]);
                let r0 = self.row_var(v);
                quote!(&(#r)[#r0 * #s..(#r0 + rn) * #s])
            }
            None => r,
        }
    }

    /// The rows of the output being written (`y`).
    fn out_rows(&self, o: ValueId) -> TokenStream {
        match self.ax(o) {
            Some(a) => {
                let s = lit(strides(&self.shape(o))[a]);
                quote!(&mut y[r0 * #s..(r0 + rn) * #s])
            }
            None => quote!(y),
        }
    }

    /// A block that splits the arena around output `o` (as `y`, the rest as `rest`) and
    /// runs `body` for the rows of this node.
    fn block(&self, node_index: usize, o: ValueId, body: TokenStream) -> TokenStream {
        let b = self.syms.buf_consts[o].as_ref().expect("output buffer");
        let arena = match self.elem(o) {
            Elem::F32 => quote!(f32s),
            Elem::I64 => quote!(i64s),
        };
        let rows = match self.seq {
            Some(s) if s.init[node_index] => TokenStream::new(),
            Some(s) if s.tail[node_index] => quote!(let (r0, rn) = tail_rows;),
            Some(_) => quote!(let (r0, rn) = rows;),
            None => TokenStream::new(),
        };
        let timer = match (self.profile_ids[node_index].map(lit), self.seq) {
            (Some(id), Some(_)) => quote!(let _timer = profile::timer(#id, rn);),
            (Some(id), None) => quote!(let _timer = profile::timer(#id, 1);),
            (None, _) => TokenStream::new(),
        };
        if let (Some(st), Some(s)) = (self.step, self.seq) {
            let split = quote!(let (y, rest) = arena::split(#arena, buf::#b););
            let parts = super::batch::StepParts {
                rows,
                timer,
                split,
                body,
            };
            return super::batch::step_block(self, st, s, node_index, o, parts);
        }
        quote! {
            {
                #rows
                #timer
                let (y, rest) = arena::split(#arena, buf::#b);
                #body
            }
        }
    }

    /// The statements computing node `index`, or nothing for views.
    pub fn lower(&self, index: usize) -> Result<TokenStream> {
        let node = &self.graph.nodes[index];
        let err = |msg: String| Error::Node {
            node: node.name.clone(),
            op: node.op.name().into(),
            msg,
        };
        if is_alias(self.graph, node) {
            return Ok(TokenStream::new());
        }
        let data: Vec<ValueId> = data_inputs(&node.op, node.inputs.len())
            .into_iter()
            .filter_map(|i| node.inputs.get(i).copied().flatten())
            .collect();
        let o = node.outputs[0];
        let oe = self.elem(o);
        let out_shape = self.shape(o);
        let sh = |i: usize| self.shape(data[i]);
        let consts: Vec<Option<&Tensor>> = node
            .inputs
            .iter()
            .map(|i| i.and_then(|i| self.konst(i)))
            .collect();
        let y = self.out_rows(o);
        let body = match &node.op {
            Op::Binary(b) => self.binary(*b, data[0], data[1], o, oe).map_err(err)?,
            Op::Unary(u) => {
                let x = self.read_rows(data[0], oe);
                let f = match (u, oe) {
                    (UnaryOp::Sqrt, _) => quote!(f32::sqrt),
                    (UnaryOp::Tanh, _) => quote!(f32::tanh),
                    (UnaryOp::Erf, _) => quote!(gpt2rt::vmath::erf),
                    (UnaryOp::Sigmoid, _) => quote!(|v: f32| 1.0 / (1.0 + (-v).exp())),
                    (UnaryOp::Exp, _) => quote!(f32::exp),
                    (UnaryOp::Log, _) => quote!(f32::ln),
                    (UnaryOp::Reciprocal, _) => quote!(|v: f32| 1.0 / v),
                    (UnaryOp::Ceil, _) => quote!(f32::ceil),
                    (UnaryOp::Floor, _) => quote!(f32::floor),
                    (UnaryOp::Neg, Elem::F32) => quote!(|v: f32| -v),
                    (UnaryOp::Abs, Elem::F32) => quote!(f32::abs),
                    (UnaryOp::Neg, Elem::I64) => quote!(i64::wrapping_neg),
                    (UnaryOp::Abs, Elem::I64) => quote!(i64::wrapping_abs),
                };
                quote!(kernels::map(#x, #y, #f);)
            }
            // Bools are stored as i64 0/1: a cast to bool tests for non-zero.
            Op::Cast { to: DType::Bool } => {
                let x = self.read_rows(data[0], oe);
                match self.elem(data[0]) {
                    Elem::F32 => quote!(kernels::map(#x, #y, |v: f32| (v != 0.0) as i64);),
                    Elem::I64 => quote!(kernels::map(#x, #y, |v: i64| (v != 0) as i64);),
                }
            }
            Op::Cast { .. } => {
                let x = self.read_rows(data[0], oe);
                match (self.elem(data[0]), oe) {
                    (a, b) if a == b => quote!((#y).copy_from_slice(#x);),
                    (Elem::F32, Elem::I64) => quote!(kernels::map(#x, #y, |v| v as i64);),
                    (Elem::I64, Elem::F32) => quote!(kernels::map(#x, #y, |v| v as f32);),
                    _ => unreachable!(),
                }
            }
            Op::Expand => {
                let s = bcast_strides(&sh(0), &out_shape);
                self.copy(data[0], 0, &signed(&s), o, 0, &strides(&out_shape), o)
            }
            Op::Transpose { perm } => {
                let in_shape = sh(0);
                let p: Vec<usize> = perm
                    .clone()
                    .unwrap_or_else(|| (0..in_shape.len()).rev().collect());
                let st = strides(&in_shape);
                let src: Vec<isize> = p.iter().map(|&a| st[a] as isize).collect();
                self.copy(data[0], 0, &src, o, 0, &strides(&out_shape), o)
            }
            Op::Slice { .. } => {
                let in_shape = sh(0);
                let plan = crate::ops::slice::slice_plan(&in_shape, &node.op, &consts)
                    .map_err(|e| err(e.0))?;
                let st = strides(&in_shape);
                let off: i64 = plan.iter().zip(&st).map(|(p, &s)| p.0 * s as i64).sum();
                let src: Vec<isize> = plan
                    .iter()
                    .zip(&st)
                    .map(|(p, &s)| (p.1 * s as i64) as isize)
                    .collect();
                self.copy(data[0], off as usize, &src, o, 0, &strides(&out_shape), o)
            }
            Op::Split { .. } => return self.split(index, data[0], &consts).map_err(err),
            Op::Concat { axis } => {
                let ax = crate::ops::norm_axis(*axis, out_shape.len()).map_err(|e| err(e.0))?;
                let ost = strides(&out_shape);
                let mut at = 0;
                let mut calls = Vec::new();
                for i in node.inputs.iter().flatten() {
                    let s = self.shape(*i);
                    // Inputs computed in place (`plan::concat_blocks`) are there already.
                    if self.plan.inside[self.plan.root[*i]].is_none() {
                        calls.push(self.copy(
                            *i,
                            0,
                            &signed(&strides(&s)),
                            o,
                            at * ost[ax],
                            &ost,
                            *i,
                        ));
                    }
                    at += s[ax];
                }
                if calls.is_empty() {
                    return Ok(TokenStream::new());
                }
                quote!(#(#calls)*)
            }
            Op::StridedCopy(c) => self.copy(
                data[0],
                c.offset,
                &signed(&c.strides),
                o,
                0,
                &strides(&out_shape),
                o,
            ),
            Op::Gather { axis } => {
                let ds = sh(0);
                let ax = crate::ops::norm_axis(*axis, ds.len()).map_err(|e| err(e.0))?;
                let (outer, len, inner) = (
                    lit(ds[..ax].iter().product()),
                    lit(ds[ax]),
                    lit(ds[ax + 1..].iter().product()),
                );
                if self.elem(data[1]) != Elem::I64 {
                    return Err(err("Gather indices must be i64 in generated code".into()));
                }
                let (d, i) = (self.read(data[0], oe), self.read_rows(data[1], oe));
                let name = Literal::string(&node.name);
                // An embedding table stored transposed in panels for the tied LM head.
                let of_transpose = matches!(self.plan.storage[data[0]], Some(Storage::Weight(w))
                    if self.plan.weights[w].layout == WeightLayout::PanelsOfTranspose);
                let q4 = self.panel_format(data[0]) == Some(WeightFormat::Q4);
                if let (Some(scales), true) = (self.scales(data[0]), q4) {
                    quote!(kernels::gather_panels_q4(#d, #scales, #len, #inner, #i, #y).map_err(|e| format!("{}: {e}", #name))?;)
                } else if let Some(scales) = self.scales(data[0]) {
                    quote!(kernels::gather_panels_q8(#d, #scales, #len, #inner, #i, #y).map_err(|e| format!("{}: {e}", #name))?;)
                } else if of_transpose && self.panel_format(data[0]) == Some(WeightFormat::Bf16) {
                    quote!(kernels::gather_panels_bf16(#d, #len, #inner, #i, #y).map_err(|e| format!("{}: {e}", #name))?;)
                } else if of_transpose {
                    quote!(kernels::gather_panels(#d, #len, #inner, #i, #y).map_err(|e| format!("{}: {e}", #name))?;)
                } else if self.f16_table(data[0]) {
                    quote!(kernels::gather_f16(#d, #outer, #len, #inner, #i, #y).map_err(|e| format!("{}: {e}", #name))?;)
                } else {
                    quote!(kernels::gather(#d, #outer, #len, #inner, #i, #y).map_err(|e| format!("{}: {e}", #name))?;)
                }
            }
            Op::ReduceMean { .. } => {
                let in_shape = sh(0);
                let axes = crate::ops::reduce::axes_of(
                    &node.op,
                    in_shape.len(),
                    consts.get(1).copied().flatten(),
                )
                .map_err(|e| err(e.0))?;
                let x = self.read_rows(data[0], oe);
                match axes {
                    None => quote!((#y).copy_from_slice(#x);),
                    Some(ax) if !ax.is_empty() && ax.windows(2).all(|w| w[1] == w[0] + 1) => {
                        let (a, b) = (ax[0], ax[ax.len() - 1] + 1);
                        let (outer, n, inner) =
                            (self.prod(data[0], 0..a), self.prod(data[0], a..b), self.prod(data[0], b..in_shape.len()));
                        quote!(kernels::mean_axis(#x, #y, #outer, #n, #inner);)
                    }
                    Some(ax) => {
                        return Err(err(format!(
                            "ReduceMean over non-adjacent axes {ax:?} is not supported in generated code"
                        )))
                    }
                }
            }
            Op::Softmax { axis, coerce_2d } => {
                let s = sh(0);
                let ax = crate::ops::norm_axis(*axis, s.len()).map_err(|e| err(e.0))?;
                let v = data[0];
                let (outer, n, inner) = if *coerce_2d {
                    (self.prod(v, 0..ax), self.prod(v, ax..s.len()), quote!(1))
                } else {
                    (
                        self.prod(v, 0..ax),
                        self.prod(v, ax..ax + 1),
                        self.prod(v, ax + 1..s.len()),
                    )
                };
                let x = self.read_rows(v, oe);
                quote!(kernels::softmax(#x, #y, #outer, #n, #inner);)
            }
            Op::MatMul => self.matmul(data[0], data[1], o, oe)?,
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                // A transposed weight view is read as the stored matrix with transB flipped.
                let tied = self.transposed_source(data[1]);
                let trans_b = &(*trans_b ^ tied.is_some());
                let gemm = Op::Gemm {
                    alpha: *alpha,
                    beta: *beta,
                    trans_a: *trans_a,
                    trans_b: *trans_b,
                };
                let (m, k, n) = crate::ops::matmul::gemm_dims(
                    &gemm,
                    &sh(0),
                    &self.shape(tied.unwrap_or(data[1])),
                )
                .map_err(|e| err(e.0))?;
                let la = if *trans_a { (1, m) } else { (k, 1) };
                let lb = if *trans_b { (1, k) } else { (n, 1) };
                let (xa, xb) = (self.read_rows(data[0], oe), self.read(data[1], oe));
                let (la0, la1, lb0, lb1) = (lit(la.0), lit(la.1), lit(lb.0), lit(lb.1));
                let ml = if self.ax(data[0]).is_some() {
                    quote!(rn)
                } else {
                    let l = lit(m);
                    quote!(#l)
                };
                let (kl, nl) = (lit(k), lit(n));
                let alpha_t = f32_lit(*alpha);
                let (fill, beta_t) = match node.inputs.get(2).copied().flatten() {
                    Some(c) => {
                        let cs = isizes(&signed(&bcast_strides(&self.shape(c), &[m, n])));
                        let xc = self.read(c, oe);
                        (
                            quote!(kernels::copy_strided(#xc, 0, #cs, yr, 0, &[#nl, 1], &[#ml, #nl]);),
                            f32_lit(*beta),
                        )
                    }
                    None => (TokenStream::new(), quote!(0.0)),
                };
                quote! {
                    let yr = #y;
                    #fill
                    kernels::matmul(#alpha_t, #xa, &[0], Layout { row_stride: #la0, col_stride: #la1 }, #xb, &[0], Layout { row_stride: #lb0, col_stride: #lb1 }, #beta_t, yr, #ml, #kl, #nl);
                }
            }
            Op::Linear { activation } => {
                let (x, wv) = (data[0], data[1]);
                let act = match activation {
                    crate::ops::linear::Activation::Identity => quote!(Activation::Identity),
                    crate::ops::linear::Activation::Gelu => quote!(Activation::Gelu),
                };
                let (m, k, n) = crate::ops::linear::dims(&sh(0), &sh(1)).map_err(|e| err(e.0))?;
                let ml = if self.ax(x).is_some() {
                    quote!(rn)
                } else {
                    let l = lit(m);
                    quote!(#l)
                };
                let (kl, nl) = (lit(k), lit(n));
                let (xa, wt) = (self.read_rows(x, oe), self.read(wv, oe));
                let bias = match data.get(2) {
                    Some(&b) => {
                        let xb = self.read(b, oe);
                        quote!(Some(#xb))
                    }
                    None => quote!(None),
                };
                // Weights read only by Linears are stored in column panels (`layout`).
                let packed = matches!(self.plan.storage[wv],
                    Some(Storage::Weight(i)) if self.plan.weights[i].panels.is_some());
                let q4 = self.panel_format(wv) == Some(WeightFormat::Q4);
                if let (Some(scales), true) = (self.scales(wv), q4) {
                    quote!(kernels::linear_q4(#xa, #ml, #kl, #wt, #scales, #bias, #act, #y, #nl);)
                } else if let Some(scales) = self.scales(wv) {
                    quote!(kernels::linear_q8(#xa, #ml, #kl, #wt, #scales, #bias, #act, #y, #nl);)
                } else if self.panel_format(wv) == Some(WeightFormat::Bf16) {
                    quote!(kernels::linear_bf16(#xa, #ml, #kl, #wt, #bias, #act, #y, #nl);)
                } else if packed {
                    quote!(kernels::linear(#xa, #ml, #kl, #wt, #bias, #act, #y, #nl);)
                } else {
                    // A weight something else reads too: as stored, or as a tied transpose.
                    let lb = if self.transposed_source(wv).is_some() {
                        quote!(Layout { row_stride: 1, col_stride: #kl })
                    } else {
                        quote!(Layout { row_stride: #nl, col_stride: 1 })
                    };
                    quote!(kernels::linear_unpacked(#xa, #ml, #kl, #wt, #lb, #bias, #act, #y, #nl);)
                }
            }
            Op::Attention(at) => {
                let (q, k, v) = (data[0], data[1], data[2]);
                let (bh, heads, q_rows, kv_rows, d) = (
                    lit(at.batch * at.heads),
                    lit(at.heads),
                    lit(at.q_rows),
                    lit(at.kv_rows),
                    lit(at.head_dim),
                );
                let (xq, xk, xv) = (self.read(q, oe), self.read(k, oe), self.read(v, oe));
                let (scale, causal) = (f32_lit(at.scale), at.causal);
                let rows = if self.ax(q).is_some() {
                    quote!(r0, rn)
                } else {
                    quote!(0, #q_rows)
                };
                // A batched step: every run's rows against its own sequence's cache, in one
                // call (`step_block` binds the step's `runs`).
                let name = |v: ValueId| self.syms.buf_consts[v].clone().expect("buffer");
                let (bk, bv) = (name(k), name(v));
                let step_kv = self
                    .step
                    .map(|_| quote!(|c| (caches[c].view(buf::#bk), caches[c].view(buf::#bv))));
                // Dense operands say so; others spell out where their heads and rows are.
                let layout = |view: HeadView, shape: [usize; 4]| {
                    if view == HeadView::dense(shape) {
                        let (h, r, c) = (lit(shape[1]), lit(shape[2]), lit(shape[3]));
                        quote!(kernels::HeadLayout::dense(#h, #r, #c))
                    } else {
                        let [b, h, r, c] = view.strides.map(lit);
                        let off = lit(view.offset);
                        quote!(kernels::HeadLayout { offset: #off, batch: #b, head: #h, row: #r, col: #c })
                    }
                };
                let (lq, lk, lv) = (
                    layout(at.q, at.q_shape()),
                    layout(at.k, at.kv_shape()),
                    layout(at.v, at.kv_shape()),
                );
                let lo = layout(at.out_view(), at.q_shape());
                let call = match step_kv {
                    Some(kv) => quote!(kernels::attention_runs(#xq, y, dims, runs, #kv);),
                    None if self.kv != gpt2rt::kv::KvFormat::F32 => {
                        let pos0 = if self.ax(q).is_some() { quote!(r0) } else { quote!(0) };
                        quote!(kernels::attention_kv(#xq, kv.view(buf::#bk), kv.view(buf::#bv), y, dims, #rows, #pos0);)
                    }
                    None => quote!(kernels::attention(#xq, #xk, #xv, y, dims, #rows);),
                };
                quote! {
                    let dims = kernels::AttentionDims { bh: #bh, heads: #heads, q_rows: #q_rows, kv_rows: #kv_rows, d: #d, scale: #scale, causal: #causal, q: #lq, k: #lk, v: #lv, out: #lo };
                    #call
                }
            }
            Op::LayerNorm { eps } => self.layer_norm(&data, *eps, oe, &y),
            Op::Gelu => {
                let x = self.read_rows(data[0], oe);
                quote!(kernels::gelu_slice(#x, #y);)
            }
            Op::GeluErf => {
                let x = self.read_rows(data[0], oe);
                quote!(kernels::map(#x, #y, |v: f32| 0.5 * v * (1.0 + gpt2rt::vmath::erf(v * std::f32::consts::FRAC_1_SQRT_2)));)
            }
            Op::MinMax { max } if data.len() == 2 => {
                let f = match (max, oe) {
                    (true, Elem::F32) => quote!(f32::max),
                    (false, Elem::F32) => quote!(f32::min),
                    (true, Elem::I64) => quote!(i64::max),
                    (false, Elem::I64) => quote!(i64::min),
                };
                self.broadcast_with(data[0], data[1], o, oe, f)
            }
            // ONNX LayerNormalization over the last axis with a scale and bias of the width
            // is the fused LayerNorm (when `fuse-layernorm` is off it still runs here).
            Op::LayerNormalization { axis, eps, .. }
                if data.len() == 3
                    && node.outputs.len() == 1
                    && crate::ops::norm_axis(*axis, sh(0).len()).ok() == Some(sh(0).len() - 1)
                    && sh(1) == [*sh(0).last().unwrap_or(&0)]
                    && sh(2) == sh(1) =>
            {
                self.layer_norm(&data, *eps, oe, &y)
            }
            // One part of a split: a strided copy of the input (the axis dropped when the
            // part's shape drops it).
            Op::SplitPart(p) => {
                let in_shape = sh(0);
                let position = consts
                    .get(2)
                    .copied()
                    .flatten()
                    .ok_or_else(|| err("the position is not a constant".into()))?;
                let (ax, start, _, keep) = crate::ops::slice::split_part(
                    p,
                    &in_shape,
                    consts.get(1).copied().flatten(),
                    position,
                )
                .map_err(|e| err(e.0))?;
                let st = strides(&in_shape);
                let src: Vec<isize> = st
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| keep || i != ax)
                    .map(|(_, &s)| s as isize)
                    .collect();
                self.copy(data[0], start * st[ax], &src, o, 0, &strides(&out_shape), o)
            }
            Op::Compare(c) => {
                let f = match c {
                    CmpOp::Equal => quote!(|a, b| (a == b) as i64),
                    CmpOp::Less => quote!(|a, b| (a < b) as i64),
                    CmpOp::LessOrEqual => quote!(|a, b| (a <= b) as i64),
                    CmpOp::Greater => quote!(|a, b| (a > b) as i64),
                    CmpOp::GreaterOrEqual => quote!(|a, b| (a >= b) as i64),
                };
                self.broadcast_with(data[0], data[1], o, oe, f)
            }
            Op::Logic(l) => {
                let f = match l {
                    LogicOp::And => quote!(|a: i64, b: i64| a & b),
                    LogicOp::Or => quote!(|a: i64, b: i64| a | b),
                };
                self.broadcast_with(data[0], data[1], o, oe, f)
            }
            Op::Not => {
                let x = self.read_rows(data[0], oe);
                quote!(kernels::map(#x, #y, |v: i64| v ^ 1);)
            }
            Op::IsNaN => {
                let x = self.read_rows(data[0], oe);
                quote!(kernels::map(#x, #y, |v: f32| v.is_nan() as i64);)
            }
            Op::Where => {
                let (c, a, b) = (data[0], data[1], data[2]);
                let (xc, sc) = self.operand(c, o, oe);
                let (xa, sa) = self.operand(a, o, oe);
                let (xb, sb) = self.operand(b, o, oe);
                let shp = self.dims(o);
                quote!(kernels::select(#xc, #sc, #xa, #sa, #xb, #sb, #y, #shp);)
            }
            Op::CastLike
            | Op::Flatten { .. }
            | Op::MinMax { .. }
            | Op::Range
            | Op::CumSum { .. }
            | Op::Trilu { .. }
            | Op::LayerNormalization { .. } => {
                return Err(err(format!(
                    "the code generator has no run-time lowering for {} with these operands; it is supported where specialization folds it to a constant or a fusion absorbs it",
                    node.op.name()
                )))
            }
            Op::Identity | Op::Reshape { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. } => {
                unreachable!()
            }
            Op::Shape { .. } | Op::NonZero | Op::ConstantOfShape { .. } => {
                return Err(err(
                    "shape computations must be folded before code generation".into(),
                ))
            }
            Op::RoundRows(_) => {
                return Err(err(
                    "RoundRows only models a weight format's kernels for the interpreter".into(),
                ))
            }
        };
        Ok(self.block(index, o, body))
    }

    /// `copy_strided` from `src` (element strides `src_st` over the output's shape, base
    /// offset `src_base`) into `dst` at `dst_base` with strides `dst_st`, for this node's rows.
    /// `walk` is the value whose shape the copy iterates (the output, or for Concat the
    /// input).
    #[allow(clippy::too_many_arguments)]
    fn copy(
        &self,
        src: ValueId,
        src_base: usize,
        src_st: &[isize],
        dst: ValueId,
        dst_base: usize,
        dst_st: &[usize],
        walk: ValueId,
    ) -> TokenStream {
        let x = self.read(src, self.elem(dst));
        // Row r0 starts at r0 times the stride of the walked sequence axis, in both.
        let (so, dof) = match self.ax(walk) {
            Some(a) => (
                lin_at(src_base, src_st[a] as usize, &self.row_var(src)),
                lin(dst_base, dst_st[a]),
            ),
            None => (lin(src_base, 0), lin(dst_base, 0)),
        };
        let (ss, ds, shp) = (isizes(src_st), isizes(&signed(dst_st)), self.dims(walk));
        quote!(kernels::copy_strided(#x, #so, #ss, y, #dof, #ds, #shp);)
    }

    /// `kernels::layer_norm` over the last axis of `data[0]`, γ `data[1]`, β `data[2]`.
    fn layer_norm(&self, data: &[ValueId], eps: f32, oe: Elem, y: &TokenStream) -> TokenStream {
        let s = self.shape(data[0]);
        let n = *s.last().expect("rank >= 1");
        let rows = self.prod(data[0], 0..s.len() - 1);
        let (x, g, b) = (
            self.read_rows(data[0], oe),
            self.read(data[1], oe),
            self.read(data[2], oe),
        );
        let (nl, e) = (lit(n), f32_lit(eps));
        quote!(kernels::layer_norm(#x, #g, #b, #y, #rows, #nl, #e);)
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: ValueId,
        b: ValueId,
        o: ValueId,
        oe: Elem,
    ) -> std::result::Result<TokenStream, String> {
        let out = self.shape(o);
        let y = self.out_rows(o);
        if op == BinaryOp::Pow {
            if oe != Elem::F32 {
                return Err("Pow needs f32".into());
            }
            // A constant scalar exponent (GELU's x³, LayerNorm's x²) becomes multiplications.
            if let Some(e) = self
                .konst(b)
                .filter(|t| t.numel() == 1 && self.shape(a) == out)
            {
                let xa = self.read_rows(a, oe);
                let e = e.get_f64(0) as f32;
                let f = match e {
                    1.0 => quote!(|x| x),
                    2.0 => quote!(|x| x * x),
                    3.0 => quote!(|x| x * x * x),
                    0.5 => quote!(f32::sqrt),
                    _ => {
                        let l = f32_lit(e);
                        quote!(|x| x.powf(#l))
                    }
                };
                return Ok(quote!(kernels::map(#xa, #y, #f);));
            }
            if self.elem(b) != Elem::F32 {
                return Err("a run-time Pow exponent must be f32".into());
            }
        }
        // An operand stored as f16 (a table) is widened to f32 exactly, then the same op.
        if oe == Elem::F32 && (self.f16_table(a) || self.f16_table(b)) {
            let side = |v: ValueId, x: TokenStream| {
                if self.f16_table(v) {
                    (quote!(#x: gpt2rt::elem::F16), quote!(#x.widen()))
                } else {
                    (quote!(#x: f32), x)
                }
            };
            let ((pa, ea), (pb, eb)) = (side(a, quote!(a)), side(b, quote!(b)));
            let f = match op {
                BinaryOp::Add => quote!(|#pa, #pb| #ea + #eb),
                BinaryOp::Sub => quote!(|#pa, #pb| #ea - #eb),
                BinaryOp::Mul => quote!(|#pa, #pb| #ea * #eb),
                BinaryOp::Div => quote!(|#pa, #pb| #ea / #eb),
                BinaryOp::Pow => return Err("a table stored as f16 is not a Pow operand".into()),
            };
            return Ok(self.broadcast_with(a, b, o, oe, f));
        }
        let f = match (op, oe) {
            (BinaryOp::Add, Elem::F32) => quote!(|a, b| a + b),
            (BinaryOp::Sub, Elem::F32) => quote!(|a, b| a - b),
            (BinaryOp::Mul, Elem::F32) => quote!(|a, b| a * b),
            (BinaryOp::Div, Elem::F32) => quote!(|a, b| a / b),
            (BinaryOp::Pow, _) => quote!(f32::powf),
            (BinaryOp::Add, Elem::I64) => quote!(i64::wrapping_add),
            (BinaryOp::Sub, Elem::I64) => quote!(i64::wrapping_sub),
            (BinaryOp::Mul, Elem::I64) => quote!(i64::wrapping_mul),
            // ONNX leaves integer division by zero undefined; never panic on it.
            (BinaryOp::Div, Elem::I64) => quote!(|a: i64, b: i64| a.checked_div(b).unwrap_or(0)),
        };
        Ok(self.broadcast_with(a, b, o, oe, f))
    }

    /// `kernels::broadcast` of `f` over two operands into `o`.
    fn broadcast_with(
        &self,
        a: ValueId,
        b: ValueId,
        o: ValueId,
        oe: Elem,
        f: TokenStream,
    ) -> TokenStream {
        let y = self.out_rows(o);
        let ((xa, sa), (xb, sb)) = (self.operand(a, o, oe), self.operand(b, o, oe));
        let shp = self.dims(o);
        quote!(kernels::broadcast(#xa, #sa, #xb, #sb, #y, #shp, #f);)
    }

    /// A broadcast operand `v` of output `o`: read from row r0 on, with the strides of the
    /// full buffer (0 on broadcast dims).
    fn operand(&self, v: ValueId, o: ValueId, oe: Elem) -> (TokenStream, TokenStream) {
        let r = self.read(v, oe);
        let st = usizes(&bcast_strides(&self.shape(v), &self.shape(o)));
        match self.ax(v).or_else(|| self.seq.and_then(|s| s.row_read[v])) {
            Some(x) => {
                let s = lit(strides(&self.shape(v))[x]);
                let r0 = self.row_var(v);
                (quote!(&(#r)[#r0 * #s..]), st)
            }
            None => (r, st),
        }
    }

    fn matmul(&self, a: ValueId, b: ValueId, o: ValueId, oe: Elem) -> Result<TokenStream> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        let (m, k) = if sa.len() == 1 {
            (1, sa[0])
        } else {
            (sa[sa.len() - 2], sa[sa.len() - 1])
        };
        let n = if sb.len() == 1 { 1 } else { sb[sb.len() - 1] };
        let ab = &sa[..sa.len().saturating_sub(2)];
        let bb = &sb[..sb.len().saturating_sub(2)];
        let batch =
            crate::ops::elementwise::broadcast_shapes(ab, bb).map_err(|e| Error::Shape(e.0))?;
        let ao: Vec<usize> = broadcast_offsets(ab, &batch)
            .into_iter()
            .map(|x| x * m * k)
            .collect();
        let bo: Vec<usize> = broadcast_offsets(bb, &batch)
            .into_iter()
            .map(|x| x * k * n)
            .collect();
        let (xa, xb, ao, bo) = (
            self.read_rows(a, oe),
            self.read(b, oe),
            usizes(&ao),
            usizes(&bo),
        );
        let (kl, nl) = (lit(k), lit(n));
        // With a sequence axis, it is the row axis of a single matrix (sequence analysis).
        let ml = if self.ax(a).is_some() {
            quote!(rn)
        } else {
            let l = lit(m);
            quote!(#l)
        };
        let y = self.out_rows(o);
        // A transposed weight view ([K, N] read from the stored [N, K]) is a strided layout.
        let lb = if self.transposed_source(b).is_some() {
            quote!(Layout { row_stride: 1, col_stride: #kl })
        } else {
            quote!(Layout { row_stride: #nl, col_stride: 1 })
        };
        Ok(quote! {
            kernels::matmul(1.0, #xa, #ao, Layout { row_stride: #kl, col_stride: 1 }, #xb, #bo, #lb, 0.0, #y, #ml, #kl, #nl);
        })
    }

    fn split(
        &self,
        index: usize,
        x: ValueId,
        consts: &[Option<&Tensor>],
    ) -> std::result::Result<TokenStream, String> {
        let node = &self.graph.nodes[index];
        let in_shape = self.shape(x);
        let (ax, sizes) =
            crate::ops::slice::split_sizes(&node.op, &in_shape, consts).map_err(|e| e.0)?;
        let st = strides(&in_shape);
        let mut at = 0;
        let mut blocks = Vec::new();
        for (&o, &s) in node.outputs.iter().zip(&sizes) {
            // Outputs nobody reads (their readers were folded away) are not written.
            if self.uses[o] > 0 {
                let out_shape = self.shape(o);
                let call = self.copy(x, at * st[ax], &signed(&st), o, 0, &strides(&out_shape), o);
                blocks.push(self.block(index, o, call));
            }
            at += s;
        }
        Ok(quote!(#(#blocks)*))
    }
}

/// `format_ident!` for generated names that are already valid identifiers.
pub fn ident(s: &str) -> syn::Ident {
    format_ident!("{}", s)
}
