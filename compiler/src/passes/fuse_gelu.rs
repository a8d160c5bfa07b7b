//! Fuses GELU, recognised by the function an elementwise subgraph computes rather than by
//! one exporter's node order:
//!
//! ```text
//! x ─► (Mul, Add, Pow, Div, Tanh, Erf, … with scalar constants) ─► y    y = GELU(x)
//!                                                                     ==> Gelu(x) | GeluErf(x)
//! ```
//! For every value x read by two or more elementwise nodes, the pass collects the
//! elementwise nodes computable from x and scalar constants alone (at most `MAX_NODES`),
//! runs them on probe values, and takes the latest value equal to GPT-2's tanh GELU
//! `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (→ `Gelu`, its `Pow(x, 3)` strength-reduced
//! by the kernel) or to the exact `0.5·x·(1 + erf(x/√2))` (→ `GeluErf`), to within f32
//! rounding, whose intermediate values nothing else reads. Needs static shapes.

use super::pattern::replace;
use super::Pass;
use crate::error::Result;
use crate::ir::{DType, Graph, Node, Tensor, ValueId};
use crate::ops::{Op, UnaryOp};
use std::collections::HashMap;

/// The GELU fusion pass (see the module docs).
pub struct FuseGelu;

/// Elementwise nodes a GELU may be written with.
const MAX_NODES: usize = 24;

fn elementwise(op: &Op) -> bool {
    matches!(op, Op::Binary(_) | Op::Unary(_))
}

/// Probe points: both tails, the bend around 0 and a few irregular values.
fn probes() -> Vec<f32> {
    let mut v: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.2).collect();
    v.extend([-11.5, -3.3, -0.07, 0.013, 0.51, 1.7, 2.9, 13.0]);
    v
}

fn gelu_tanh(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

fn gelu_erf(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

/// Which GELU `y` is as a function of `x` on the probes, if any.
fn which_gelu(x: &[f32], y: &[f32]) -> Option<Op> {
    let close = |f: fn(f64) -> f64| {
        x.iter().zip(y).all(|(&a, &b)| {
            let r = f(a as f64);
            (b as f64 - r).abs() <= 4e-6 * r.abs().max(1.0)
        })
    };
    if close(gelu_tanh) {
        Some(Op::Gelu)
    } else if close(gelu_erf) {
        Some(Op::GeluErf)
    } else {
        None
    }
}

/// The GELU computed from `x`, as (nodes to remove, the fused node).
fn match_from(
    g: &Graph,
    x: ValueId,
    uses: &[usize],
    users: &HashMap<ValueId, Vec<usize>>,
    taken: &[bool],
) -> Option<(Vec<usize>, Node)> {
    let scalar = |v: ValueId| g.konst(v).filter(|t| t.numel() == 1);
    // The forward closure of x through elementwise nodes with scalar-constant operands.
    let mut inside: HashMap<ValueId, ()> = HashMap::from([(x, ())]);
    let mut nodes: Vec<usize> = Vec::new();
    let first = users.get(&x)?.iter().copied().min()?;
    for (i, n) in g.nodes.iter().enumerate().skip(first) {
        if taken[i] || !elementwise(&n.op) || n.outputs.len() != 1 {
            continue;
        }
        let ok = n
            .inputs
            .iter()
            .flatten()
            .all(|&v| inside.contains_key(&v) || scalar(v).is_some());
        if ok && n.inputs.iter().flatten().any(|v| inside.contains_key(v)) {
            inside.insert(n.outputs[0], ());
            nodes.push(i);
            if nodes.len() == MAX_NODES {
                break;
            }
        }
    }
    if nodes.len() < 2 {
        return None;
    }
    // Run the closure on the probes.
    let p = probes();
    let mut env: HashMap<ValueId, Tensor> =
        HashMap::from([(x, Tensor::from_vec(vec![p.len()], p.clone()))]);
    for &i in &nodes {
        let n = &g.nodes[i];
        let ins: Vec<Option<Tensor>> = n
            .inputs
            .iter()
            .map(|v| v.and_then(|v| env.get(&v).cloned().or_else(|| scalar(v).cloned())))
            .collect();
        let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
        let out = n.op.eval(&refs).ok()?.into_iter().next()?;
        env.insert(n.outputs[0], out);
    }
    // The latest value that is a GELU of x and whose cone is private.
    for (k, &root) in nodes.iter().enumerate().rev() {
        let y = g.nodes[root].outputs[0];
        let ys = env.get(&y)?;
        if ys.dtype() != DType::F32 || ys.shape() != [p.len()] {
            continue;
        }
        let Some(op) = which_gelu(&p, &ys.to_vec::<f32>().ok()?) else {
            continue;
        };
        // The nodes y needs, walking back inside the closure.
        let mut need: Vec<ValueId> = vec![y];
        let mut cone: Vec<usize> = Vec::new();
        for &i in nodes[..=k].iter().rev() {
            let n = &g.nodes[i];
            if need.contains(&n.outputs[0]) {
                cone.push(i);
                need.extend(n.inputs.iter().flatten().filter(|&&v| v != x));
            }
        }
        // Intermediate values must be read only inside the cone.
        let private = cone.iter().all(|&i| {
            let v = g.nodes[i].outputs[0];
            v == y || {
                let readers = cone
                    .iter()
                    .filter(|&&j| g.nodes[j].inputs.contains(&Some(v)))
                    .map(|&j| g.nodes[j].inputs.iter().filter(|&&u| u == Some(v)).count())
                    .sum::<usize>();
                readers == uses[v] && !g.outputs.contains(&v)
            }
        });
        if !private || g.shape(x) != g.shape(y) {
            continue;
        }
        cone.sort();
        let name = g.nodes[root].name.replace("/Mul_3", "/Gelu");
        let node = Node {
            name,
            op,
            inputs: vec![Some(x)],
            outputs: vec![y],
        };
        return Some((cone, node));
    }
    None
}

impl Pass for FuseGelu {
    fn name(&self) -> &'static str {
        "fuse-gelu"
    }

    fn run(&self, g: &mut Graph) -> Result<String> {
        let uses = g.use_counts();
        let mut users: HashMap<ValueId, Vec<usize>> = HashMap::new();
        for (i, n) in g.nodes.iter().enumerate() {
            for v in n.inputs.iter().flatten() {
                users.entry(*v).or_default().push(i);
            }
        }
        let mut taken = vec![false; g.nodes.len()];
        let mut edits = Vec::new();
        let (mut tanh, mut erf) = (0, 0);
        let candidates: Vec<ValueId> = (0..g.values.len())
            .filter(|&v| g.konst(v).is_none())
            .filter(|v| {
                users.get(v).is_some_and(|u| {
                    u.iter().filter(|&&i| elementwise(&g.nodes[i].op)).count() >= 2
                })
            })
            .collect();
        for x in candidates {
            if let Some((cone, node)) = match_from(g, x, &uses, &users, &taken) {
                for &i in &cone {
                    taken[i] = true;
                }
                match node.op {
                    Op::Gelu => tanh += 1,
                    _ => erf += 1,
                }
                edits.push((cone, vec![node]));
            }
        }
        let count = edits.len();
        let dead = replace(g, edits);
        let kinds = match (tanh, erf) {
            (_, 0) => String::new(),
            (t, e) => format!(" ({t} tanh, {e} erf)"),
        };
        let left = super::pattern::leftovers(g, "Tanh/Erf", |n| {
            matches!(n.op, Op::Unary(UnaryOp::Tanh | UnaryOp::Erf))
        });
        Ok(format!(
            "{count} GELU(s) fused{kinds}, {dead} dead removed{left}"
        ))
    }
}
