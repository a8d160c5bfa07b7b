//! Lowering: one IR node → the Rust statements that compute it, as tokens.
//!
//! Every op has a generic lowering driven by its static shapes: data movement becomes
//! `copy_strided` with compile-time strides, arithmetic `broadcast`/`map` with a closure,
//! contractions `matmul` on matrixmultiply. Fusions (later passes) only add faster forms.

use super::plan::{data_inputs, is_alias, Elem, Plan, Storage};
use crate::error::{Error, Result};
use crate::ir::{Graph, Node, Tensor, ValueId};
use crate::ops::elementwise::broadcast_offsets;
use crate::ops::{strides, BinaryOp, Op, UnaryOp};
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
}

fn usizes(v: &[usize]) -> TokenStream {
    let v = v.iter().map(|&x| Literal::usize_unsuffixed(x));
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

    /// A block that splits the arena around output `o` (as `y`, the rest as `rest`) and
    /// runs `body`.
    fn block(&self, o: ValueId, body: TokenStream) -> TokenStream {
        let b = self.syms.buf_consts[o].as_ref().expect("output buffer");
        let arena = match self.elem(o) {
            Elem::F32 => quote!(f32s),
            Elem::I64 => quote!(i64s),
        };
        quote! {
            {
                let (y, rest) = arena::split(#arena, buf::#b);
                #body
            }
        }
    }

    /// The statements computing `node`, or only a comment for views.
    pub fn lower(&self, node: &Node) -> Result<TokenStream> {
        let err = |msg: String| Error::Node {
            node: node.name.clone(),
            op: node.op.name().into(),
            msg,
        };
        if is_alias(&node.op) {
            return Ok(TokenStream::new());
        }
        let data: Vec<ValueId> = data_inputs(&node.op, node.inputs.len())
            .into_iter()
            .filter_map(|i| node.inputs.get(i).copied().flatten())
            .collect();
        let o = node.outputs[0];
        let oe = self.elem(o);
        let out_shape = self.shape(o);
        let r = |i: usize| self.read(data[i], oe);
        let sh = |i: usize| self.shape(data[i]);
        let consts: Vec<Option<&Tensor>> = node
            .inputs
            .iter()
            .map(|i| i.and_then(|i| self.konst(i)))
            .collect();
        let body = match &node.op {
            Op::Binary(b) => self
                .binary(*b, data[0], data[1], &out_shape, oe)
                .map_err(err)?,
            Op::Unary(u) => {
                let x = r(0);
                let f = match u {
                    UnaryOp::Sqrt => quote!(f32::sqrt),
                    UnaryOp::Tanh => quote!(f32::tanh),
                };
                quote!(kernels::map(#x, y, #f);)
            }
            Op::Cast { .. } => {
                let x = r(0);
                match (self.elem(data[0]), oe) {
                    (a, b) if a == b => quote!(y.copy_from_slice(#x);),
                    (Elem::F32, Elem::I64) => quote!(kernels::map(#x, y, |v| v as i64);),
                    (Elem::I64, Elem::F32) => quote!(kernels::map(#x, y, |v| v as f32);),
                    _ => unreachable!(),
                }
            }
            Op::Expand => {
                let (x, s) = (r(0), isizes(&signed(&bcast_strides(&sh(0), &out_shape))));
                let (ds, shp) = (isizes(&signed(&strides(&out_shape))), usizes(&out_shape));
                quote!(kernels::copy_strided(#x, 0, #s, y, 0, #ds, #shp);)
            }
            Op::Transpose { perm } => {
                let in_shape = sh(0);
                let p: Vec<usize> = perm
                    .clone()
                    .unwrap_or_else(|| (0..in_shape.len()).rev().collect());
                let st = strides(&in_shape);
                let src: Vec<isize> = p.iter().map(|&a| st[a] as isize).collect();
                let (x, s) = (r(0), isizes(&src));
                let (ds, shp) = (isizes(&signed(&strides(&out_shape))), usizes(&out_shape));
                quote!(kernels::copy_strided(#x, 0, #s, y, 0, #ds, #shp);)
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
                let (x, s, off) = (r(0), isizes(&src), Literal::usize_unsuffixed(off as usize));
                let (ds, shp) = (isizes(&signed(&strides(&out_shape))), usizes(&out_shape));
                quote!(kernels::copy_strided(#x, #off, #s, y, 0, #ds, #shp);)
            }
            Op::Split { .. } => return self.split(node, data[0], &consts).map_err(err),
            Op::Concat { axis } => {
                let ax = crate::ops::norm_axis(*axis, out_shape.len()).map_err(|e| err(e.0))?;
                let ost = strides(&out_shape);
                let ds = isizes(&signed(&ost));
                let mut at = 0;
                let mut calls = Vec::new();
                for i in node.inputs.iter().flatten() {
                    let s = self.shape(*i);
                    let (x, xs, shp) =
                        (self.read(*i, oe), isizes(&signed(&strides(&s))), usizes(&s));
                    let off = Literal::usize_unsuffixed(at * ost[ax]);
                    calls.push(quote!(kernels::copy_strided(#x, 0, #xs, y, #off, #ds, #shp);));
                    at += s[ax];
                }
                quote!(#(#calls)*)
            }
            Op::Gather { axis } => {
                let ds = sh(0);
                let ax = crate::ops::norm_axis(*axis, ds.len()).map_err(|e| err(e.0))?;
                let outer = Literal::usize_unsuffixed(ds[..ax].iter().product());
                let len = Literal::usize_unsuffixed(ds[ax]);
                let inner = Literal::usize_unsuffixed(ds[ax + 1..].iter().product());
                if self.elem(data[1]) != Elem::I64 {
                    return Err(err("Gather indices must be i64 in generated code".into()));
                }
                let (d, i) = (r(0), r(1));
                let name = Literal::string(&node.name);
                quote!(kernels::gather(#d, #outer, #len, #inner, #i, y).map_err(|e| format!("{}: {e}", #name))?;)
            }
            Op::ReduceMean { .. } => {
                let in_shape = sh(0);
                let axes = crate::ops::reduce::axes_of(
                    &node.op,
                    in_shape.len(),
                    consts.get(1).copied().flatten(),
                )
                .map_err(|e| err(e.0))?;
                let x = r(0);
                match axes {
                    None => quote!(y.copy_from_slice(#x);),
                    Some(ax) if ax.windows(2).all(|w| w[1] == w[0] + 1) && !ax.is_empty() => {
                        let (a, b) = (ax[0], ax[ax.len() - 1] + 1);
                        let outer = Literal::usize_unsuffixed(in_shape[..a].iter().product());
                        let n = Literal::usize_unsuffixed(in_shape[a..b].iter().product());
                        let inner = Literal::usize_unsuffixed(in_shape[b..].iter().product());
                        quote!(kernels::mean_axis(#x, y, #outer, #n, #inner);)
                    }
                    Some(ax) => {
                        return Err(err(format!("ReduceMean over non-adjacent axes {ax:?} is not supported in generated code")))
                    }
                }
            }
            Op::Softmax { axis, coerce_2d } => {
                let s = sh(0);
                let ax = crate::ops::norm_axis(*axis, s.len()).map_err(|e| err(e.0))?;
                let (outer, n, inner): (usize, usize, usize) = if *coerce_2d {
                    (s[..ax].iter().product(), s[ax..].iter().product(), 1)
                } else {
                    (
                        s[..ax].iter().product(),
                        s[ax],
                        s[ax + 1..].iter().product(),
                    )
                };
                let (x, outer, n, inner) = (
                    r(0),
                    Literal::usize_unsuffixed(outer),
                    Literal::usize_unsuffixed(n),
                    Literal::usize_unsuffixed(inner),
                );
                quote!(kernels::softmax(#x, y, #outer, #n, #inner);)
            }
            Op::MatMul => self.matmul(data[0], data[1], oe)?,
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                let (a, b) = (sh(0), sh(1));
                let (m, k) = if *trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
                let n = if *trans_b { b[0] } else { b[1] };
                let la = if *trans_a { (1, m) } else { (k, 1) };
                let lb = if *trans_b { (1, k) } else { (n, 1) };
                let (xa, xb) = (r(0), r(1));
                let (la0, la1, lb0, lb1) = (
                    Literal::usize_unsuffixed(la.0),
                    Literal::usize_unsuffixed(la.1),
                    Literal::usize_unsuffixed(lb.0),
                    Literal::usize_unsuffixed(lb.1),
                );
                let (ml, kl, nl) = (
                    Literal::usize_unsuffixed(m),
                    Literal::usize_unsuffixed(k),
                    Literal::usize_unsuffixed(n),
                );
                let alpha_t = f32_lit(*alpha);
                let (fill, beta_t) = match node.inputs.get(2).copied().flatten() {
                    Some(c) => {
                        let cs = isizes(&signed(&bcast_strides(&self.shape(c), &[m, n])));
                        let xc = self.read(c, oe);
                        (
                            quote!(kernels::copy_strided(#xc, 0, #cs, y, 0, &[#nl, 1], &[#ml, #nl]);),
                            f32_lit(*beta),
                        )
                    }
                    None => (TokenStream::new(), quote!(0.0)),
                };
                quote! {
                    #fill
                    kernels::matmul(#alpha_t, #xa, &[0], Layout { row_stride: #la0, col_stride: #la1 }, #xb, &[0], Layout { row_stride: #lb0, col_stride: #lb1 }, #beta_t, y, #ml, #kl, #nl);
                }
            }
            Op::Identity | Op::Reshape { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. } => {
                unreachable!()
            }
            Op::Shape { .. } | Op::NonZero | Op::ConstantOfShape { .. } => {
                return Err(err(
                    "shape computations must be folded before code generation".into(),
                ))
            }
        };
        Ok(self.block(o, body))
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: ValueId,
        b: ValueId,
        out: &[usize],
        oe: Elem,
    ) -> std::result::Result<TokenStream, String> {
        let (xa, xb) = (self.read(a, oe), self.read(b, oe));
        if op == BinaryOp::Pow {
            if oe != Elem::F32 {
                return Err("Pow needs f32".into());
            }
            // A constant scalar exponent (GELU's x³, LayerNorm's x²) becomes multiplications.
            if let Some(e) = self
                .konst(b)
                .filter(|t| t.numel() == 1 && self.shape(a) == out)
            {
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
                return Ok(quote!(kernels::map(#xa, y, #f);));
            }
            if self.elem(b) != Elem::F32 {
                return Err("a run-time Pow exponent must be f32".into());
            }
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
        let (sa, sb) = (
            usizes(&bcast_strides(&self.shape(a), out)),
            usizes(&bcast_strides(&self.shape(b), out)),
        );
        let shp = usizes(out);
        Ok(quote!(kernels::broadcast(#xa, #sa, #xb, #sb, y, #shp, #f);))
    }

    fn matmul(&self, a: ValueId, b: ValueId, oe: Elem) -> Result<TokenStream> {
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
        let (xa, xb, ao, bo) = (self.read(a, oe), self.read(b, oe), usizes(&ao), usizes(&bo));
        let (kl, nl) = (Literal::usize_unsuffixed(k), Literal::usize_unsuffixed(n));
        let ml = Literal::usize_unsuffixed(m);
        Ok(quote! {
            kernels::matmul(1.0, #xa, #ao, Layout { row_stride: #kl, col_stride: 1 }, #xb, #bo, Layout { row_stride: #nl, col_stride: 1 }, 0.0, y, #ml, #kl, #nl);
        })
    }

    fn split(
        &self,
        node: &Node,
        x: ValueId,
        consts: &[Option<&Tensor>],
    ) -> std::result::Result<TokenStream, String> {
        let in_shape = self.shape(x);
        let (ax, sizes) =
            crate::ops::slice::split_sizes(&node.op, &in_shape, consts).map_err(|e| e.0)?;
        let st = strides(&in_shape);
        let src = isizes(&signed(&st));
        let mut at = 0;
        let mut blocks = Vec::new();
        for (&o, &s) in node.outputs.iter().zip(&sizes) {
            let out_shape = self.shape(o);
            let off = Literal::usize_unsuffixed(at * st[ax]);
            let xr = self.read(x, self.elem(o));
            let (ds, shp) = (isizes(&signed(&strides(&out_shape))), usizes(&out_shape));
            blocks.push(self.block(
                o,
                quote!(kernels::copy_strided(#xr, #off, #src, y, 0, #ds, #shp);),
            ));
            at += s;
        }
        Ok(quote!(#(#blocks)*))
    }
}

/// `format_ident!` for generated names that are already valid identifiers.
pub fn ident(s: &str) -> syn::Ident {
    format_ident!("{}", s)
}
