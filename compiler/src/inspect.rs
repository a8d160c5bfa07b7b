//! `gpt2c inspect`: the graph at each stage of the compiler, as text, JSON or Graphviz.
//!
//! Stages, in pipeline order: `import` (the graph as read), then one stage per pass that
//! ran (`specialize`, `simplify`, the optional passes of `OPTIONAL_PASSES`, ...), then
//! `sequence` (the final graph with the sequence analysis) and `plan` (with the memory
//! plan). `fuse` names the graph after the last pass, whatever passes the pipeline has.
//!
//! Every node is shown with its op, typed inputs and outputs, and its `Op::cost` (FLOPs and
//! bytes moved per forward of the specialized length); every stage with totals.
//!
//! JSON schema (`--json`), version `JSON_VERSION`; keys are sorted, integers are exact:
//!
//! ```text
//! { "schema": "gpt2c-inspect", "version": 1,
//!   "model": { "path", "file_bytes", "ir_version", "opset", "producer",
//!              "config": { "n_layer", "n_head", "n_embd", "vocab", "n_ctx" } | null },
//!   "specialized_to": [ { "name", "shape": [int] } ],
//!   "disabled_passes": [ string ],
//!   "stages": [ {
//!       "stage": "import" | pass name | "fuse" | "sequence" | "plan",
//!       "passes": [ pass names run to get here, in order ],
//!       "summary": what the last pass reported | null,
//!       "graph": { "inputs": [value], "outputs": [value], "nodes": [node],
//!                  "totals": { "nodes", "flops", "bytes", "nodes_without_cost",
//!                              "weight_bytes", "parameters",
//!                              "ops": { op: { "nodes", "flops", "bytes" } } } },
//!       "sequence": { "incremental": bool, "detail": string, "len": int | null,
//!                     "cache": [value name], "init_nodes": [node name],
//!                     "tail_nodes": [node name] },              (sequence and plan only)
//!       "plan": { "arenas": [ { "dtype", "elements", "bytes" } ], "arena_bytes",
//!                 "peak_live_bytes", "peak_step", "steps",
//!                 "weights": { "tensors", "blob_bytes" },
//!                 "buffers": [ { "value", "dtype", "offset", "elements", "bytes",
//!                                "first_step", "last_step", "persistent",
//!                                "inside": value name | null } ] }       (plan only)
//!       "batching": { "possible": bool, "detail": string | null,
//!                     "cache_elements": int | null }                       (plan only)
//!   } ] }
//! value = { "name", "dtype", "shape": [int | symbol string] | null, "const": bool }
//! node  = { "index", "name", "op", "inputs": [value | null], "outputs": [value],
//!           "flops": int | null, "bytes": int | null }     (null: shapes not static yet)
//! ```
//!
//! Plan steps: graph inputs and persistent buffers start at step 0, node `i` runs at step
//! `i + 1`, and buffers that survive the call end at step `steps` (= nodes + 1); `offset`
//! and `elements` count elements of the arena of `dtype`. A buffer `inside` another (a
//! Concat's input computed in place) lies within that buffer's range and lifetime.

use crate::codegen::plan::{Elem, Plan, Storage};
use crate::error::{Error, Result};
use crate::gpt2::Gpt2Config;
use crate::ir::{Graph, Node, ValueId};
use crate::ops::{Cost, InferIn, OutType};
use crate::sequence::SeqInfo;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Version of the JSON output; changes that break readers bump it.
pub const JSON_VERSION: u32 = 1;

/// Stages `--stop-after` accepts besides the names of the optional passes.
pub const STAGES: &[&str] = &[
    "import",
    "specialize",
    "simplify",
    "fuse",
    "sequence",
    "plan",
];

/// Every name `--stop-after` accepts, for messages.
pub fn stage_list() -> String {
    format!(
        "{} (or one optional pass: {})",
        STAGES.join(", "),
        crate::OPTIONAL_PASSES.join(", ")
    )
}

/// Checks a `--stop-after` name against the stages and the passes that will run.
pub fn check_stage(stage: &str, disabled: &[String]) -> std::result::Result<(), String> {
    if !STAGES.contains(&stage) && !crate::OPTIONAL_PASSES.contains(&stage) {
        return Err(format!(
            "unknown stage '{stage}'; valid stages: {}",
            stage_list()
        ));
    }
    if disabled.iter().any(|d| d == stage) {
        return Err(format!("cannot stop after '{stage}': it is disabled"));
    }
    Ok(())
}

/// The graph after one pass.
pub struct PassResult {
    /// Pass name (`Pass::name`).
    pub name: String,
    /// What the pass did, one line (e.g. how many nodes it fused).
    pub summary: String,
    /// The graph after the pass.
    pub graph: Graph,
}

/// Everything `inspect` shows: the graph at each stage, the sequence analysis and the
/// memory plan of the final graph.
pub struct Inspection {
    /// The graph as imported, before any pass.
    pub import: Graph,
    /// Each pass that ran, in order.
    pub passes: Vec<PassResult>,
    /// `None` when the pipeline stopped at `import`.
    pub sequence: Option<std::result::Result<SeqInfo, String>>,
    /// The memory plan, or why there is none.
    pub plan: Option<std::result::Result<Plan, String>>,
    /// The values whose buffers persist between calls (the plan's input).
    pub persistent: Vec<ValueId>,
}

/// One stage, borrowed from an `Inspection`.
pub struct View<'a> {
    /// Stage name (see `STAGES`).
    pub stage: &'a str,
    /// Names of the passes run to reach it.
    pub passes: Vec<&'a str>,
    /// The last pass's summary; `None` at `import`.
    pub summary: Option<&'a str>,
    /// The graph at this stage.
    pub graph: &'a Graph,
    /// The sequence analysis (`sequence` and `plan` stages only).
    pub sequence: Option<&'a std::result::Result<SeqInfo, String>>,
    /// The memory plan (`plan` stage only).
    pub plan: Option<&'a Plan>,
    /// The values whose buffers persist between calls.
    pub persistent: &'a [ValueId],
}

impl Inspection {
    /// Runs the pipeline on `graph` specialized to `inputs`; with `stop == Some("import")`
    /// no pass runs (so a graph that fails a pass can still be looked at).
    pub fn run(
        graph: &Graph,
        inputs: Vec<(String, Vec<usize>)>,
        disabled: &[String],
        stop: Option<&str>,
    ) -> Result<Inspection> {
        let mut ins = Inspection {
            import: graph.clone(),
            passes: Vec::new(),
            sequence: None,
            plan: None,
            persistent: Vec::new(),
        };
        if stop == Some("import") {
            return Ok(ins);
        }
        let mut passes = Vec::new();
        let last = crate::compile_graph_with(graph, inputs, disabled, |name, summary, g| {
            crate::progress::stage(name, None);
            passes.push(PassResult {
                name: name.to_string(),
                summary: summary.to_string(),
                graph: g.clone(),
            });
        })?;
        crate::progress::stage("sequence analysis", None);
        let mut seq = crate::codegen::sequence_info(&last);
        // As codegen does: the nodes feeding only the logits last.
        let last = match seq
            .as_ref()
            .ok()
            .and_then(|s| crate::sequence::tail_last(&last, s))
        {
            Some(g) => {
                passes.push(PassResult {
                    name: "schedule-tail-last".to_string(),
                    summary: "moved the nodes that feed only the logits after the others".into(),
                    graph: g.clone(),
                });
                seq = crate::codegen::sequence_info(&g);
                g
            }
            None => last,
        };
        ins.passes = passes;
        ins.persistent = crate::codegen::persistent(&last, &seq);
        crate::progress::stage("memory plan", None);
        let cache: &[ValueId] = seq.as_ref().map_or(&[], |s| &s.cache[..]);
        ins.plan = Some(
            crate::codegen::plan::plan(&last, &ins.persistent, cache).map_err(|e| e.to_string()),
        );
        ins.sequence = Some(seq);
        Ok(ins)
    }

    fn view<'a>(&'a self, stage: &'a str, upto: usize) -> View<'a> {
        let (graph, summary) = match upto {
            0 => (&self.import, None),
            k => (
                &self.passes[k - 1].graph,
                Some(self.passes[k - 1].summary.as_str()),
            ),
        };
        View {
            stage,
            passes: self.passes[..upto]
                .iter()
                .map(|p| p.name.as_str())
                .collect(),
            summary,
            graph,
            sequence: None,
            plan: None,
            persistent: &self.persistent,
        }
    }

    /// The stage called `stage` (see `STAGES`; `check_stage` first).
    pub fn stage<'a>(&'a self, stage: &'a str) -> Result<View<'a>> {
        let missing = || Error::Invalid(format!("stage '{stage}' did not run"));
        let last = self.passes.len();
        Ok(match stage {
            "import" => self.view(stage, 0),
            "fuse" => self.view(stage, last),
            "sequence" | "plan" => {
                let mut v = self.view(stage, last);
                v.sequence = Some(self.sequence.as_ref().ok_or_else(missing)?);
                if stage == "plan" {
                    let plan = self.plan.as_ref().ok_or_else(missing)?;
                    v.plan = Some(plan.as_ref().map_err(|e| {
                        Error::Invalid(format!("no memory plan for this graph: {e}"))
                    })?);
                }
                v
            }
            pass => {
                let k = self
                    .passes
                    .iter()
                    .position(|p| p.name == pass)
                    .ok_or_else(missing)?;
                self.view(stage, k + 1)
            }
        })
    }

    /// Every stage that ran, in order: import, each pass, sequence, plan (when planned).
    pub fn all(&self) -> Vec<View<'_>> {
        let mut v = vec![self.view("import", 0)];
        for (k, p) in self.passes.iter().enumerate() {
            v.push(self.view(&p.name, k + 1));
        }
        for s in ["sequence", "plan"] {
            if let Ok(view) = self.stage(s) {
                v.push(view);
            }
        }
        v
    }
}

// ---- costs ----

/// The cost of one node, when every input and output has a static shape. Nodes the
/// generated code turns into views (`plan::is_alias`: reshapes, a tied weight's transpose)
/// cost nothing.
pub fn node_cost(g: &Graph, n: &Node) -> Option<Cost> {
    if crate::codegen::plan::is_alias(g, n) {
        return Some(Cost::default());
    }
    let mut shapes = Vec::new();
    for i in &n.inputs {
        shapes.push(match i {
            None => None,
            Some(v) => {
                let t = g.values[*v].ty.as_ref()?;
                Some((t.dtype, t.static_shape()?, g.values[*v].konst.as_ref()))
            }
        });
    }
    let ins: Vec<Option<InferIn>> = shapes
        .iter()
        .map(|s| {
            s.as_ref().map(|(dtype, shape, konst)| InferIn {
                dtype: *dtype,
                shape,
                konst: *konst,
            })
        })
        .collect();
    let outs: Vec<OutType> = n
        .outputs
        .iter()
        .map(|&o| {
            let t = g.values[o].ty.as_ref()?;
            Some((t.dtype, t.static_shape()?))
        })
        .collect::<Option<_>>()?;
    Some(n.op.cost(&ins, &outs))
}

/// Totals over a graph.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Number of nodes.
    pub nodes: usize,
    /// Summed cost of the nodes whose cost is known.
    pub cost: Cost,
    /// Nodes whose cost is unknown (shapes not static yet): not in `cost`.
    pub without_cost: usize,
    /// Per op name: (nodes, cost).
    pub ops: BTreeMap<&'static str, (usize, Cost)>,
}

/// Node count and modelled cost of `g`, in total and per op name.
pub fn totals(g: &Graph) -> Totals {
    let mut t = Totals {
        nodes: g.nodes.len(),
        ..Default::default()
    };
    for n in &g.nodes {
        let c = node_cost(g, n);
        let e = t.ops.entry(n.op.name()).or_default();
        e.0 += 1;
        match c {
            Some(c) => {
                e.1 = e.1 + c;
                t.cost = t.cost + c;
            }
            None => t.without_cost += 1,
        }
    }
    t
}

/// `1234567` → `1.23 M`; below 1000 the number itself.
pub fn si(n: u64) -> String {
    let x = n as f64;
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.2} k", x / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} M", x / 1e6),
        1_000_000_000..=999_999_999_999 => format!("{:.2} G", x / 1e9),
        _ => format!("{:.2} T", x / 1e12),
    }
}

/// `n` with an SI prefix on `unit`: `512 B`, `6.66 kB`, `1.23 MFLOP`.
fn with_unit(n: u64, unit: &str) -> String {
    let s = si(n);
    if n < 1000 {
        format!("{s} {unit}")
    } else {
        format!("{s}{unit}")
    }
}

/// Bytes with an SI unit: `512 B`, `6.66 kB`, `1.23 MB`.
pub fn bytes(n: u64) -> String {
    with_unit(n, "B")
}

/// FLOPs with an SI unit: `416 FLOP`, `1.55 MFLOP`.
pub fn flop(n: u64) -> String {
    with_unit(n, "FLOP")
}

/// One-line summary of a graph's totals.
pub fn totals_line(t: &Totals) -> String {
    let mut s = format!("{}, {} moved", flop(t.cost.flops), bytes(t.cost.bytes));
    if t.without_cost > 0 {
        write!(
            s,
            " ({} nodes without static shapes not counted)",
            t.without_cost
        )
        .unwrap();
    }
    s
}

// ---- text ----

fn type_str(g: &Graph, v: ValueId) -> String {
    g.values[v]
        .ty
        .as_ref()
        .map_or("?".to_string(), |t| t.to_string())
}

/// `name:type`, with `const` before constants and `-` for an omitted input.
pub fn value_label(g: &Graph, v: Option<ValueId>) -> String {
    match v {
        None => "-".into(),
        Some(i) if g.values[i].konst.is_some() => {
            format!("const {}:{}", g.values[i].name, type_str(g, i))
        }
        Some(i) => format!("{}:{}", g.values[i].name, type_str(g, i)),
    }
}

/// `outputs <- inputs` of a node.
pub fn node_signature(g: &Graph, n: &Node) -> String {
    let ins: Vec<String> = n.inputs.iter().map(|&i| value_label(g, i)).collect();
    let outs: Vec<String> = n.outputs.iter().map(|&o| value_label(g, Some(o))).collect();
    format!("{} <- {}", outs.join(", "), ins.join(", "))
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

/// The stage as readable text: every node with its cost, totals by op, and the sequence
/// analysis and memory plan where the stage has them.
pub fn text(v: &View) -> String {
    let g = v.graph;
    let mut o = String::new();
    let after = if v.passes.is_empty() {
        "no passes".to_string()
    } else {
        format!("after {}", v.passes.join(", "))
    };
    writeln!(o, "stage {} ({after}): {} nodes", v.stage, g.nodes.len()).unwrap();
    if let Some(s) = v.summary {
        writeln!(o, "  last pass: {s}").unwrap();
    }
    let w = g
        .nodes
        .iter()
        .map(|n| n.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    writeln!(
        o,
        "  {:>4}  {:<w$}  {:<12} {:>9} {:>10}  outputs <- inputs",
        "#", "node", "op", "FLOPs", "bytes"
    )
    .unwrap();
    for (i, n) in g.nodes.iter().enumerate() {
        let (f, b) = match node_cost(g, n) {
            Some(c) => (si(c.flops), bytes(c.bytes)),
            None => ("?".into(), "?".into()),
        };
        writeln!(
            o,
            "  {i:>4}  {:<w$}  {:<12} {f:>9} {b:>10}  {}",
            n.name,
            n.op.name(),
            node_signature(g, n)
        )
        .unwrap();
    }
    let t = totals(g);
    let (wb, params) = g.weight_stats();
    writeln!(
        o,
        "totals {} nodes: {}; weights {params} parameters, {}",
        t.nodes,
        totals_line(&t),
        bytes(wb as u64)
    )
    .unwrap();
    writeln!(
        o,
        "  {:<14} {:>5} {:>9} {:>7} {:>10} {:>7}",
        "op", "nodes", "FLOPs", "share", "bytes", "share"
    )
    .unwrap();
    for (op, (n, c)) in &t.ops {
        writeln!(
            o,
            "  {op:<14} {n:>5} {:>9} {:>7} {:>10} {:>7}",
            si(c.flops),
            pct(c.flops, t.cost.flops),
            bytes(c.bytes),
            pct(c.bytes, t.cost.bytes)
        )
        .unwrap();
    }
    if let Some(seq) = v.sequence {
        o.push_str(&sequence_text(g, seq));
    }
    if let Some(plan) = v.plan {
        o.push_str(&plan_text(g, plan, v.persistent));
        if let Some(seq) = v.sequence {
            o.push_str(&batching_text(g, seq, plan));
        }
    }
    o
}

/// Whether rows of several sequences can run in one step (`codegen::batch`), in a line or
/// two: the cache each sequence needs, or why the graph does not allow it.
pub fn batching_text(g: &Graph, seq: &std::result::Result<SeqInfo, String>, plan: &Plan) -> String {
    match crate::codegen::batch::analyze(g, seq, plan) {
        Ok(b) => format!(
            "batching   continuous: rows of many sequences run in one step; Linears and norms once over all\n           of them, attention per sequence against its own cache of {} f32 ({})\n",
            b.cache_len,
            bytes((b.cache_len * 4) as u64)
        ),
        Err(why) => format!("batching   not possible: {why}\n"),
    }
}

fn batching_json(g: &Graph, seq: &std::result::Result<SeqInfo, String>, plan: &Plan) -> Json {
    match crate::codegen::batch::analyze(g, seq, plan) {
        Ok(b) => json!({ "possible": true, "detail": null, "cache_elements": b.cache_len }),
        Err(why) => json!({ "possible": false, "detail": why, "cache_elements": null }),
    }
}

/// What the sequence analysis concluded, in a few lines.
pub fn sequence_text(g: &Graph, seq: &std::result::Result<SeqInfo, String>) -> String {
    let mut o = String::new();
    match seq {
        Err(why) => {
            writeln!(
                o,
                "sequence   not incremental: {why}\n           (the generated code recomputes the whole window for every token)"
            )
            .unwrap();
        }
        Ok(s) => {
            let names = |ids: &mut dyn Iterator<Item = String>| ids.collect::<Vec<_>>().join(", ");
            writeln!(
                o,
                "sequence   incremental: every op is row-wise along the sequence ({} positions) or causal attention;\n           rows p0..p0+n run alone against a cache of {} tensors",
                s.len,
                s.cache.len()
            )
            .unwrap();
            if !s.cache.is_empty() {
                writeln!(
                    o,
                    "           cache: {}",
                    names(&mut s.cache.iter().map(|&v| g.values[v].name.clone()))
                )
                .unwrap();
            }
            let init: Vec<String> = g
                .nodes
                .iter()
                .zip(&s.init)
                .filter(|(_, &i)| i)
                .map(|(n, _)| n.name.clone())
                .collect();
            writeln!(
                o,
                "           {} weights-only nodes run once at start-up{}",
                init.len(),
                if init.is_empty() {
                    String::new()
                } else {
                    format!(": {}", init.join(", "))
                }
            )
            .unwrap();
            let tail = s.tail.iter().filter(|&&t| t).count();
            writeln!(
                o,
                "           {tail} nodes feed only output 0 (the last row alone while generating)"
            )
            .unwrap();
        }
    }
    o
}

/// Peak bytes of buffers live at one step, and that step.
pub fn peak_live(g: &Graph, plan: &Plan) -> (u64, usize) {
    let steps = g.nodes.len() + 1;
    let mut delta = vec![0i128; steps + 2];
    // Buffers inside another (a Concat's inputs computed in place) add nothing.
    for &b in plan.buffers.iter().filter(|&&b| plan.inside[b].is_none()) {
        if let (Some((s, e)), Some(Storage::Arena { elem, len, .. })) =
            (plan.lifetimes[b], &plan.storage[b])
        {
            let n = (*len * elem.size()) as i128;
            delta[s] += n;
            delta[e + 1] -= n;
        }
    }
    let (mut live, mut peak, mut at) = (0i128, 0i128, 0);
    for (s, d) in delta.iter().enumerate().take(steps + 1) {
        live += d;
        if live > peak {
            (peak, at) = (live, s);
        }
    }
    (peak as u64, at)
}

fn elem_name(e: Elem) -> &'static str {
    match e {
        Elem::F32 => "f32",
        Elem::I64 => "i64",
    }
}

fn arenas(plan: &Plan) -> [(Elem, usize); 2] {
    [(Elem::F32, plan.arena_f32), (Elem::I64, plan.arena_i64)]
}

fn is_persistent(plan: &Plan, persistent: &[ValueId], g: &Graph, b: ValueId) -> bool {
    persistent
        .iter()
        .chain(&g.outputs)
        .any(|&p| plan.root.get(p) == Some(&b))
}

/// The memory plan in three lines: arena sizes, peak live bytes, weights.
pub fn plan_summary(g: &Graph, plan: &Plan) -> String {
    let mut o = String::new();
    let total: usize = arenas(plan).iter().map(|(e, n)| n * e.size()).sum();
    let parts: Vec<String> = arenas(plan)
        .iter()
        .map(|(e, n)| {
            format!(
                "arena {} {n} elements ({})",
                elem_name(*e),
                bytes((n * e.size()) as u64)
            )
        })
        .collect();
    writeln!(
        o,
        "memory     {}; total {}",
        parts.join(", "),
        bytes(total as u64)
    )
    .unwrap();
    let (peak, at) = peak_live(g, plan);
    let at_name = match at {
        0 => "the inputs and persistent buffers".to_string(),
        s if s <= g.nodes.len() => format!("node {} '{}'", s - 1, g.nodes[s - 1].name),
        _ => "the end".to_string(),
    };
    writeln!(
        o,
        "           peak live {} ({} of the arenas) at step {at} ({at_name})",
        bytes(peak),
        pct(peak, total as u64)
    )
    .unwrap();
    writeln!(
        o,
        "           weights: {} tensors in a {} blob",
        plan.weights.len(),
        bytes(plan.blob_bytes as u64)
    )
    .unwrap();
    o
}

/// The memory plan: `plan_summary`, then every buffer with its range and lifetime.
pub fn plan_text(g: &Graph, plan: &Plan, persistent: &[ValueId]) -> String {
    let mut o = plan_summary(g, plan);
    let w = plan
        .buffers
        .iter()
        .map(|&b| g.values[b].name.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 40);
    writeln!(
        o,
        "  {:<w$} {:<5} {:>10} {:>10} {:>10}  live steps",
        "buffer", "arena", "offset", "elements", "bytes"
    )
    .unwrap();
    for &b in &plan.buffers {
        if let (Some((s, e)), Some(Storage::Arena { elem, offset, len })) =
            (plan.lifetimes[b], &plan.storage[b])
        {
            writeln!(
                o,
                "  {:<w$} {:<5} {offset:>10} {len:>10} {:>10}  {s}..={e}{}{}",
                g.values[b].name,
                elem_name(*elem),
                bytes((len * elem.size()) as u64),
                if is_persistent(plan, persistent, g, b) {
                    " persistent"
                } else {
                    ""
                },
                plan.inside[b].map_or(String::new(), |(host, _)| format!(
                    " (in place in {})",
                    g.values[host].name
                ))
            )
            .unwrap();
        }
    }
    o
}

// ---- JSON ----

fn value_json(g: &Graph, v: ValueId) -> Json {
    let val = &g.values[v];
    let (dtype, shape) = match &val.ty {
        None => (Json::Null, Json::Null),
        Some(t) => (
            json!(t.dtype.name()),
            Json::Array(
                t.shape
                    .iter()
                    .map(|d| match d {
                        crate::ir::Dim::Known(n) => json!(n),
                        crate::ir::Dim::Sym(s) => json!(s),
                    })
                    .collect(),
            ),
        ),
    };
    json!({ "name": val.name, "dtype": dtype, "shape": shape, "const": val.konst.is_some() })
}

fn graph_json(g: &Graph) -> Json {
    let nodes: Vec<Json> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let c = node_cost(g, n);
            json!({
                "index": i,
                "name": n.name,
                "op": n.op.name(),
                "inputs": n.inputs.iter().map(|i| i.map_or(Json::Null, |v| value_json(g, v))).collect::<Vec<_>>(),
                "outputs": n.outputs.iter().map(|&o| value_json(g, o)).collect::<Vec<_>>(),
                "flops": c.map(|c| c.flops),
                "bytes": c.map(|c| c.bytes),
            })
        })
        .collect();
    let t = totals(g);
    let (wb, params) = g.weight_stats();
    let ops: serde_json::Map<String, Json> = t
        .ops
        .iter()
        .map(|(op, (n, c))| {
            (
                op.to_string(),
                json!({ "nodes": n, "flops": c.flops, "bytes": c.bytes }),
            )
        })
        .collect();
    json!({
        "inputs": g.inputs.iter().map(|&v| value_json(g, v)).collect::<Vec<_>>(),
        "outputs": g.outputs.iter().map(|&v| value_json(g, v)).collect::<Vec<_>>(),
        "nodes": nodes,
        "totals": {
            "nodes": t.nodes,
            "flops": t.cost.flops,
            "bytes": t.cost.bytes,
            "nodes_without_cost": t.without_cost,
            "weight_bytes": wb,
            "parameters": params,
            "ops": ops,
        },
    })
}

fn sequence_json(g: &Graph, seq: &std::result::Result<SeqInfo, String>) -> Json {
    match seq {
        Err(why) => json!({
            "incremental": false, "detail": why, "len": null,
            "cache": [], "init_nodes": [], "tail_nodes": [],
        }),
        Ok(s) => {
            let pick = |flags: &[bool]| -> Vec<String> {
                g.nodes
                    .iter()
                    .zip(flags)
                    .filter(|(_, &f)| f)
                    .map(|(n, _)| n.name.clone())
                    .collect()
            };
            json!({
                "incremental": true,
                "detail": format!("rows run separately: {} cached tensors", s.cache.len()),
                "len": s.len,
                "cache": s.cache.iter().map(|&v| g.values[v].name.clone()).collect::<Vec<_>>(),
                "init_nodes": pick(&s.init),
                "tail_nodes": pick(&s.tail),
            })
        }
    }
}

fn plan_json(g: &Graph, plan: &Plan, persistent: &[ValueId]) -> Json {
    let (peak, at) = peak_live(g, plan);
    let buffers: Vec<Json> = plan
        .buffers
        .iter()
        .filter_map(|&b| match (plan.lifetimes[b], &plan.storage[b]) {
            (Some((s, e)), Some(Storage::Arena { elem, offset, len })) => Some(json!({
                "value": g.values[b].name,
                "dtype": elem_name(*elem),
                "offset": offset,
                "elements": len,
                "bytes": len * elem.size(),
                "first_step": s,
                "last_step": e,
                "persistent": is_persistent(plan, persistent, g, b),
                "inside": plan.inside[b].map(|(host, _)| g.values[host].name.clone()),
            })),
            _ => None,
        })
        .collect();
    json!({
        "arenas": arenas(plan).iter().map(|(e, n)| json!({
            "dtype": elem_name(*e), "elements": n, "bytes": n * e.size(),
        })).collect::<Vec<_>>(),
        "arena_bytes": arenas(plan).iter().map(|(e, n)| n * e.size()).sum::<usize>(),
        "peak_live_bytes": peak,
        "peak_step": at,
        "steps": g.nodes.len() + 1,
        "weights": { "tensors": plan.weights.len(), "blob_bytes": plan.blob_bytes },
        "buffers": buffers,
    })
}

/// One stage as JSON (the `stages` entries of the schema above).
pub fn stage_json(v: &View) -> Json {
    let mut m = serde_json::Map::new();
    m.insert("stage".into(), json!(v.stage));
    m.insert("passes".into(), json!(v.passes));
    m.insert("summary".into(), json!(v.summary));
    m.insert("graph".into(), graph_json(v.graph));
    if let Some(s) = v.sequence {
        m.insert("sequence".into(), sequence_json(v.graph, s));
    }
    if let Some(p) = v.plan {
        m.insert("plan".into(), plan_json(v.graph, p, v.persistent));
        if let Some(s) = v.sequence {
            m.insert("batching".into(), batching_json(v.graph, s, p));
        }
    }
    Json::Object(m)
}

/// Where the model came from and how it was specialized, for the JSON document.
pub struct ModelInfo<'a> {
    /// The model file's path.
    pub path: &'a str,
    /// The model file's size in bytes.
    pub file_bytes: u64,
    /// The GPT-2 hyperparameters, when the graph was recognised as GPT-2.
    pub config: Option<&'a Gpt2Config>,
    /// The static shape chosen for each graph input, by name.
    pub inputs: &'a [(String, Vec<usize>)],
    /// The optional passes switched off.
    pub disabled: &'a [String],
}

/// The whole JSON document for some stages.
pub fn json_document(m: &ModelInfo, graph: &Graph, views: &[View]) -> Json {
    let meta = &graph.meta;
    json!({
        "schema": "gpt2c-inspect",
        "version": JSON_VERSION,
        "model": {
            "path": m.path,
            "file_bytes": m.file_bytes,
            "ir_version": meta.ir_version,
            "opset": meta.opset,
            "producer": meta.producer,
            "config": m.config.map(|c| json!({
                "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
                "vocab": c.vocab, "n_ctx": c.n_ctx,
            })),
        },
        "specialized_to": m.inputs.iter().map(|(n, s)| json!({ "name": n, "shape": s })).collect::<Vec<_>>(),
        "disabled_passes": m.disabled,
        "stages": views.iter().map(stage_json).collect::<Vec<_>>(),
    })
}

// ---- Graphviz ----

/// A DOT string literal.
fn dot_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The stage as a Graphviz digraph: one line per statement. Graph inputs and outputs are
/// ellipses (`i<k>`, `o<k>`), nodes boxes (`n<index>`) labelled with op, name, output types
/// and cost; edges carry the value's type. Constants (weights) are not drawn: a node lists
/// how many it reads. In the `sequence` stage weights-only nodes are grey and nodes that
/// feed only output 0 dashed.
pub fn dot(v: &View) -> String {
    let g = v.graph;
    let mut o = String::new();
    let t = totals(g);
    let mut title = format!(
        "stage {}: {} nodes, {}",
        v.stage,
        g.nodes.len(),
        totals_line(&t)
    );
    if let Some(seq) = v.sequence {
        match seq {
            Ok(s) => write!(title, "\nincremental: {} cached tensors", s.cache.len()).unwrap(),
            Err(why) => write!(title, "\nnot incremental: {why}").unwrap(),
        }
    }
    if let Some(p) = v.plan {
        let (peak, _) = peak_live(g, p);
        write!(
            title,
            "\narenas f32 {} + i64 {}; peak live {}",
            bytes((p.arena_f32 * 4) as u64),
            bytes((p.arena_i64 * 8) as u64),
            bytes(peak)
        )
        .unwrap();
    }
    o.push_str("digraph gpt2c {\n");
    writeln!(
        o,
        "  graph [label={}, labelloc=t, fontname=\"monospace\"];",
        dot_str(&title)
    )
    .unwrap();
    o.push_str("  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
    o.push_str("  edge [fontname=\"monospace\", fontsize=8];\n");
    // Who defines each value: a graph input or a node.
    let mut src: Vec<Option<String>> = vec![None; g.values.len()];
    for (k, &i) in g.inputs.iter().enumerate() {
        writeln!(
            o,
            "  i{k} [shape=ellipse, label={}];",
            dot_str(&format!("{}\n{}", g.values[i].name, type_str(g, i)))
        )
        .unwrap();
        src[i] = Some(format!("i{k}"));
    }
    let seq = v.sequence.and_then(|s| s.as_ref().ok());
    for (k, n) in g.nodes.iter().enumerate() {
        let outs: Vec<String> = n.outputs.iter().map(|&x| type_str(g, x)).collect();
        let consts = n
            .inputs
            .iter()
            .flatten()
            .filter(|&&i| g.values[i].konst.is_some())
            .count();
        let mut label = format!("{}\n{}\n{}", n.op.name(), n.name, outs.join(", "));
        if consts > 0 {
            write!(label, "\n{consts} constant input(s)").unwrap();
        }
        if let Some(c) = node_cost(g, n) {
            write!(label, "\n{}, {}", flop(c.flops), bytes(c.bytes)).unwrap();
        }
        let style = match seq {
            Some(s) if s.init[k] => ", style=filled, fillcolor=lightgrey",
            Some(s) if s.tail[k] => ", style=dashed",
            _ => "",
        };
        writeln!(o, "  n{k} [label={}{style}];", dot_str(&label)).unwrap();
        for &x in &n.outputs {
            src[x] = Some(format!("n{k}"));
        }
    }
    for (k, &x) in g.outputs.iter().enumerate() {
        writeln!(
            o,
            "  o{k} [shape=ellipse, label={}];",
            dot_str(&format!("{}\n{}", g.values[x].name, type_str(g, x)))
        )
        .unwrap();
    }
    for (k, n) in g.nodes.iter().enumerate() {
        for &i in n.inputs.iter().flatten() {
            if let Some(s) = &src[i] {
                writeln!(o, "  {s} -> n{k} [label={}];", dot_str(&type_str(g, i))).unwrap();
            }
        }
    }
    for (k, &x) in g.outputs.iter().enumerate() {
        if let Some(s) = &src[x] {
            writeln!(o, "  {s} -> o{k};").unwrap();
        }
    }
    o.push_str("}\n");
    o
}
