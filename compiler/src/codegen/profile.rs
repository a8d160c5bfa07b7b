//! The generated code's profile table (`gpt2 --profile`, `gpt2rt::profile`): which nodes
//! are timed, named as in the code comments, with a cost model for each so the report can
//! show achieved GFLOP/s and GB/s.
//!
//! Costs come from `Op::cost` at two row counts: one row and the whole sequence. Their
//! difference per row is the per-row part and the rest is fixed (the weights). Attention is
//! costed with as many keys as rows, so a decoding step's attention, which reads the whole
//! cache, is under-counted: its GFLOP/s and GB/s are lower bounds.

use super::plan::is_alias;
use crate::ir::{Graph, Node};
use crate::ops::{Cost, InferIn, OutType};
use crate::sequence::SeqInfo;
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// Index in the profile table of each node (`None`: a view, a Concat computed in place, or
/// run once at start-up).
pub fn ids(g: &Graph, seq: Option<&SeqInfo>, plan: &super::plan::Plan) -> Vec<Option<usize>> {
    let mut next = 0;
    g.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let timed = !is_alias(g, n) && !plan.in_place(n) && !seq.is_some_and(|s| s.init[i]);
            timed.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// The cost of node `n` with every sequence axis `rows` long.
fn cost_at(g: &Graph, n: &Node, seq: Option<&SeqInfo>, rows: usize) -> Cost {
    let shape = |v: usize| {
        let mut s = g.shape(v);
        if let Some(a) = seq.and_then(|s| s.axis[v]) {
            s[a] = rows;
        }
        s
    };
    let shapes: Vec<Option<(usize, Vec<usize>)>> =
        n.inputs.iter().map(|i| i.map(|v| (v, shape(v)))).collect();
    let ins: Vec<Option<InferIn>> = shapes
        .iter()
        .map(|s| {
            s.as_ref().map(|(v, shape)| InferIn {
                dtype: g.values[*v]
                    .ty
                    .as_ref()
                    .map_or(crate::ir::DType::F32, |t| t.dtype),
                shape,
                konst: g.values[*v].konst.as_ref(),
            })
        })
        .collect();
    let outs: Vec<OutType> = n
        .outputs
        .iter()
        .map(|&o| {
            let dtype = g.values[o]
                .ty
                .as_ref()
                .map_or(crate::ir::DType::F32, |t| t.dtype);
            (dtype, shape(o))
        })
        .collect();
    n.op.cost(&ins, &outs)
}

/// `pub const PROFILE: &[profile::NodeInfo]`, one entry per timed node.
pub fn table(g: &Graph, seq: Option<&SeqInfo>, ids: &[Option<usize>]) -> TokenStream {
    let entries = g.nodes.iter().zip(ids).filter(|(_, id)| id.is_some()).map(|(n, _)| {
        // [fixed, per row] from the costs at one row and at the whole sequence.
        let (flops, bytes) = match seq {
            Some(s) if s.len > 1 => {
                let (one, all) = (cost_at(g, n, seq, 1), cost_at(g, n, seq, s.len));
                let per = |a: u64, b: u64| b.saturating_sub(a) / (s.len as u64 - 1);
                let (pf, pb) = (per(one.flops, all.flops), per(one.bytes, all.bytes));
                ([one.flops.saturating_sub(pf), pf], [one.bytes.saturating_sub(pb), pb])
            }
            _ => {
                let c = cost_at(g, n, None, 0);
                ([c.flops, 0], [c.bytes, 0])
            }
        };
        let layer = super::names::layer_of(&n.name).map_or(-1, |l| l as i32);
        let (name, op) = (n.name.as_str(), n.op.name());
        let l = |x: u64| Literal::u64_unsuffixed(x);
        let (f0, f1, b0, b1) = (l(flops[0]), l(flops[1]), l(bytes[0]), l(bytes[1]));
        quote! {
            profile::NodeInfo { name: #name, op: #op, layer: #layer, flops: [#f0, #f1], bytes: [#b0, #b1] }
        }
    });
    quote! {
        /// Every timed node (`gpt2rt::profile`), named as in the comments of `forward_rows`,
        /// with its layer and cost model (FLOPs and bytes: fixed, per row).
        pub const PROFILE: &[profile::NodeInfo] = &[#(#entries),*];
    }
}
