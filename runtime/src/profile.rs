//! Opt-in timing of the generated forward pass (`gpt2 --profile`). Beside the kernels,
//! depending on nothing in the crate; generated code and the CLI use it.
//!
//! Every statement of the generated code that computes something starts a `timer` with its
//! index in the model's `PROFILE` table; the timer records on drop. Until `enable` is
//! called a timer is one relaxed atomic load and nothing is recorded, so the normal build
//! pays nothing measurable. The table (from the compiler) names each node as the code
//! comments do, its layer, and a cost model (FLOPs and bytes at a row count), so the
//! report can show achieved GFLOP/s and GB/s beside the time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// What the compiler knows about one timed node.
#[derive(Clone, Copy, Debug)]
pub struct NodeInfo {
    /// The ONNX node (or fused node) name, as in the generated code's comments.
    pub name: &'static str,
    /// The op, e.g. `Linear`, `Attention`.
    pub op: &'static str,
    /// Transformer layer, or -1 outside the layers (embedding, final norm, LM head).
    pub layer: i32,
    /// FLOPs of one call: `[fixed, per row]` (a model, not a measurement).
    pub flops: [u64; 2],
    /// Bytes moved by one call: `[fixed, per row]` (weights are the fixed part).
    pub bytes: [u64; 2],
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Per node: nanoseconds, calls, rows.
struct Counters(Vec<[AtomicU64; 3]>);

fn counters() -> &'static OnceLock<Counters> {
    static C: OnceLock<Counters> = OnceLock::new();
    &C
}

/// Starts recording for a model with `nodes` timed nodes (allocates the counters once).
pub fn enable(nodes: usize) {
    counters().get_or_init(|| {
        Counters(
            (0..nodes)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
        )
    });
    ENABLED.store(true, Ordering::Relaxed);
}

/// Times one node until dropped.
pub struct Timer {
    start: Option<Instant>,
    id: usize,
    rows: usize,
}

/// A timer for node `id` computing `rows` rows (inert unless `enable` was called).
#[inline]
pub fn timer(id: usize, rows: usize) -> Timer {
    let start = ENABLED.load(Ordering::Relaxed).then(Instant::now);
    Timer { start, id, rows }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let (Some(start), Some(c)) = (self.start, counters().get()) else {
            return;
        };
        if let Some([ns, calls, rows]) = c.0.get(self.id) {
            ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            calls.fetch_add(1, Ordering::Relaxed);
            rows.fetch_add(self.rows as u64, Ordering::Relaxed);
        }
    }
}

/// Totals of a group of nodes.
#[derive(Clone, Copy, Default)]
struct Sum {
    ns: u64,
    calls: u64,
    flops: u64,
    bytes: u64,
}

impl Sum {
    fn add(&mut self, n: &NodeInfo, ns: u64, calls: u64, rows: u64) {
        self.ns += ns;
        self.calls += calls;
        self.flops += n.flops[0] * calls + n.flops[1] * rows;
        self.bytes += n.bytes[0] * calls + n.bytes[1] * rows;
    }

    fn line(&self, label: &str, total_ns: u64) -> String {
        let s = self.ns.max(1) as f64;
        format!(
            "  {label:<44} {:>9.2} {:>6.1}% {:>8.1} {:>8.1}\n",
            self.ns as f64 / 1e6,
            100.0 * self.ns as f64 / total_ns.max(1) as f64,
            self.flops as f64 / s,
            self.bytes as f64 / s,
        )
    }
}

/// The recorded times, by layer, by op and the slowest nodes, with each one's share of the
/// total and its achieved GFLOP/s and GB/s (from the cost model).
pub fn report(nodes: &[NodeInfo]) -> String {
    let Some(c) = counters().get() else {
        return "profile: nothing recorded (profiling was not enabled)\n".into();
    };
    let rec: Vec<(u64, u64, u64)> =
        c.0.iter()
            .map(|[a, b, r]| {
                (
                    a.load(Ordering::Relaxed),
                    b.load(Ordering::Relaxed),
                    r.load(Ordering::Relaxed),
                )
            })
            .collect();
    let mut total = Sum::default();
    let mut layers: Vec<(i32, Sum)> = Vec::new();
    let mut ops: Vec<(&str, Sum)> = Vec::new();
    for (n, &(ns, calls, rows)) in nodes.iter().zip(&rec) {
        total.add(n, ns, calls, rows);
        match layers.iter_mut().find(|(l, _)| *l == n.layer) {
            Some((_, s)) => s.add(n, ns, calls, rows),
            None => {
                let mut s = Sum::default();
                s.add(n, ns, calls, rows);
                layers.push((n.layer, s));
            }
        }
        match ops.iter_mut().find(|(o, _)| *o == n.op) {
            Some((_, s)) => s.add(n, ns, calls, rows),
            None => {
                let mut s = Sum::default();
                s.add(n, ns, calls, rows);
                ops.push((n.op, s));
            }
        }
    }
    let header = format!(
        "  {:<44} {:>9} {:>7} {:>8} {:>8}\n",
        "", "ms", "share", "GFLOP/s", "GB/s"
    );
    let mut out = format!(
        "profile: {:.3} s in timed nodes ({} node calls); GFLOP/s and GB/s from the compiler's cost model\n",
        total.ns as f64 / 1e9,
        total.calls
    );
    out += "by layer\n";
    out += &header;
    for (l, s) in &layers {
        let label = if *l < 0 {
            "outside the layers".to_string()
        } else {
            format!("layer {l}")
        };
        out += &s.line(&label, total.ns);
    }
    out += "by op\n";
    out += &header;
    ops.sort_by_key(|(_, s)| std::cmp::Reverse(s.ns));
    for (o, s) in &ops {
        out += &s.line(o, total.ns);
    }
    out += "slowest nodes\n";
    out += &header;
    let mut idx: Vec<usize> = (0..nodes.len().min(rec.len())).collect();
    idx.sort_by_key(|&i| std::cmp::Reverse(rec[i].0));
    for &i in idx.iter().take(10) {
        let mut s = Sum::default();
        s.add(&nodes[i], rec[i].0, rec[i].1, rec[i].2);
        out += &s.line(&format!("{} ({})", nodes[i].name, nodes[i].op), total.ns);
    }
    out += &total.line("total", total.ns);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_record_only_when_enabled_and_the_report_adds_up() {
        let nodes = [
            NodeInfo {
                name: "/h.0/mlp/Linear",
                op: "Linear",
                layer: 0,
                flops: [0, 2_000_000],
                bytes: [4_000_000, 100],
            },
            NodeInfo {
                name: "/ln_f/LayerNorm",
                op: "LayerNorm",
                layer: -1,
                flops: [0, 800],
                bytes: [0, 800],
            },
        ];
        drop(timer(0, 1)); // not enabled: nothing recorded, nothing allocated
        assert!(counters().get().is_none());
        enable(nodes.len());
        for _ in 0..3 {
            let _t = timer(0, 2);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        drop(timer(1, 1));
        let r = report(&nodes);
        assert!(
            r.contains("layer 0") && r.contains("outside the layers"),
            "{r}"
        );
        assert!(r.contains("/h.0/mlp/Linear (Linear)"), "{r}");
        let c = counters().get().unwrap();
        assert_eq!(c.0[0][1].load(Ordering::Relaxed), 3);
        assert_eq!(c.0[0][2].load(Ordering::Relaxed), 6);
        assert!(c.0[0][0].load(Ordering::Relaxed) >= 6_000_000);
    }
}
