//! Code generation: a specialized graph → one Rust source file and one weight blob.
//!
//! The source is built as tokens with `quote!`, parsed by syn and pretty-printed by
//! prettyplease. Comments cannot be tokens, so statements carry `gpt2c_comment!("...")`
//! markers that become `//` lines after printing.

pub mod batch;
pub mod layout;
pub(crate) mod lower;
pub mod names;
pub mod object;
pub mod plan;
mod profile;

use crate::error::{Error, Result};
use crate::gpt2::Gpt2Config;
use crate::ir::Graph;
use crate::sequence::SeqInfo;
use lower::{ident, Lowerer, Symbols};
use plan::{Elem, Storage};
use proc_macro2::{Literal, TokenStream};
use quote::quote;
use std::io::Write;
use std::path::Path;

/// Where the generated source finds the folder of its weight object.
#[derive(Clone, Debug)]
pub enum WeightsPath {
    /// `$OUT_DIR`: for build scripts.
    OutDir,
    /// An absolute path.
    Absolute(String),
    /// `$CARGO_MANIFEST_DIR`: for a standalone crate (`gpt2c emit`).
    ManifestDir,
}

/// What the generated source says about its model, and how it stores the weights.
#[derive(Clone, Debug)]
pub struct Options {
    /// File name of the model, for the header.
    pub model_name: String,
    /// sha256 of the model file, hex.
    pub model_sha256: String,
    /// Where the generated source finds the folder of its weight object.
    pub weights_path: WeightsPath,
    /// The GPT-2 configuration, when the graph is one.
    pub gpt2: Option<Gpt2Config>,
    /// Free-form description of the compile options, for the header.
    pub options: String,
    /// How Linear weights are stored (`GPT2_WEIGHTS`).
    pub weight_format: layout::WeightFormat,
    /// How the attention cache stores keys and values (`GPT2_KV`).
    pub kv_format: gpt2rt::kv::KvFormat,
    /// Optional passes that were switched off (they change the weight blob's layout).
    pub disabled_passes: Vec<String>,
    /// The constant-folding budget, when not the default (it changes which constants the
    /// blob holds).
    pub fold_budget: Option<usize>,
    /// The machine the weight object is written for (the target's, not the compiler's).
    pub machine: object::Machine,
}

/// What `emit` produced.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Lines of generated Rust.
    pub source_lines: usize,
    /// Size of the weight blob in bytes.
    pub weight_bytes: usize,
    /// The weight object written (`object`: the blob 64 bytes in).
    pub weights_file: std::path::PathBuf,
    /// Number of distinct weights in it.
    pub weights: usize,
    /// Size of the f32 arena in elements.
    pub arena_f32: usize,
    /// Size of the i64 arena in elements.
    pub arena_i64: usize,
    /// Nodes that lowered to code (views emit none).
    pub statements: usize,
}

const MARKER: &str = "gpt2c_comment!(";

/// Turns the `gpt2c_comment!("text");` markers (which prettyplease may wrap over several
/// lines) back into `// text` lines.
fn restore_comments(pretty: &str, out: &mut String) {
    let mut lines = pretty.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if !t.starts_with(MARKER) {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let indent = &line[..line.len() - t.len()];
        let mut call = t.to_string();
        while !call.trim_end().ends_with(");") {
            match lines.next() {
                Some(l) => call.push_str(l.trim()),
                None => break,
            }
        }
        let text = call
            .trim_end()
            .strip_prefix(MARKER)
            .and_then(|r| r.strip_suffix(");"))
            .unwrap_or("");
        let text = text.trim().trim_end_matches(',').trim().trim_matches('"');
        out.push_str(&format!("{indent}// {text}\n"));
    }
}

pub(super) fn comment(text: &str) -> TokenStream {
    // Printable ASCII without quotes or backslashes round-trips through the string literal.
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let l = Literal::string(&clean);
    quote!(gpt2c_comment!(#l);)
}

fn type_str(g: &Graph, v: usize) -> String {
    g.values[v]
        .ty
        .as_ref()
        .map_or("?".into(), |t| t.to_string())
}

/// Generates the source (returned) and writes the weight object into `weights_dir`, named
/// after its symbol (`<symbol>.o`; see `object`).
pub fn generate(graph: &Graph, opts: &Options, weights_dir: &Path) -> Result<(String, Summary)> {
    crate::passes::specialize::check_static(graph)?;
    let seq = sequence_info(graph);
    // Nodes feeding only the logits last (see `sequence::tail_last`).
    let reordered = seq
        .as_ref()
        .ok()
        .and_then(|s| crate::sequence::tail_last(graph, s));
    let graph = reordered.as_ref().unwrap_or(graph);
    let seq = match reordered {
        Some(_) => sequence_info(graph),
        None => seq,
    };
    let cache: &[usize] = seq.as_ref().map_or(&[], |s| &s.cache[..]);
    let mut plan = plan::plan(graph, &persistent(graph, &seq), cache)?;
    plan.store_panels_as(opts.weight_format);

    // Names: weight fields, buffer constants.
    let mut namer = names::Namer::default();
    let weight_fields: Vec<syn::Ident> = plan
        .weights
        .iter()
        .map(|w| ident(&namer.unique(names::snake(&graph.values[w.value].name))))
        .collect();
    let mut buf_names = names::Namer::default();
    let mut buf_consts: Vec<Option<syn::Ident>> = vec![None; graph.values.len()];
    // A fused node's output is named for its role (`names::role`), the keys and values an
    // attention reads for it, others for their value.
    let producers = graph.producers();
    let mut operands = std::collections::HashMap::new();
    for n in &graph.nodes {
        if let (Some(r), crate::ops::Op::Attention(_)) = (names::role(&n.name, &n.op), &n.op) {
            for (k, what) in [(1, "keys"), (2, "values")] {
                if let Some(v) = n.inputs[k] {
                    operands
                        .entry(plan.root[v])
                        .or_insert(format!("{r}_{what}"));
                }
            }
        }
    }
    for &b in &plan.buffers {
        let role = producers.get(&b).and_then(|&i| {
            let n = &graph.nodes[i];
            (n.outputs.len() == 1)
                .then(|| names::role(&n.name, &n.op))
                .flatten()
                .or_else(|| operands.get(&b).cloned())
        });
        let base = role.unwrap_or_else(|| names::snake(&graph.values[b].name));
        buf_consts[b] = Some(ident(&buf_names.unique(base.to_uppercase())));
    }
    for (v, s) in plan.storage.iter().enumerate() {
        if let (Some(Storage::Arena { .. }), None) = (s, &buf_consts[v]) {
            buf_consts[v] = buf_consts[plan.root[v]].clone();
        }
    }
    let syms = Symbols {
        weight_fields,
        buf_consts,
    };
    let low = Lowerer {
        graph,
        plan: &plan,
        syms: &syms,
        seq: seq.as_ref().ok(),
        profile_ids: profile::ids(graph, seq.as_ref().ok(), &plan),
        uses: graph.use_counts(),
        step: None,
        kv: opts.kv_format,
    };
    let batching = batch::analyze(graph, &seq, &plan);
    // A narrow attention cache mirrors the cache block the batched steps keep per sequence.
    let (narrow_kv, kv_block) = match (&batching, &seq) {
        _ if opts.kv_format == gpt2rt::kv::KvFormat::F32 => (None, 1),
        (Ok(b), Ok(s)) => {
            let block =
                batch::check_kv_format(graph, &plan, b, s, opts.kv_format).map_err(|e| {
                    Error::Invalid(format!(
                        "the attention cache cannot be stored as {}: {e}",
                        opts.kv_format.name()
                    ))
                })?;
            (Some((b, s)), block)
        }
        (Err(e), _) | (_, Err(e)) => {
            return Err(Error::Invalid(format!(
                "the attention cache cannot be stored as {}: it needs the cache block batched \
                 steps use, and {e}",
                opts.kv_format.name()
            )))
        }
    };

    // The weight blob.
    crate::progress::stage("writing weights", Some(plan.blob_bytes as u64));
    let (symbol, weights_file) = write_blob(
        &plan,
        weights_dir,
        |hash| weight_symbol(opts, hash),
        opts.machine,
    )?;
    crate::progress::stage("codegen", None);

    // Forward pass statements.
    let mut stmts = Vec::new();
    let mut init_stmts: Vec<TokenStream> = Vec::new();
    let mut layer = None;
    let mut count = 0;
    for &i in &graph.inputs {
        let (name, b) = (
            ident(&names::snake(&graph.values[i].name)),
            syms.buf_consts[i].clone().expect("input buffer"),
        );
        let arena = if low_elem(&plan, i) == Elem::F32 {
            quote!(f32s)
        } else {
            quote!(i64s)
        };
        stmts.push(comment(&format!(
            "input '{}' {}",
            graph.values[i].name,
            type_str(graph, i)
        )));
        match seq.as_ref().ok().and_then(|s| s.axis[i]) {
            Some(a) => {
                let st = Literal::usize_unsuffixed(
                    crate::ops::strides(
                        &graph.values[i]
                            .ty
                            .as_ref()
                            .and_then(|t| t.static_shape())
                            .unwrap_or_default(),
                    )[a],
                );
                stmts.push(
                    quote!(#arena[buf::#b][p0 * #st..(p0 + n) * #st].copy_from_slice(#name);),
                );
            }
            None => stmts.push(quote!(#arena[buf::#b].copy_from_slice(#name);)),
        }
    }
    for (index, node) in graph.nodes.iter().enumerate() {
        let l = names::layer_of(&node.name);
        if l != layer {
            stmts.push(comment(&match l {
                Some(n) => format!("======== layer {n} ========"),
                None => "========".to_string(),
            }));
        }
        layer = l;
        let ins: Vec<String> = node
            .inputs
            .iter()
            .flatten()
            .map(|&i| match &plan.storage[i] {
                Some(Storage::Weight(k)) => format!("w.{}", syms.weight_fields[*k]),
                _ if graph.values[i].konst.is_some() => "const".into(),
                _ => type_str(graph, i),
            })
            .collect();
        let outs: Vec<String> = node.outputs.iter().map(|&o| type_str(graph, o)).collect();
        let body = low.lower(index)?;
        let what = match (&node.op, body.is_empty()) {
            (_, false) => "",
            (crate::ops::Op::Concat { .. }, true) => " (in place: its inputs were written into it)",
            _ => " (a view: no code)",
        };
        // Weights-only nodes run once, in `Model::new`.
        let target = if seq.as_ref().is_ok_and(|s| s.init[index]) {
            &mut init_stmts
        } else {
            &mut stmts
        };
        target.push(comment(&format!("{} {}{what}", node.op.name(), node.name)));
        target.push(comment(&format!(
            "  {} <- {}",
            outs.join(", "),
            ins.join(", ")
        )));
        if !body.is_empty() {
            count += 1;
        }
        target.push(body);
        if let Some((b, s)) = narrow_kv {
            target.push(batch::store_rows(&low, b, s, index));
        }
    }

    // The batched step: the same statements over the rows of several sequences.
    let step_stmts = match &batching {
        Ok(b) => Some(step_statements(graph, &low, b)?),
        Err(_) => None,
    };

    let profile_table = profile::table(graph, seq.as_ref().ok(), &low.profile_ids);
    let tokens = module_tokens(
        graph,
        opts,
        (&plan, &symbol),
        &syms,
        &seq,
        stmts,
        init_stmts,
        profile_table,
        (&batching, step_stmts, kv_block),
    )?;
    let file: syn::File = syn::parse2(tokens).map_err(|e| {
        Error::Invalid(format!(
            "internal error: generated code does not parse: {e}"
        ))
    })?;
    let pretty = prettyplease::unparse(&file);
    let mut out = header(graph, opts, &plan);
    restore_comments(&pretty, &mut out);
    let summary = Summary {
        source_lines: out.lines().count(),
        weight_bytes: plan.blob_bytes,
        weights_file,
        weights: plan.weights.len(),
        arena_f32: plan.arena_f32,
        arena_i64: plan.arena_i64,
        statements: count,
    };
    Ok((out, summary))
}

/// The statements of `forward_batch`: every node but the init ones, lowered for a batched
/// step (`batch`), with the compaction of the logits-only rows before the first of them.
fn step_statements(
    graph: &Graph,
    low: &lower::Lowerer,
    b: &batch::Batching,
) -> Result<Vec<TokenStream>> {
    let step = lower::Lowerer {
        step: Some(b),
        profile_ids: low.profile_ids.clone(),
        uses: low.uses.clone(),
        ..*low
    };
    let seq = low.seq.expect("batching needs the sequence analysis");
    let mut stmts = Vec::new();
    let mut layer = None;
    for (index, node) in graph.nodes.iter().enumerate() {
        if seq.init[index] {
            continue;
        }
        if b.first_tail == Some(index) {
            stmts.push(batch::compaction(low, b));
        }
        let body = step.lower(index)?;
        if body.is_empty() {
            continue;
        }
        let l = names::layer_of(&node.name);
        if l != layer && l.is_some() {
            stmts.push(comment(&format!(
                "======== layer {} ========",
                l.unwrap_or(0)
            )));
        }
        layer = l;
        stmts.push(comment(&format!("{} {}", node.op.name(), node.name)));
        stmts.push(body);
    }
    Ok(stmts)
}

fn low_elem(plan: &plan::Plan, v: usize) -> Elem {
    match &plan.storage[v] {
        Some(Storage::Arena { elem, .. }) => *elem,
        Some(Storage::Weight(k)) => plan.weights[*k].elem,
        None => Elem::F32,
    }
}

fn header(graph: &Graph, opts: &Options, plan: &plan::Plan) -> String {
    let mut h = String::new();
    h.push_str(&format!(
        "// @generated by gpt2c {} — do not edit; regenerate with `cargo build`.\n",
        env!("CARGO_PKG_VERSION")
    ));
    h.push_str(&format!(
        "// model:   {} (sha256 {})\n",
        opts.model_name, opts.model_sha256
    ));
    h.push_str(&format!(
        "// graph:   ONNX IR {}, opset {}, producer '{}'\n",
        graph.meta.ir_version, graph.meta.opset, graph.meta.producer
    ));
    if let Some(c) = &opts.gpt2 {
        h.push_str(&format!("// config:  {c}\n"));
    }
    h.push_str(&format!("// options: {}\n", opts.options));
    let tables: Vec<String> = plan
        .weights
        .iter()
        .filter(|w| w.table && w.format == layout::WeightFormat::F16)
        .map(|w| {
            format!(
                "{} {}",
                graph.values[w.value].name,
                type_str(graph, w.value)
            )
        })
        .collect();
    if !tables.is_empty() {
        h.push_str(&format!(
            "// tables:  stored as f16, widened where read: {}\n",
            tables.join(", ")
        ));
    }
    h.push_str(&format!(
        "// memory:  {} weights in {} bytes; arenas of {} f32 and {} i64 elements\n\n",
        plan.weights.len(),
        plan.blob_bytes,
        plan.arena_f32,
        plan.arena_i64
    ));
    h
}

/// The blob's symbol: named by model, formats and disabled passes, so one binary may link
/// several compiled models, and by the blob's contents (`BlobHash`: what makes a changed blob
/// link again).
fn weight_symbol(opts: &Options, blob_hash: u64) -> String {
    let mut format_suffix = match opts.weight_format {
        layout::WeightFormat::F32 => String::new(),
        f => format!("_{}", f.name()),
    };
    if opts.kv_format != gpt2rt::kv::KvFormat::F32 {
        format_suffix += &format!("_kv_{}", opts.kv_format.name());
    }
    let passes_suffix: String = opts
        .disabled_passes
        .iter()
        .map(|p| format!("_without_{}", p.replace('-', "_")))
        .chain(opts.fold_budget.map(|b| format!("_folding_{b}")))
        .collect();
    format!(
        "gpt2c_weights_{}{format_suffix}{passes_suffix}_{blob_hash:016x}",
        &opts.model_sha256[..16.min(opts.model_sha256.len())]
    )
}

/// Writes the weight blob as an ELF object (`object`) in `dir`, named after its symbol,
/// which `symbol_of` makes from the hash of the blob's bytes (see `BlobHash`); returns the
/// symbol and the file. Removing objects an earlier build left is the caller's business (it
/// knows what else the folder holds: `Builder`, `emit`).
fn write_blob(
    plan: &plan::Plan,
    dir: &Path,
    symbol_of: impl FnOnce(u64) -> String,
    machine: object::Machine,
) -> Result<(String, std::path::PathBuf)> {
    // A name of its own until the symbol is known: builds may share a folder.
    static PARTIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let partial = dir.join(format!(
        ".gpt2c-weights-{}-{}.partial",
        std::process::id(),
        PARTIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let path = partial.as_path();
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    object::begin(&mut w).map_err(io)?;
    // Offsets from here on are the blob's own.
    let mut at = 0;
    let mut hash = BlobHash::default();
    let mut write = |w: &mut std::io::BufWriter<std::fs::File>, offset: usize, bytes: &[u8]| {
        let pad = vec![0u8; offset - at];
        w.write_all(&pad).map_err(io)?;
        w.write_all(bytes).map_err(io)?;
        hash.update(&pad);
        hash.update(bytes);
        let pad = pad.len();
        crate::progress::advance((pad + bytes.len()) as u64);
        at = offset + bytes.len();
        Ok::<(), Error>(())
    };
    for wt in &plan.weights {
        match (wt.layout, wt.panels) {
            (plan::WeightLayout::Plain, _) | (_, None)
                if wt.table && wt.format == layout::WeightFormat::F16 =>
            {
                let values = wt.tensor.to_vec::<f32>().map_err(|e| Error::Invalid(e.0))?;
                let (bytes, _) = wt.format.encode_panels(&values, 1);
                write(&mut w, wt.offset, &bytes)?
            }
            (plan::WeightLayout::Plain, _) | (_, None) => {
                write(&mut w, wt.offset, wt.tensor.bytes())?
            }
            (layout, Some([k, _])) => {
                // At most two copies of one matrix at a time: the panels (read straight
                // from the tensor's bytes), then their encoding once the panels are dropped.
                let panels = if layout == plan::WeightLayout::Panels {
                    layout::pack_panels(&wt.tensor)
                } else {
                    layout::pack_panels_of_transpose(&wt.tensor)
                };
                let (bytes, scales) = wt.format.encode_panels(&panels, k);
                drop(panels);
                write(&mut w, wt.offset, &bytes)?;
                if let Some(off) = wt.scales_offset {
                    write(&mut w, off, &scales)?;
                }
            }
        }
        // The last read of this weight: its pages of the model file can go.
        wt.tensor.release_pages();
    }
    write(&mut w, plan.blob_bytes, &[])?;
    let symbol = symbol_of(hash.finish());
    object::finish(&mut w, machine, &symbol, plan.blob_bytes as u64).map_err(io)?;
    w.flush().map_err(io)?;
    drop(w);
    let (script, text) = object::STATIC_END_SCRIPT;
    let script = dir.join(script);
    std::fs::write(&script, text).map_err(|source| Error::Io {
        path: script.display().to_string(),
        source,
    })?;
    let file = dir.join(object::file_name(&symbol));
    std::fs::rename(path, &file).map_err(io)?;
    Ok((symbol, file))
}

/// A fast 64-bit hash of the weight blob (FNV-1a over little-endian words, then a final
/// mix), written into the blob's symbol name. The blob enters the binary through the
/// linker, which rustc does not track: when the weights change but the code does not
/// (another rounding of the same model), the new symbol changes the generated code, so the
/// crate builds and links again and a stale object fails to link instead of being used.
/// Not a checksum against tampering.
#[derive(Default)]
struct BlobHash {
    state: u64,
    /// Bytes not yet hashed (fewer than 8), carried into the next `update`.
    tail: Vec<u8>,
    len: u64,
}

impl BlobHash {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn word(&mut self, w: u64) {
        self.state = (self.state ^ w).wrapping_mul(Self::PRIME);
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.tail.is_empty() {
            let take = (8 - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() < 8 {
                return;
            }
            let w = u64::from_le_bytes(self.tail[..8].try_into().expect("8 bytes"));
            self.word(w);
            self.tail.clear();
        }
        let mut words = bytes.chunks_exact(8);
        for c in &mut words {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        self.tail.extend_from_slice(words.remainder());
    }

    fn finish(mut self) -> u64 {
        let mut last = [0u8; 8];
        last[..self.tail.len()].copy_from_slice(&self.tail);
        self.word(u64::from_le_bytes(last) ^ self.len.rotate_left(32));
        // A final avalanche (murmur3's fmix64), so nearby states give unrelated names.
        let mut h = self.state;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

fn dtype_tokens(e: Elem) -> TokenStream {
    match e {
        Elem::F32 => quote!(DType::F32),
        Elem::I64 => quote!(DType::I64),
    }
}

/// `graph` with every weight the generated code stores in panels (`plan::weight_layout`)
/// rounded to `format` and widened back: the model the generated code computes, for the
/// reference interpreter to check it against and to measure what a format costs. For q8,
/// q4 and bf16, the inputs of those weights' Linears are also rounded as their kernels
/// round them (`RoundRows` nodes); for q4, the tables stored as f16 (`plan::narrow_table`)
/// are rounded to f16.
pub fn narrowed(graph: &Graph, format: layout::WeightFormat) -> Graph {
    let mut g = graph.clone();
    if format == layout::WeightFormat::F32 {
        return g;
    }
    for v in 0..g.values.len() {
        let layout = plan::weight_layout(graph, v);
        if format.narrows_tables() && plan::narrow_table(graph, v) {
            let t = g.values[v].konst.as_ref().expect("a table is a constant");
            let mut values = t.to_vec::<f32>().expect("tables are f32");
            layout::WeightFormat::F16.round_trip(&mut values, 1, 1, false);
            g.values[v].konst = Some(crate::ir::Tensor::from_vec(t.shape().to_vec(), values));
            continue;
        }
        if layout == plan::WeightLayout::Plain {
            continue;
        }
        if let Some(t) = &g.values[v].konst {
            let (rows, cols) = (t.shape()[0], t.shape()[1]);
            let mut values = t.to_vec::<f32>().expect("panel weights are f32");
            // A tied table is stored transposed: its rows are the panel columns.
            let per_row = layout == plan::WeightLayout::PanelsOfTranspose;
            format.round_trip(&mut values, rows, cols, per_row);
            g.values[v].konst = Some(crate::ir::Tensor::from_vec(t.shape().to_vec(), values));
        }
    }
    if let Some(r) = format.input_rounding() {
        round_linear_inputs(&mut g, r);
    }
    g
}

/// The model whose attention reads its keys and values rounded to the cache format `kv`:
/// a `RoundRows` before each Attention's keys and values (the presents keep the f32
/// values), exactly what generated code with that `GPT2_KV` computes.
pub fn kv_rounded(graph: &Graph, kv: gpt2rt::kv::KvFormat) -> Graph {
    use crate::ops::fused::RowRounding;
    use crate::ops::Op;
    use gpt2rt::kv::KvFormat;
    let mut g = graph.clone();
    let attentions: Vec<usize> = (0..g.nodes.len())
        .filter(|&i| matches!(g.nodes[i].op, Op::Attention(_)))
        .collect();
    // From the back, so the indices still to visit do not move.
    for &i in attentions.iter().rev() {
        let Op::Attention(at) = &g.nodes[i].op else {
            continue;
        };
        let rounding = match kv {
            KvFormat::F32 => return g,
            KvFormat::F16 => RowRounding::F16,
            KvFormat::Bf16 => RowRounding::Bf16,
            KvFormat::Q8 => RowRounding::Int8 {
                block: gpt2rt::kv::q8_block(at.head_dim),
            },
        };
        // The attention node moves down as the roundings go in before it.
        let mut at = i;
        for (k, what) in [(1, "keys"), (2, "values")] {
            let name = format!("{}/RoundCache_{what}", g.nodes[at].name);
            if round_input(&mut g, at, k, rounding, name) {
                at += 1;
            }
        }
    }
    g
}

/// Puts a `RoundRows` node before each Linear whose weight is stored in panels (read
/// directly, or through the tied transposed view).
fn round_linear_inputs(g: &mut Graph, rounding: crate::ops::fused::RowRounding) {
    use crate::ops::Op;
    let producers = g.producers();
    let in_panels = |w: crate::ir::ValueId| {
        let source = match producers.get(&w).map(|&i| &g.nodes[i]) {
            Some(n) => plan::transposed_weight(g, n),
            None => Some(w),
        };
        source.is_some_and(|s| plan::weight_layout(g, s) != plan::WeightLayout::Plain)
    };
    let linears: Vec<usize> = (0..g.nodes.len())
        .filter(|&i| {
            let n = &g.nodes[i];
            matches!(n.op, Op::Linear { .. }) && n.inputs[1].is_some_and(in_panels)
        })
        .collect();
    // From the back, so the indices still to visit do not move.
    for &i in linears.iter().rev() {
        let name = format!("{}/RoundRows", g.nodes[i].name);
        round_input(g, i, 0, rounding, name);
    }
}

/// Puts a `RoundRows` named `name` between input `slot` of node `i` and its value, just
/// before the node (which moves to `i + 1`). Returns whether the input was there.
fn round_input(
    g: &mut Graph,
    i: usize,
    slot: usize,
    rounding: crate::ops::fused::RowRounding,
    name: String,
) -> bool {
    let Some(x) = g.nodes[i].inputs.get(slot).copied().flatten() else {
        return false;
    };
    let ty = g.values[x].ty.clone();
    let xq = g.add_value(name.clone(), ty);
    g.nodes[i].inputs[slot] = Some(xq);
    let node = crate::ir::Node {
        name,
        op: crate::ops::Op::RoundRows(rounding),
        inputs: vec![Some(x)],
        outputs: vec![xq],
    };
    g.nodes.insert(i, node);
    true
}

/// Values whose buffers must keep their contents between calls: with rows computed call by
/// call, the cache, the outputs (presents, logits) and what weights-only nodes computed.
pub fn persistent(graph: &Graph, seq: &std::result::Result<SeqInfo, String>) -> Vec<usize> {
    match seq {
        Ok(s) => s
            .cache
            .iter()
            .chain(&graph.outputs)
            .copied()
            .chain(
                graph
                    .nodes
                    .iter()
                    .zip(&s.init)
                    .filter(|(_, &i)| i)
                    .flat_map(|(n, _)| n.outputs.clone()),
            )
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The sequence analysis for a graph with one input whose last axis is the sequence.
pub fn sequence_info(graph: &Graph) -> std::result::Result<SeqInfo, String> {
    let [input] = graph.inputs[..] else {
        return Err("the graph does not have exactly one input".into());
    };
    let shape = graph.values[input]
        .ty
        .as_ref()
        .and_then(|t| t.static_shape())
        .unwrap_or_default();
    if shape.is_empty() {
        return Err("the input is a scalar".into());
    }
    let axis = shape.len() - 1;
    if !crate::sequence::rows_contiguous(graph, input, axis) {
        return Err("the input's rows are not contiguous".into());
    }
    crate::sequence::analyze(graph, input, axis)
}

#[allow(clippy::too_many_arguments)]
fn module_tokens(
    graph: &Graph,
    opts: &Options,
    (plan, symbol): (&plan::Plan, &str),
    syms: &Symbols,
    seq: &std::result::Result<SeqInfo, String>,
    stmts: Vec<TokenStream>,
    init_stmts: Vec<TokenStream>,
    profile_table: TokenStream,
    (batching, step_stmts, kv_block): (
        &std::result::Result<batch::Batching, String>,
        Option<Vec<TokenStream>>,
        usize,
    ),
) -> Result<TokenStream> {
    let info = |v: usize| {
        let name = Literal::string(&graph.values[v].name);
        let shape = graph.values[v]
            .ty
            .as_ref()
            .and_then(|t| t.static_shape())
            .unwrap_or_default();
        let dims = shape.iter().map(|&d| Literal::usize_unsuffixed(d));
        let dt = dtype_tokens(low_elem(plan, v));
        quote!(TensorInfo { name: #name, dtype: #dt, shape: &[#(#dims),*] })
    };
    let inputs: Vec<TokenStream> = graph.inputs.iter().map(|&i| info(i)).collect();
    let outputs: Vec<TokenStream> = graph.outputs.iter().map(|&o| info(o)).collect();
    let gpt2 = match &opts.gpt2 {
        Some(c) => {
            let (a, b, cc, d, e) = (
                Literal::usize_unsuffixed(c.n_layer),
                Literal::usize_unsuffixed(c.n_head),
                Literal::usize_unsuffixed(c.n_embd),
                Literal::usize_unsuffixed(c.vocab),
                Literal::usize_unsuffixed(c.n_ctx),
            );
            quote!(Some(Gpt2Config { n_layer: #a, n_head: #b, n_embd: #cc, vocab: #d, n_ctx: #e }))
        }
        None => quote!(None),
    };

    // Weights: fields, documented with their ONNX name and type.
    let mut fields = Vec::new();
    let mut inits = Vec::new();
    for (k, w) in plan.weights.iter().enumerate() {
        let f = &syms.weight_fields[k];
        let mut doc = format!(
            " `{}` `{}`",
            graph.values[w.value].name,
            type_str(graph, w.value)
        );
        if let Some([k, n]) = w.panels {
            let p = layout::PANEL;
            let t = if w.layout == plan::WeightLayout::PanelsOfTranspose {
                " transposed"
            } else {
                ""
            };
            doc += &format!(
                ", stored{t} as {} column panels of {k} x {p}",
                n.div_ceil(p)
            );
        }
        let (t, off, len) = (
            match (w.elem, w.format) {
                (Elem::F32, layout::WeightFormat::F32) => quote!(f32),
                (Elem::F32, layout::WeightFormat::Bf16) => quote!(gpt2rt::elem::Bf16),
                (Elem::F32, layout::WeightFormat::F16) => quote!(gpt2rt::elem::F16),
                (Elem::F32, layout::WeightFormat::Q8) => quote!(gpt2rt::elem::Q8),
                (Elem::F32, layout::WeightFormat::Q4) => quote!(gpt2rt::elem::Q4),
                (Elem::I64, _) => quote!(i64),
            },
            Literal::usize_unsuffixed(w.offset),
            Literal::usize_unsuffixed(w.len),
        );
        fields.push(quote!(#[doc = #doc] pub #f: &'static [#t],));
        inits.push(quote!(#f: view(blob, #off, #len),));
        let scales = w.panels.and_then(|[k, n]| w.format.scales(k, n));
        if let (Some(so), Some((count, ty))) = (w.scales_offset, scales) {
            let sf = quote::format_ident!("{}_scales", f);
            let (so, sn) = (
                Literal::usize_unsuffixed(so),
                Literal::usize_unsuffixed(count),
            );
            let (doc, st) = if ty == "u8" {
                (
                    format!(
                        " The scales of `{f}`'s panels, per panel the f32 unit of each column, then the int8 scale of each block of {} rows of each column.",
                        gpt2rt::q4::BLOCK
                    ),
                    quote!(u8),
                )
            } else {
                (
                    format!(" The int8 scale of each column of `{f}`'s panels."),
                    quote!(f32),
                )
            };
            fields.push(quote!(#[doc = #doc] pub #sf: &'static [#st],));
            inits.push(quote!(#sf: view(blob, #so, #sn),));
        }
    }

    // Buffer ranges.
    let mut bufs = Vec::new();
    for &b in &plan.buffers {
        if let (Some(name), Some(Storage::Arena { elem, offset, len })) =
            (&syms.buf_consts[b], &plan.storage[b])
        {
            let doc = format!(
                " `{}` `{}` ({})",
                graph.values[b].name,
                type_str(graph, b),
                if *elem == Elem::F32 {
                    "f32 arena"
                } else {
                    "i64 arena"
                }
            );
            let (s, e) = (
                Literal::usize_unsuffixed(*offset),
                Literal::usize_unsuffixed(offset + len),
            );
            bufs.push(quote!(#[doc = #doc] pub const #name: Range<usize> = #s..#e;));
        }
    }

    // Typed forward arguments and the generic `run`.
    let mut args = Vec::new();
    let mut checks = Vec::new();
    let mut run_args = Vec::new();
    for (k, &i) in graph.inputs.iter().enumerate() {
        let name = ident(&names::snake(&graph.values[i].name));
        let t = if low_elem(plan, i) == Elem::F32 {
            quote!(f32)
        } else {
            quote!(i64)
        };
        let variant = if low_elem(plan, i) == Elem::F32 {
            quote!(TensorRef::F32)
        } else {
            quote!(TensorRef::I64)
        };
        let kl = Literal::usize_unsuffixed(k);
        args.push(quote!(#name: &[#t]));
        let label = Literal::string(&graph.values[i].name);
        checks.push(quote! {
            if #name.len() != INPUTS[#kl].numel() {
                return Err(format!("input '{}' needs {} elements, got {}", #label, INPUTS[#kl].numel(), #name.len()));
            }
        });
        run_args.push(quote! {
            match inputs[#kl] {
                #variant(x) => x,
                other => return Err(format!("input '{}' must be {:?}, got {:?}", #label, INPUTS[#kl].dtype, other.dtype())),
            }
        });
    }
    let mut out_arms = Vec::new();
    for (k, &o) in graph.outputs.iter().enumerate() {
        let kl = Literal::usize_unsuffixed(k);
        let variant = if low_elem(plan, o) == Elem::F32 {
            quote!(TensorRef::F32)
        } else {
            quote!(TensorRef::I64)
        };
        let expr = match &plan.storage[o] {
            Some(Storage::Weight(w)) => {
                let f = &syms.weight_fields[*w];
                quote!(self.w.#f)
            }
            Some(Storage::Arena { elem, .. }) => {
                let b = syms.buf_consts[o].as_ref().expect("output buffer");
                match elem {
                    Elem::F32 => quote!(&self.f32s[buf::#b]),
                    Elem::I64 => quote!(&self.i64s[buf::#b]),
                }
            }
            None => return Err(Error::Invalid("an output has no storage".into())),
        };
        out_arms.push(quote!(#kl => Some(#variant(#expr)),));
    }
    let n_inputs = Literal::usize_unsuffixed(graph.inputs.len());
    let (af, ai, wb) = (
        Literal::usize_unsuffixed(plan.arena_f32),
        Literal::usize_unsuffixed(plan.arena_i64),
        Literal::usize_unsuffixed(plan.blob_bytes),
    );
    // The generated code names the object for the linker by its file name (found through the
    // build script's `cargo:rustc-link-search`).
    let object_file = object::file_name(symbol);
    let address = Literal::string(&object::address_symbol(symbol));
    let slash_file = Literal::string(&format!("/{object_file}"));
    let path = match &opts.weights_path {
        WeightsPath::OutDir => quote!(concat!(env!("OUT_DIR"), #slash_file)),
        WeightsPath::ManifestDir => quote!(concat!(env!("CARGO_MANIFEST_DIR"), #slash_file)),
        WeightsPath::Absolute(dir) => {
            let p = Literal::string(&format!("{dir}/{object_file}"));
            quote!(#p)
        }
    };
    let object_file = Literal::string(&object_file);
    let input_names: Vec<TokenStream> = graph
        .inputs
        .iter()
        .map(|&i| {
            let n = ident(&names::snake(&graph.values[i].name));
            quote!(#n)
        })
        .collect();

    // With the sequence analysis, the one input (its rows along its last axis): its name
    // and the values in a row.
    let seq_input = seq.as_ref().ok().map(|_| {
        let v = graph.inputs[0];
        let shape = graph.values[v]
            .ty
            .as_ref()
            .and_then(|t| t.static_shape())
            .unwrap_or_default();
        (
            ident(&names::snake(&graph.values[v].name)),
            Literal::usize_unsuffixed(crate::ops::strides(&shape)[shape.len() - 1]),
        )
    });
    // A narrow attention cache: the model's own (`forward_rows` rounds into it, attention
    // reads it), beside the arena whose f32 cache block stays the presents.
    let narrow = opts.kv_format != gpt2rt::kv::KvFormat::F32;
    let (kv_field, kv_init, fields_rows, fields_other) = if narrow {
        (
            quote! {
                /// The attention cache attention reads, in `KV_FORMAT` (laid out as the
                /// arena's first `CACHE_LEN` values, which keep the f32 presents).
                kv: gpt2rt::kv::KvCache,
            },
            quote!(kv: gpt2rt::kv::KvCache::new(KV_FORMAT, CACHE_LEN, KV_BLOCK),),
            quote!(Model { w, f32s, i64s, kv }),
            quote!(Model { w, f32s, i64s, .. }),
        )
    } else {
        let f = quote!(Model { w, f32s, i64s });
        (TokenStream::new(), TokenStream::new(), f.clone(), f)
    };
    let kv_format = match opts.kv_format {
        gpt2rt::kv::KvFormat::F32 => quote!(F32),
        gpt2rt::kv::KvFormat::F16 => quote!(F16),
        gpt2rt::kv::KvFormat::Bf16 => quote!(Bf16),
        gpt2rt::kv::KvFormat::Q8 => quote!(Q8),
    };
    let kv_block = Literal::usize_unsuffixed(kv_block);
    let forward_batch = match (step_stmts, &seq_input) {
        (Some(step), Some((name, row))) => {
            let b = syms.buf_consts[graph.inputs[0]]
                .clone()
                .expect("input buffer");
            quote! {
                /// One step over several sequences (`gpt2rt::batch`): the rows of each segment,
                /// their ids stacked in `input1`, against the cache `caches[segment.cache]`
                /// (`CACHE_LEN` values in `KV_FORMAT`, laid out as the start of the f32 arena),
                /// which holds the sequence's rows `0..segment.pos` and receives the new ones.
                /// Then the logits' row `i` is the last row of segment `i` with `last_only`, else
                /// the logits hold every row of the stack. Overwrites the cache rows
                /// `forward_rows` keeps.
                #[allow(unused_variables)]
                pub fn forward_batch(&mut self, #name: &[i64], segments: &[batch::Segment], caches: &mut [KvCache], last_only: bool) -> Result<(), String> {
                    let n = batch::check(#name.len(), #row, segments, caches, CACHE_LEN, SEQ_LEN, KV_FORMAT)?;
                    let rows = (0, n);
                    let tail_rows = if last_only { (0, segments.len()) } else { rows };
                    let #fields_other = self;
                    let (w, f32s, i64s) = (&*w, &mut f32s[..], &mut i64s[..]);
                    i64s[buf::#b][..n * #row].copy_from_slice(#name);
                    #(#step)*
                    Ok(())
                }
            }
        }
        _ => TokenStream::new(),
    };
    let forward = match &seq_input {
        Some((name, row)) => {
            let input = &args[0];
            quote! {
                /// Computes rows `p0..p0 + n` of the sequence from the `n` rows of input
                /// given, reading the attention cache of rows `0..p0` left by earlier calls.
                /// With `last_only`, the ops that feed only the logits compute the last row.
                #[allow(unused_variables)]
                pub fn forward_rows(&mut self, #input, p0: usize, last_only: bool) -> Result<(), String> {
                    if #name.is_empty() || #name.len() % #row != 0 {
                        return Err(format!("forward_rows needs a whole number of rows, got {} values", #name.len()));
                    }
                    let n = #name.len() / #row;
                    if p0 + n > SEQ_LEN {
                        return Err(format!("rows {}..{} are beyond the sequence length {}", p0, p0 + n, SEQ_LEN));
                    }
                    let rows = (p0, n);
                    let tail_rows = if last_only { (p0 + n - 1, 1) } else { rows };
                    let #fields_rows = self;
                    let (w, f32s, i64s) = (&*w, &mut f32s[..], &mut i64s[..]);
                    #(#stmts)*
                    Ok(())
                }

                /// Runs the whole graph on inputs of the static shapes in `INPUTS`.
                pub fn forward(&mut self, #(#args),*) -> Result<(), String> {
                    #(#checks)*
                    self.forward_rows(#name, 0, false)
                }

                #forward_batch
            }
        }
        None => quote! {
            /// Not available for this graph (see `SEQUENCE`): always an error.
            pub fn forward_rows(&mut self, #(#args,)* p0: usize, last_only: bool) -> Result<(), String> {
                Err(format!("this model cannot compute rows separately: {}", SEQUENCE))
            }

            /// Runs the whole graph on inputs of the static shapes in `INPUTS`.
            #[allow(unused_variables)]
            pub fn forward(&mut self, #(#args),*) -> Result<(), String> {
                #(#checks)*
                let #fields_other = self;
                let (w, f32s, i64s) = (&*w, &mut f32s[..], &mut i64s[..]);
                #(#stmts)*
                Ok(())
            }
        },
    };
    // The runtime's GPT-2 interface, for a GPT-2 graph with its one token input.
    let batch_call = match batching {
        Ok(_) => quote!(Model::forward_batch(self, ids, segments, caches, last_only)),
        Err(_) => quote!(Err(format!(
            "this model cannot run sequences together: {}",
            BATCHING.err().unwrap_or_default()
        ))),
    };
    let gpt2_impl = match (&opts.gpt2, &args[..]) {
        (Some(_), [_]) => quote! {
            impl gpt2rt::Gpt2Model for Model {
                fn create() -> Model {
                    Model::new()
                }
                fn config(&self) -> Gpt2Config {
                    GPT2.expect("a GPT-2 graph")
                }
                fn context(&self) -> usize {
                    INPUTS[0].numel()
                }
                fn incremental(&self) -> bool {
                    INCREMENTAL
                }
                fn forward_rows(&mut self, ids: &[i64], p0: usize, last_only: bool) -> Result<(), String> {
                    if INCREMENTAL {
                        Model::forward_rows(self, ids, p0, last_only)
                    } else if p0 == 0 {
                        self.forward(ids)
                    } else {
                        Err(format!("this model cannot compute rows separately: {}", SEQUENCE))
                    }
                }
                fn cache_len(&self) -> usize {
                    CACHE_LEN
                }
                fn batching(&self) -> Result<(), String> {
                    BATCHING.map_err(String::from)
                }
                fn kv_format(&self) -> gpt2rt::kv::KvFormat {
                    KV_FORMAT
                }
                fn kv_block(&self) -> usize {
                    KV_BLOCK
                }
                fn forward_batch(&mut self, ids: &[i64], segments: &[gpt2rt::batch::Segment], caches: &mut [KvCache], last_only: bool) -> Result<(), String> {
                    #batch_call
                }
                fn logits(&self) -> &[f32] {
                    match self.output(0) {
                        Some(TensorRef::F32(x)) => x,
                        _ => &[],
                    }
                }
            }
        },
        _ => TokenStream::new(),
    };
    let (incremental, seq_len, seq_note) = match seq {
        Ok(i) => (
            true,
            i.len,
            format!("rows run separately: {} cached tensors", i.cache.len()),
        ),
        Err(e) => (false, 0, e.clone()),
    };
    let seq_len = Literal::usize_unsuffixed(seq_len);
    let (batching_const, cache_len) = match batching {
        Ok(b) => (quote!(Ok(())), Literal::usize_unsuffixed(b.cache_len)),
        Err(e) => {
            let e = Literal::string(e);
            (quote!(Err(#e)), Literal::usize_unsuffixed(0))
        }
    };
    let seq_note = Literal::string(&seq_note);
    let panel = Literal::usize_unsuffixed(layout::PANEL);
    let wfmt = opts.weight_format.name();
    let f16_tables: Vec<Literal> = plan
        .weights
        .iter()
        .filter(|w| w.table && w.format == layout::WeightFormat::F16)
        .map(|w| Literal::string(&graph.values[w.value].name))
        .collect();
    Ok(quote! {
        /// Whether the sequence analysis succeeded: then `forward_rows` computes a few rows at
        /// a time against the attention cache (prefill and one-token steps).
        pub const INCREMENTAL: bool = #incremental;
        /// Length of the sequence axis (0 without the analysis).
        pub const SEQ_LEN: usize = #seq_len;
        /// What the sequence analysis found.
        pub const SEQUENCE: &str = #seq_note;
        /// Whether rows of several sequences can run in one step (`forward_batch`), and why
        /// not when they cannot.
        pub const BATCHING: Result<(), &str> = #batching_const;
        /// Values of one sequence's attention cache in `forward_batch` (0 without it).
        pub const CACHE_LEN: usize = #cache_len;
        /// How the attention cache stores keys and values (`GPT2_KV`).
        pub const KV_FORMAT: KvFormat = KvFormat::#kv_format;
        /// Values per scale of a q8 attention cache (1 otherwise).
        pub const KV_BLOCK: usize = #kv_block;

        use gpt2rt::arena;
        use gpt2rt::batch;
        use gpt2rt::io::{DType, Gpt2Config, TensorInfo, TensorRef};
        use gpt2rt::kernels::{self, Activation, Layout};
        use gpt2rt::kv::{KvCache, KvFormat};
        use gpt2rt::profile;
        use gpt2rt::weights::view;
        use std::ops::Range;

        // Linear weights are stored in column panels as wide as the runtime's kernel.
        const _: () = assert!(gpt2rt::gemm::NR == #panel, "weight panels do not match the runtime");

        /// The graph inputs, with the static shapes the model was specialized to.
        pub const INPUTS: &[TensorInfo] = &[#(#inputs),*];
        /// The graph outputs, in ONNX order.
        pub const OUTPUTS: &[TensorInfo] = &[#(#outputs),*];
        #profile_table
        /// The GPT-2 configuration read from the graph, if it is one.
        pub const GPT2: Option<Gpt2Config> = #gpt2;
        /// Bytes of the embedded weight blob.
        pub const WEIGHT_BYTES: usize = #wb;
        /// How the Linear (matrix) weights are stored: f32, bf16, f16, q8 or q4.
        pub const WEIGHT_FORMAT: &str = #wfmt;
        /// Tables stored as f16 (constants read only by elementwise arithmetic and row
        /// gathers, like the position embeddings; q4 stores them narrower): ONNX names.
        pub const F16_TABLES: &[&str] = &[#(#f16_tables),*];
        /// Elements of the activation arenas.
        pub const ARENA_F32: usize = #af;
        pub const ARENA_I64: usize = #ai;

        gpt2rt::embed_weights!(pub weight_blob, #address, #object_file, WEIGHT_BYTES, #path);

        /// The weights, viewed in place in the embedded blob (nothing is copied).
        pub struct Weights {
            #(#fields)*
        }

        impl Weights {
            pub fn new() -> Weights {
                let blob = weight_blob();
                Weights { #(#inits)* }
            }
        }

        /// Where each activation lives in its arena (planned at compile time).
        pub mod buf {
            use std::ops::Range;
            #(#bufs)*
        }

        /// The compiled model: the weights and the activation arenas, allocated once.
        pub struct Model {
            w: Weights,
            f32s: Vec<f32>,
            i64s: Vec<i64>,
            #kv_field
        }

        impl Default for Model {
            fn default() -> Self {
                Self::new()
            }
        }

        impl Model {
            pub fn new() -> Model {
                let mut m = Model { w: Weights::new(), f32s: vec![0.0; ARENA_F32], i64s: vec![0; ARENA_I64], #kv_init };
                m.init().expect("weights-only computations do not depend on input");
                m
            }

            /// Computes what depends on the weights alone, once.
            #[allow(unused_variables)]
            fn init(&mut self) -> Result<(), String> {
                let #fields_other = self;
                let (w, f32s, i64s) = (&*w, &mut f32s[..], &mut i64s[..]);
                #(#init_stmts)*
                Ok(())
            }

            #forward
            /// `forward` with inputs checked at run time.
            pub fn run(&mut self, inputs: &[TensorRef]) -> Result<(), String> {
                if inputs.len() != #n_inputs {
                    return Err(format!("the model takes {} inputs, got {}", #n_inputs, inputs.len()));
                }
                #(let #input_names = #run_args;)*
                self.forward(#(#input_names),*)
            }

            /// Output `index` (see `OUTPUTS`) of the last `forward`.
            pub fn output(&self, index: usize) -> Option<TensorRef<'_>> {
                match index {
                    #(#out_arms)*
                    _ => None,
                }
            }
        }

        #gpt2_impl
    })
}

#[cfg(test)]
mod tests {
    use super::BlobHash;

    fn hash(parts: &[&[u8]]) -> u64 {
        let mut h = BlobHash::default();
        parts.iter().for_each(|p| h.update(p));
        h.finish()
    }

    #[test]
    fn blob_hash_depends_on_the_bytes_not_on_how_they_were_written() {
        let bytes: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
        let whole = hash(&[&bytes]);
        for cut in [0, 1, 7, 8, 9, 50, 99, 100] {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(hash(&[a, b]), whole, "cut at {cut}");
            assert_eq!(hash(&[a, &[], b]), whole, "cut at {cut}, empty part");
        }
        let mut other = bytes.clone();
        other[57] ^= 1;
        assert_ne!(hash(&[&other]), whole, "one bit");
        // A trailing zero (padding) is part of the blob.
        assert_ne!(hash(&[&bytes, &[0]]), whole, "length");
        assert_ne!(hash(&[]), hash(&[&[0]]), "empty vs one zero");
    }
}
