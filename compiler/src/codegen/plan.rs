//! Storage planning: where every value lives in the generated code.
//!
//! - Constants read at run time go to the weight blob (deduplicated: the same bytes are
//!   stored once, e.g. an initializer the exporter shares through Identity nodes).
//! - Ops that only reinterpret a shape (Identity, Reshape, Squeeze, Unsqueeze) alias their
//!   input: no copy, no buffer.
//! - Every other value gets a fixed range of one arena per element type, placed by a
//!   first-fit allocator over the values' lifetimes, so the forward pass allocates nothing.
//! - A Concat whose inputs are whole blocks of its output (every dim before the axis is 1)
//!   has them computed in place: each input's producer writes straight into its block of
//!   the output (`Plan::inside`), and the Concat copies only inputs that cannot be (a graph
//!   input, a constant, a value that is itself a graph output or placed elsewhere). GPT-2's
//!   `present` outputs are then written by the ops that make the keys and values.

use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Node, Tensor, ValueId};
use crate::ops::Op;
use std::collections::HashMap;

/// Element type of a run-time buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    /// 32-bit float, in the f32 arena.
    F32,
    /// 64-bit integer (and bool, as 0/1), in the i64 arena.
    I64,
}

impl Elem {
    /// The buffer element type holding a `DType`; `None` for types the generated code has no
    /// arena for.
    pub fn of(d: DType) -> Option<Elem> {
        match d {
            DType::F32 => Some(Elem::F32),
            // Bools live in the i64 arena as 0/1 (comparisons write them, Where reads them).
            DType::I64 | DType::Bool => Some(Elem::I64),
            _ => None,
        }
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::I64 => 8,
        }
    }
}

/// Where a value lives at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Index into `Plan::weights`.
    Weight(usize),
    /// Elements `offset..offset + len` of the arena of `elem`.
    Arena {
        /// Arena element type.
        elem: Elem,
        /// First element of the range.
        offset: usize,
        /// Number of elements.
        len: usize,
    },
}

/// One constant stored in the weight blob.
#[derive(Clone, Debug)]
pub struct Weight {
    /// The first value that holds these bytes (names the weight).
    pub value: ValueId,
    /// Element type of the constant.
    pub elem: Elem,
    /// Byte offset in the blob (a multiple of `BLOB_ALIGN`).
    pub offset: usize,
    /// Number of stored elements (for panels, including their padding).
    pub len: usize,
    /// The constant (for a panel-packed weight, before packing).
    pub tensor: Tensor,
    /// `Some([K, N])` when stored in column panels (`layout`) for Linear ops.
    pub panels: Option<[usize; 2]>,
    /// How the elements are arranged.
    pub layout: WeightLayout,
    /// How the elements are stored: panel-packed weights may be narrowed (`WeightFormat`).
    pub format: super::layout::WeightFormat,
    /// For q8 and q4: byte offset of the scales (`WeightFormat::scales`).
    pub scales_offset: Option<usize>,
    /// A table that only elementwise arithmetic reads (`narrow_table`): a format may store
    /// it as f16 (`WeightFormat::narrows_tables`).
    pub table: bool,
}

/// Weights start at byte offsets that are multiples of this in the blob.
pub const BLOB_ALIGN: usize = 64;
/// Arena ranges start at multiples of this many elements (64 bytes for f32).
const ARENA_ALIGN: usize = 16;

/// The memory plan: where every value lives at run time (weight blob or arenas).
#[derive(Debug, Default)]
pub struct Plan {
    /// Each value's storage, by `ValueId`; `None` for values the generated code never holds.
    pub storage: Vec<Option<Storage>>,
    /// The weights, in blob order.
    pub weights: Vec<Weight>,
    /// Size of the weight blob in bytes.
    pub blob_bytes: usize,
    /// Size of the f32 arena in elements.
    pub arena_f32: usize,
    /// Size of the i64 arena in elements.
    pub arena_i64: usize,
    /// Values that own an arena range (not aliases), in definition order.
    pub buffers: Vec<ValueId>,
    /// The value that owns each value's storage (itself, unless it is an alias).
    pub root: Vec<ValueId>,
    /// For a buffer computed in place inside a Concat's output: that output and the
    /// element offset of its block.
    pub inside: Vec<Option<(ValueId, usize)>>,
    /// Elements at the start of the f32 arena that hold the attention cache (the buffers
    /// that own the `cache` values given to `plan`): one sequence's state, which a batched
    /// step keeps per sequence in a `Vec` of this length, at the same offsets.
    pub cache_len: usize,
    /// For each buffer (by value id): the steps of its first and last use. Graph inputs
    /// and persistent buffers start at step 0, node `i` runs at step `i + 1`, and buffers
    /// that must survive the call (outputs, persistent) end at `nodes.len() + 1`.
    pub lifetimes: Vec<Option<(usize, usize)>>,
}

/// The inputs of `op` that are read at run time; the others only decided shapes and were
/// consumed at compile time.
pub fn data_inputs(op: &Op, n: usize) -> Vec<usize> {
    match op {
        Op::Reshape { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Expand
        | Op::Slice { .. }
        | Op::Split { .. }
        | Op::SplitPart(_)
        | Op::ReduceMean { .. } => vec![0],
        Op::Gather { .. } => vec![0, 1],
        _ => (0..n).collect(),
    }
}

/// Nodes whose output is their input seen another way: a reshape, or a transposed weight
/// that only MatMul/Gemm read (they take it as a strided layout, see `transposed_weight`).
pub fn is_alias(g: &Graph, n: &Node) -> bool {
    matches!(
        n.op,
        Op::Identity | Op::Reshape { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. }
    ) || transposed_weight(g, n).is_some()
}

/// For `Transpose([1, 0])` of a 2-D constant whose only readers are MatMul/Gemm/Linear
/// right-hand operands: the constant.
pub fn transposed_weight(g: &Graph, n: &Node) -> Option<ValueId> {
    let Op::Transpose { perm: Some(p) } = &n.op else {
        return None;
    };
    let a = n.inputs[0]?;
    if p[..] != [1, 0] || g.values[a].konst.as_ref().is_none_or(|t| t.rank() != 2) {
        return None;
    }
    let o = n.outputs[0];
    let only_rhs = g.nodes.iter().all(|m| {
        m.inputs.iter().enumerate().all(|(k, i)| {
            *i != Some(o)
                || (k == 1 && matches!(m.op, Op::MatMul | Op::Gemm { .. } | Op::Linear { .. }))
        })
    });
    (only_rhs && !g.outputs.contains(&o)).then_some(a)
}

impl Plan {
    /// Whether `n` is a Concat whose inputs were all computed in place: it runs no code.
    pub fn in_place(&self, n: &Node) -> bool {
        matches!(n.op, Op::Concat { .. })
            && n.inputs
                .iter()
                .flatten()
                .all(|&i| self.inside[self.root[i]].is_some_and(|(host, _)| host == n.outputs[0]))
    }

    /// Stores every panel-packed weight in `format`, and every table (`narrow_table`) as
    /// f16 if the format narrows tables, placing the blob anew.
    pub fn store_panels_as(&mut self, format: super::layout::WeightFormat) {
        use super::layout::WeightFormat;
        let mut at = 0usize;
        for w in &mut self.weights {
            if let Some([k, n]) = w.panels {
                w.format = format;
                w.len = format.panels_len(k, n);
            } else if w.table {
                w.format = if format.narrows_tables() {
                    WeightFormat::F16
                } else {
                    WeightFormat::F32
                };
            }
            let size = if w.panels.is_some() || w.table {
                w.format.size()
            } else {
                w.elem.size()
            };
            w.offset = at.div_ceil(BLOB_ALIGN) * BLOB_ALIGN;
            at = w.offset + w.len * size;
            w.scales_offset = None;
            if let Some((count, ty)) = w.panels.and_then(|[k, n]| w.format.scales(k, n)) {
                let off = at.div_ceil(BLOB_ALIGN) * BLOB_ALIGN;
                w.scales_offset = Some(off);
                at = off + count * if ty == "u8" { 1 } else { 4 };
            }
        }
        self.blob_bytes = at;
    }
}

/// How a weight is laid out in the blob for the kernels that read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightLayout {
    /// As the constant is: row-major.
    Plain,
    /// `W [K, N]` in column panels (`layout`): the constant is read only as a Linear weight.
    Panels,
    /// The constant's transpose in column panels: it is read only as a Linear weight through
    /// a tied transposed view, and by row-gathers (`Gather` on axis 0), which read a row
    /// across the panels (an embedding table that is also the LM head).
    PanelsOfTranspose,
}

/// The layout of constant `v` (see `WeightLayout`).
pub fn weight_layout(g: &Graph, v: ValueId) -> WeightLayout {
    let is_matrix = g.values[v]
        .konst
        .as_ref()
        .is_some_and(|t| t.rank() == 2 && t.dtype() == crate::ir::DType::F32);
    if !is_matrix || g.outputs.contains(&v) {
        return WeightLayout::Plain;
    }
    let readers: Vec<(&Node, usize)> = g
        .nodes
        .iter()
        .flat_map(|n| {
            n.inputs
                .iter()
                .enumerate()
                .filter(move |(_, i)| **i == Some(v))
                .map(move |(k, _)| (n, k))
        })
        .collect();
    if readers.is_empty() {
        return WeightLayout::Plain;
    }
    if readers
        .iter()
        .all(|(n, k)| matches!(n.op, Op::Linear { .. }) && *k == 1)
    {
        return WeightLayout::Panels;
    }
    // A tied view read only by Linears, and row-gathers.
    let linear_view = |n: &Node| {
        transposed_weight(g, n).is_some() && {
            let o = n.outputs[0];
            g.nodes.iter().all(|m| {
                m.inputs
                    .iter()
                    .enumerate()
                    .all(|(k, i)| *i != Some(o) || (k == 1 && matches!(m.op, Op::Linear { .. })))
            })
        }
    };
    let row_gather = |n: &Node, k: usize| k == 0 && matches!(n.op, Op::Gather { axis: 0 });
    let views = readers.iter().filter(|(n, _)| linear_view(n)).count();
    if views > 0
        && readers
            .iter()
            .all(|(n, k)| linear_view(n) || row_gather(n, *k))
    {
        return WeightLayout::PanelsOfTranspose;
    }
    WeightLayout::Plain
}

/// Whether constant `v` is a table that a format may store as f16 (`WeightFormat::
/// narrows_tables`): an f32 constant with at least two dimensions longer than 1 (a matrix
/// of rows, such as the position embeddings; never a scalar or a per-channel vector), not
/// a graph output and not a Linear weight, every value finite in f16, read only as an
/// operand of elementwise Add, Sub, Mul or Div or as the data of a Gather, which widen it
/// to f32 exactly (`lower`). The reference model rounds the same tables
/// (`codegen::narrowed`).
pub fn narrow_table(g: &Graph, v: ValueId) -> bool {
    use crate::ops::BinaryOp;
    let Some(t) = g.values[v].konst.as_ref() else {
        return false;
    };
    if t.dtype() != DType::F32
        || t.shape().iter().filter(|&&d| d > 1).count() < 2
        || g.outputs.contains(&v)
        || weight_layout(g, v) != WeightLayout::Plain
    {
        return false;
    }
    let mut readers = g
        .nodes
        .iter()
        .filter(|n| n.inputs.contains(&Some(v)))
        .peekable();
    readers.peek().is_some()
        && readers.all(|n| match n.op {
            Op::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div) => true,
            Op::Gather { .. } => n.inputs[1..].iter().all(|i| *i != Some(v)),
            _ => false,
        })
        && t.to_vec::<f32>().is_ok_and(|x| {
            x.iter()
                .all(|&x| super::layout::f16_value(super::layout::f16_bits(x)).is_finite())
        })
}

/// First-fit allocator over one arena.
#[derive(Default)]
struct Allocator {
    free: Vec<(usize, usize)>, // (offset, len), sorted by offset, coalesced
    end: usize,
}

impl Allocator {
    fn alloc(&mut self, len: usize) -> usize {
        let len = len.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        if let Some(i) = self.free.iter().position(|&(_, l)| l >= len) {
            let (off, l) = self.free[i];
            if l == len {
                self.free.remove(i);
            } else {
                self.free[i] = (off + len, l - len);
            }
            return off;
        }
        // Grow, reusing a free block that ends at the current end.
        if let Some(&(off, l)) = self.free.last() {
            if off + l == self.end {
                self.free.pop();
                self.end = off + len;
                return off;
            }
        }
        let off = self.end;
        self.end += len;
        off
    }

    fn release(&mut self, off: usize, len: usize) {
        let len = len.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        let i = self.free.partition_point(|&(o, _)| o < off);
        self.free.insert(i, (off, len));
        // Coalesce with neighbours.
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }
}

/// For each Concat that can take its inputs in place: the inputs' roots with their element
/// offsets in the output (see the module comment). `root` maps aliases to their owners.
fn concat_blocks(graph: &Graph, root: &[ValueId]) -> Vec<(ValueId, Vec<(ValueId, usize)>)> {
    let producers = graph.producers();
    let mut taken = vec![false; graph.values.len()];
    let mut hosts = vec![false; graph.values.len()];
    let mut out = Vec::new();
    for n in &graph.nodes {
        let Op::Concat { axis } = n.op else { continue };
        let o = n.outputs[0];
        let shape = graph.shape(o);
        let Ok(ax) = crate::ops::norm_axis(axis, shape.len()) else {
            continue;
        };
        if shape[..ax].iter().any(|&d| d != 1) || taken[o] {
            continue;
        }
        let block = crate::ops::strides(&shape)[ax];
        let (mut at, mut parts) = (0, Vec::new());
        for i in n.inputs.iter().flatten() {
            let r = root[*i];
            let computed = producers
                .get(&r)
                .is_some_and(|&p| !is_alias(graph, &graph.nodes[p]));
            let dtype = |v: ValueId| graph.values[v].ty.as_ref().map(|t| t.dtype);
            if computed
                && !taken[r]
                && !hosts[r]
                && r != o
                && !graph.outputs.contains(&r)
                && graph.values[r].konst.is_none()
                && dtype(r) == dtype(o)
            {
                taken[r] = true;
                parts.push((r, at * block));
            }
            at += graph.shape(*i)[ax];
        }
        if !parts.is_empty() {
            hosts[o] = true;
            out.push((o, parts));
        }
    }
    out
}

/// Plans storage; `persistent` values (and graph outputs) keep their buffers for the
/// whole program, so their contents survive between calls (the attention cache). The
/// buffers holding `cache` (persistent too) come first in the f32 arena, as one block
/// (`Plan::cache_len`).
pub fn plan(graph: &Graph, persistent: &[ValueId], cache: &[ValueId]) -> Result<Plan> {
    let mut p = Plan {
        storage: vec![None; graph.values.len()],
        ..Default::default()
    };
    let elem_of = |v: ValueId| -> Result<Elem> {
        let ty = graph.values[v]
            .ty
            .as_ref()
            .ok_or_else(|| Error::Shape(format!("'{}' has no type", graph.values[v].name)))?;
        Elem::of(ty.dtype).ok_or_else(|| {
            Error::Shape(format!(
                "'{}' is {}; generated code supports f32, i64 and bool tensors",
                graph.values[v].name, ty.dtype
            ))
        })
    };

    // Weights: constants read at run time, and constant graph outputs.
    let mut by_bytes: HashMap<(usize, usize, Elem, WeightLayout, bool), usize> = HashMap::new();
    let mut add_weight = |p: &mut Plan, v: ValueId| -> Result<()> {
        if p.storage[v].is_some() {
            return Ok(());
        }
        let t = graph.values[v].konst.clone().expect("constant");
        let elem = elem_of(v)?;
        // A bool constant is stored as i64 0/1, like bool buffers.
        let t = match t.dtype() {
            DType::Bool => crate::ops::cast::eval(DType::I64, &t)
                .map_err(|e| Error::Invalid(e.0))?
                .remove(0),
            _ => t,
        };
        let layout = weight_layout(graph, v);
        let table = narrow_table(graph, v);
        let key = (
            t.bytes().as_ptr() as usize,
            t.byte_len(),
            elem,
            layout,
            table,
        );
        let idx = match by_bytes.get(&key) {
            Some(&i) => i,
            None => {
                // Panel-packed weights are packed when the blob is written, one at a time.
                let (len, panels) = match layout {
                    WeightLayout::Plain => (t.numel(), None),
                    WeightLayout::Panels | WeightLayout::PanelsOfTranspose => {
                        let (r, c) = (t.shape()[0], t.shape()[1]);
                        let [k, n] = if layout == WeightLayout::Panels {
                            [r, c]
                        } else {
                            [c, r]
                        };
                        (super::layout::panels_len(k, n), Some([k, n]))
                    }
                };
                let offset = p.blob_bytes.div_ceil(BLOB_ALIGN) * BLOB_ALIGN;
                p.blob_bytes = offset + len * t.dtype().size();
                p.weights.push(Weight {
                    value: v,
                    elem,
                    offset,
                    len,
                    tensor: t,
                    panels,
                    layout,
                    format: super::layout::WeightFormat::F32,
                    scales_offset: None,
                    table,
                });
                by_bytes.insert(key, p.weights.len() - 1);
                p.weights.len() - 1
            }
        };
        p.storage[v] = Some(Storage::Weight(idx));
        Ok(())
    };
    for n in &graph.nodes {
        for i in data_inputs(&n.op, n.inputs.len()) {
            if let Some(Some(v)) = n.inputs.get(i) {
                if graph.values[*v].konst.is_some() {
                    add_weight(&mut p, *v)?;
                }
            }
        }
    }
    for &o in &graph.outputs {
        if graph.values[o].konst.is_some() {
            add_weight(&mut p, o)?;
        }
    }

    // Aliases point at the value that owns the storage.
    let mut root: Vec<ValueId> = (0..graph.values.len()).collect();
    for n in &graph.nodes {
        if is_alias(graph, n) {
            if let Some(x) = n.inputs[0] {
                root[n.outputs[0]] = root[x];
            }
        }
    }

    // Lifetimes in steps: graph inputs at step 0, node i at step i + 1.
    let end = graph.nodes.len() + 1;
    let mut def: HashMap<ValueId, usize> = HashMap::new();
    let mut last: HashMap<ValueId, usize> = HashMap::new();
    for &i in &graph.inputs {
        def.insert(i, 0);
        last.insert(i, 0);
        p.buffers.push(i);
    }
    for (s, n) in graph.nodes.iter().enumerate() {
        let step = s + 1;
        for (k, i) in n.inputs.iter().enumerate() {
            if let Some(i) = i {
                if data_inputs(&n.op, n.inputs.len()).contains(&k) || is_alias(graph, n) && k == 0 {
                    let r = root[*i];
                    if graph.values[r].konst.is_none() {
                        let e = last.entry(r).or_insert(step);
                        *e = (*e).max(step);
                    }
                }
            }
        }
        if !is_alias(graph, n) {
            for &o in &n.outputs {
                def.insert(o, step);
                last.entry(o).or_insert(step);
                p.buffers.push(o);
            }
        }
    }
    for &o in graph.outputs.iter().chain(persistent) {
        if graph.values[root[o]].konst.is_none() {
            last.insert(root[o], end);
        }
    }
    // Persistent buffers are allocated before anything else is freed, so they never share
    // memory with a value of an earlier step.
    for &o in persistent {
        if let Some(d) = def.get_mut(&root[o]) {
            *d = 0;
        }
    }
    // A Concat's output lives from its first input's definition to its last use or any
    // input's; the inputs computed in place are not allocated themselves.
    let blocks = concat_blocks(graph, &root);
    p.inside = vec![None; graph.values.len()];
    for (o, parts) in &blocks {
        for &(r, at) in parts {
            p.inside[r] = Some((*o, at));
            let (d, l) = (def[&r], last[&r]);
            def.entry(*o).and_modify(|x| *x = (*x).min(d));
            last.entry(*o).and_modify(|x| *x = (*x).max(l));
        }
    }

    p.lifetimes = vec![None; graph.values.len()];
    for &b in &p.buffers {
        p.lifetimes[b] = Some((def[&b], last[&b]));
    }

    // Place buffers step by step: allocate what a step defines, then free what it last uses.
    let mut allocs: HashMap<Elem, Allocator> = HashMap::new();
    let owns = |b: ValueId| p.inside[b].is_none();
    let mut by_step: Vec<Vec<ValueId>> = vec![Vec::new(); end + 1];
    // The buffers that hold the cache: a cache value's root, or the Concat output it is
    // computed inside.
    let mut cache_owners: Vec<ValueId> = Vec::new();
    for &v in cache {
        let r = root[v];
        let owner = p.inside[r].map_or(r, |(host, _)| host);
        if !cache_owners.contains(&owner) && p.lifetimes[owner].is_some_and(|(d, _)| d == 0) {
            cache_owners.push(owner);
        }
    }
    by_step[0].extend(cache_owners.iter().copied());
    for &b in p
        .buffers
        .iter()
        .filter(|&&b| owns(b) && !cache_owners.contains(&b))
    {
        by_step[def[&b]].push(b);
    }
    let mut dying: Vec<Vec<ValueId>> = vec![Vec::new(); end + 1];
    for &b in p.buffers.iter().filter(|&&b| owns(b)) {
        dying[last[&b]].push(b);
    }
    for step in 0..=end {
        for &b in &by_step[step] {
            let elem = elem_of(b)?;
            let ty = graph.values[b]
                .ty
                .as_ref()
                .and_then(|t| t.static_shape())
                .expect("static shape");
            let len = crate::ir::numel(&ty);
            let offset = allocs.entry(elem).or_default().alloc(len);
            p.storage[b] = Some(Storage::Arena { elem, offset, len });
        }
        for &b in &dying[step] {
            if let Some(Storage::Arena { elem, offset, len }) = p.storage[b] {
                allocs
                    .get_mut(&elem)
                    .expect("allocated")
                    .release(offset, len);
            }
        }
    }
    p.cache_len = cache_owners
        .iter()
        .filter_map(|&b| match p.storage[b] {
            Some(Storage::Arena {
                elem: Elem::F32,
                offset,
                len,
            }) => Some((offset + len).div_ceil(ARENA_ALIGN) * ARENA_ALIGN),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    // In-place inputs: their block of the Concat's output.
    for (o, parts) in &blocks {
        if let Some(Storage::Arena { elem, offset, .. }) = p.storage[*o] {
            for &(r, at) in parts {
                let len = crate::ir::numel(&graph.shape(r));
                p.storage[r] = Some(Storage::Arena {
                    elem,
                    offset: offset + at,
                    len,
                });
            }
        }
    }
    p.arena_f32 = allocs.get(&Elem::F32).map_or(0, |a| a.end);
    p.arena_i64 = allocs.get(&Elem::I64).map_or(0, |a| a.end);

    // Aliases take their root's storage, with their own length (equal: same element count).
    for n in &graph.nodes {
        if is_alias(graph, n) {
            let o = n.outputs[0];
            p.storage[o] = p.storage[root[o]].clone();
        }
    }
    p.root = root;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::Allocator;

    #[test]
    fn allocator_reuses_and_coalesces() {
        let mut a = Allocator::default();
        let x = a.alloc(16);
        let y = a.alloc(32);
        let z = a.alloc(16);
        assert_eq!((x, y, z), (0, 16, 48));
        a.release(x, 16);
        a.release(y, 32);
        assert_eq!(a.alloc(40), 0); // coalesced block of 48
        assert_eq!(a.end, 64);
        a.release(z, 16);
        assert_eq!(a.alloc(100), 48); // grows from the free tail
        assert_eq!(a.end, 160);
    }
}
