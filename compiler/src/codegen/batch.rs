//! Batched steps (continuous batching): what lets the rows of several sequences run in one
//! call of the generated code, and the statements that call differs by.
//!
//! The sequence analysis proved every op row-wise along the sequence or causal attention.
//! Then rows need not belong to one sequence: a step stacks the new rows of several
//! sequences from row 0, and every row-wise op runs once over all of them (one pass over a
//! Linear's weights serves every sequence). Three things depend on which sequence a row
//! belongs to, and the step handles them per run of rows (`gpt2rt::batch::Run`):
//! - values indexed by position (a position-embedding table): read at the run's position,
//!   not at its row in the step;
//! - the attention cache: the ops that make keys and values write the step's rows into the
//!   arena's cache block, which are then stored in each sequence's own cache (a
//!   `gpt2rt::kv::KvCache` laid out like that block, `Plan::cache_len` values in the cache
//!   format), at the sequence's positions;
//! - attention: each run against its own sequence's cache.
//!
//! With `last_only`, the rows that feed the logits alone are first compacted to one per
//! sequence (its last row), so the LM head runs once per sequence, not once per row.

use super::lower::Lowerer;
use super::plan::{data_inputs, is_alias, Elem, Plan, Storage};
use crate::ir::{Graph, ValueId};
use crate::ops::{strides, Op};
use crate::sequence::{rows_contiguous, SeqInfo};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// What a batched step needs beyond the rows' statements.
#[derive(Clone, Debug)]
pub struct Batching {
    /// Elements of one sequence's cache: the start of the f32 arena (`Plan::cache_len`).
    pub cache_len: usize,
    /// Per node: its output is (inside) the cache block, so the step's rows of it are copied
    /// to each sequence's cache after it runs.
    pub writes_cache: Vec<bool>,
    /// Per node: it reads a value indexed by position, so it runs once per run of rows.
    pub reads_by_position: Vec<bool>,
    /// Buffers read by the logits-only ops and made by others, with their rows'
    /// length: compacted to one row per sequence when only the last rows matter.
    pub tail_inputs: Vec<(ValueId, usize)>,
    /// The first logits-only node, where the compaction goes.
    pub first_tail: Option<usize>,
}

/// Whether value `v` is indexed by position rather than by row: a constant, or a value the
/// init nodes computed from weights, that varies along the sequence.
pub fn by_position(g: &Graph, plan: &Plan, seq: Option<&SeqInfo>, v: ValueId) -> bool {
    let Some(s) = seq else { return false };
    s.row_read[v].is_some()
        || (s.axis[v].is_some()
            && (g.values[v].konst.is_some() || matches!(plan.storage[v], Some(Storage::Weight(_)))))
}

/// The element range value `v` occupies in the f32 arena, if it lives there.
fn f32_range(plan: &Plan, v: ValueId) -> Option<std::ops::Range<usize>> {
    match plan.storage[v] {
        Some(Storage::Arena {
            elem: Elem::F32,
            offset,
            len,
        }) => Some(offset..offset + len),
        _ => None,
    }
}

/// Whether the graph's rows can run as a batched step, and what that step needs; `Err`
/// says why not.
pub fn analyze(g: &Graph, seq: &Result<SeqInfo, String>, plan: &Plan) -> Result<Batching, String> {
    let s = seq
        .as_ref()
        .map_err(|e| format!("the sequence analysis failed ({e})"))?;
    if s.cache.is_empty() || plan.cache_len == 0 {
        return Err("no attention cache: nothing tells the sequences apart".into());
    }
    for &c in &s.cache {
        match f32_range(plan, c) {
            Some(r) if r.end <= plan.cache_len => {}
            _ => {
                return Err(format!(
                    "the cached value '{}' is not in the f32 cache block",
                    g.values[c].name
                ))
            }
        }
    }
    let in_cache = |v: ValueId| f32_range(plan, v).is_some_and(|r| r.start < plan.cache_len);
    let mut writes_cache = vec![false; g.nodes.len()];
    let mut reads_by_position = vec![false; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        if s.init[i] || is_alias(g, n) {
            continue;
        }
        let fail = |why: &str| format!("node '{}' ({}): {why}", n.name, n.op.name());
        let data: Vec<ValueId> = data_inputs(&n.op, n.inputs.len())
            .into_iter()
            .filter_map(|k| n.inputs.get(k).copied().flatten())
            .collect();
        reads_by_position[i] = data.iter().any(|&v| by_position(g, plan, Some(s), v));
        if n.outputs.iter().any(|&o| in_cache(o)) {
            if n.outputs.len() != 1 || s.axis[n.outputs[0]].is_none() {
                return Err(fail("it writes the attention cache but not row by row"));
            }
            if s.tail[i] {
                return Err(fail(
                    "it writes the attention cache but feeds only the logits",
                ));
            }
            writes_cache[i] = true;
        }
        if let Op::Attention(_) = n.op {
            if by_position(g, plan, Some(s), data[0]) {
                return Err(fail("its queries are not rows of the step"));
            }
        }
    }
    // What the logits-only ops read from the others.
    let producers = g.producers();
    let mut tail_inputs: Vec<(ValueId, usize)> = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if !s.tail[i] || s.init[i] || is_alias(g, n) {
            continue;
        }
        for &v in data_inputs(&n.op, n.inputs.len())
            .iter()
            .filter_map(|&k| n.inputs.get(k).copied().flatten())
            .collect::<Vec<_>>()
            .iter()
        {
            let r = plan.root[v];
            // Attention reads its keys and values from each sequence's cache.
            if matches!(n.op, Op::Attention(_)) && s.cache.iter().any(|&c| plan.root[c] == r) {
                continue;
            }
            let made_by_tail = producers.get(&r).is_some_and(|&p| s.tail[p]);
            let Some(a) = s.axis[v] else { continue };
            if made_by_tail || by_position(g, plan, Some(s), v) || g.values[r].konst.is_some() {
                continue;
            }
            if !rows_contiguous(g, v, a) || f32_range(plan, v).is_none() {
                return Err(format!(
                    "node '{}' ({}): the logits-only ops read '{}', whose rows cannot be compacted",
                    n.name,
                    n.op.name(),
                    g.values[v].name
                ));
            }
            if !tail_inputs.iter().any(|&(t, _)| plan.root[t] == r) {
                tail_inputs.push((v, strides(&g.shape(v))[a]));
            }
        }
    }
    let first_tail =
        (0..g.nodes.len()).find(|&i| s.tail[i] && !s.init[i] && !is_alias(g, &g.nodes[i]));
    // The compaction happens before the first logits-only node: nothing after it may read
    // the full rows again.
    if let Some(f) = first_tail {
        for (i, n) in g.nodes.iter().enumerate().skip(f) {
            if s.tail[i] || s.init[i] {
                continue;
            }
            if let Some(&v) = n.inputs.iter().flatten().find(|&&v| {
                tail_inputs
                    .iter()
                    .any(|&(t, _)| plan.root[t] == plan.root[v])
            }) {
                return Err(format!(
                    "node '{}' ({}) reads '{}' after the logits-only ops compacted it",
                    n.name,
                    n.op.name(),
                    g.values[v].name
                ));
            }
        }
    }
    Ok(Batching {
        cache_len: plan.cache_len,
        writes_cache,
        reads_by_position,
        tail_inputs,
        first_tail,
    })
}

/// What `Lowerer::block` made for a node: the binding of its rows (`let (r0, rn) = ..`),
/// its timer, the split of the arena around its output, and its statements.
pub struct StepParts {
    /// `let (r0, rn) = rows;` (or `tail_rows`).
    pub rows: TokenStream,
    /// The profile timer.
    pub timer: TokenStream,
    /// `let (y, rest) = arena::split(..);`
    pub split: TokenStream,
    /// The statements computing the node.
    pub body: TokenStream,
}

/// The statements of node `index` in a batched step (`Lowerer::block` with `step`): `body`
/// for all rows (attention with the step's `runs`, each against its own cache), or once per
/// run when it reads by position, then the copy
/// of its rows to each sequence's cache when it writes the cache block.
pub fn step_block(
    low: &Lowerer,
    b: &Batching,
    s: &SeqInfo,
    index: usize,
    o: ValueId,
    parts: StepParts,
) -> TokenStream {
    let StepParts {
        rows,
        timer,
        split,
        body,
    } = parts;
    let g = low.graph;
    let attention = matches!(g.nodes[index].op, Op::Attention(_));
    let runs = if s.tail[index] {
        quote!(batch::tail_runs(segments, last_only))
    } else {
        quote!(batch::runs(segments))
    };
    let mut out = if attention {
        quote! {
            {
                #rows
                let runs = #runs;
                #timer
                #split
                #body
            }
        }
    } else if b.reads_by_position[index] {
        quote! {
            for run in #runs {
                let (r0, rn, q0) = (run.row, run.rows, run.pos);
                #timer
                #split
                #body
            }
        }
    } else {
        quote! {
            {
                #rows
                #timer
                #split
                #body
            }
        }
    };
    if b.writes_cache[index] {
        let (sts, row, dims) = cache_rows(low, s, o, quote!(run.rows));
        let name = low.syms.buf_consts[o].clone().expect("output buffer");
        out.extend(quote! {
            // This step's rows of it, to each sequence's cache at the sequence's positions.
            for run in batch::runs(segments) {
                caches[run.cache].store(
                    buf::#name, &f32s[buf::#name], run.row * #row, run.pos * #row,
                    &[#(#sts),*], &[#(#dims),*],
                );
            }
        });
    }
    out
}

/// Where a cache-writing node's output puts its rows: the strides of its shape, the
/// stride of its sequence axis, and its shape with that axis `rows` long.
fn cache_rows(
    low: &Lowerer,
    s: &SeqInfo,
    o: ValueId,
    rows: TokenStream,
) -> (Vec<Literal>, Literal, Vec<TokenStream>) {
    let shape = low.graph.shape(o);
    let a = s.axis[o].expect("checked by analyze");
    let st = strides(&shape);
    let row = Literal::usize_unsuffixed(st[a]);
    let sts = st
        .iter()
        .map(|&x| Literal::isize_unsuffixed(x as isize))
        .collect();
    let dims = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i == a {
                rows.clone()
            } else {
                let l = Literal::usize_unsuffixed(d);
                quote!(#l)
            }
        })
        .collect();
    (sts, row, dims)
}

/// With a narrow attention cache, the statements after cache-writing node `index` in
/// `forward_rows`: the call's rows of its output rounded into the model's own cache, which
/// attention then reads (the f32 values stay in the arena as the presents).
pub fn store_rows(low: &Lowerer, b: &Batching, s: &SeqInfo, index: usize) -> TokenStream {
    if !b.writes_cache[index] {
        return TokenStream::new();
    }
    let o = low.graph.nodes[index].outputs[0];
    let (sts, row, dims) = cache_rows(low, s, o, quote!(rn));
    let name = low.syms.buf_consts[o].clone().expect("output buffer");
    let what = super::comment(&format!(
        "These rows, rounded into the {} attention cache",
        low.kv.name()
    ));
    quote! {
        #what
        {
            let (r0, rn) = rows;
            kv.store(buf::#name, &f32s[buf::#name], r0 * #row, r0 * #row, &[#(#sts),*], &[#(#dims),*]);
        }
    }
}

/// Whether the cache block can be stored in `format`: every value attention reads and every
/// cache-writing node's rows lie in whole blocks along a contiguous last axis (a q8 block
/// is `kv::q8_block` of the head size, so a block never mixes positions or heads). Returns
/// the values per scale (`KV_BLOCK`: 1 but for q8).
pub fn check_kv_format(
    g: &Graph,
    plan: &Plan,
    b: &Batching,
    s: &SeqInfo,
    format: gpt2rt::kv::KvFormat,
) -> Result<usize, String> {
    use gpt2rt::kv::{q8_block, KvFormat};
    if format == KvFormat::F32 {
        return Ok(1);
    }
    let mut block = 1;
    for n in &g.nodes {
        if let Op::Attention(at) = &n.op {
            let blk = if format == KvFormat::Q8 {
                q8_block(at.head_dim)
            } else {
                1
            };
            if block != 1 && blk != block {
                return Err(format!("heads of different sizes in '{}'", n.name));
            }
            block = blk;
            for (view, what) in [(&at.k, "keys"), (&at.v, "values")] {
                let [sb, sh, sr, sc] = view.strides;
                if sc != 1 || [view.offset, sb, sh, sr].iter().any(|x| x % blk != 0) {
                    return Err(format!(
                        "'{}' reads its {what} with channels not in contiguous blocks of {blk}",
                        n.name
                    ));
                }
            }
        }
    }
    for (i, n) in g.nodes.iter().enumerate() {
        if !b.writes_cache[i] {
            continue;
        }
        let o = n.outputs[0];
        let shape = g.shape(o);
        let a = s.axis[o].expect("checked by analyze");
        let last = shape.len() - 1;
        let start = f32_range(plan, o).map_or(1, |r| r.start);
        if a == last || !shape[last].is_multiple_of(block) || !start.is_multiple_of(block) {
            return Err(format!(
                "'{}' writes cache rows that are not whole blocks of {block} along its last axis",
                n.name
            ));
        }
    }
    Ok(block)
}

/// The compaction before the first logits-only node: one row per sequence.
pub fn compaction(low: &Lowerer, b: &Batching) -> TokenStream {
    let moves = b.tail_inputs.iter().map(|&(v, row)| {
        let name = low.syms.buf_consts[v].clone().expect("buffer");
        let row = Literal::usize_unsuffixed(row);
        quote!(batch::compact_last_rows(&mut f32s[buf::#name], #row, segments);)
    });
    quote! {
        // Only each sequence's last row feeds the logits: move it to row i for sequence i.
        if last_only {
            #(#moves)*
        }
    }
}
