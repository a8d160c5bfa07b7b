//! The reference interpreter: evaluates any IR graph node by node with `Op::eval`.
//!
//! It is the oracle for the passes and the generated code, so it favours being obviously
//! right over speed. It works on graphs before specialization too (shapes come from data),
//! and frees each value after its last use so full-context runs of big models fit in memory.

use crate::error::{Error, Result};
use crate::ir::{Dim, Graph, Tensor};

/// Runs the graph on named inputs; returns the graph outputs in order.
pub fn run(graph: &Graph, inputs: &[(&str, Tensor)]) -> Result<Vec<Tensor>> {
    let mut env: Vec<Option<Tensor>> = graph.values.iter().map(|v| v.konst.clone()).collect();
    for &id in &graph.inputs {
        let v = &graph.values[id];
        let t = inputs
            .iter()
            .find(|(n, _)| *n == v.name)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| Error::Shape(format!("missing input '{}'", v.name)))?;
        if let Some(ty) = &v.ty {
            let fits = ty.dtype == t.dtype()
                && ty.shape.len() == t.rank()
                && ty
                    .shape
                    .iter()
                    .zip(t.shape())
                    .all(|(d, &n)| matches!(d, Dim::Sym(_)) || *d == Dim::Known(n));
            if !fits {
                return Err(Error::Shape(format!(
                    "input '{}' expects {ty}, got {}{:?}",
                    v.name,
                    t.dtype(),
                    t.shape()
                )));
            }
        }
        env[id] = Some(t);
    }
    let mut uses = graph.use_counts();
    for node in &graph.nodes {
        let ins: Vec<Option<&Tensor>> = node
            .inputs
            .iter()
            .map(|i| i.and_then(|i| env[i].as_ref()))
            .collect();
        let outs = node.op.eval(&ins).map_err(|e| Error::Node {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            msg: e.0,
        })?;
        if outs.len() != node.outputs.len() {
            return Err(Error::Node {
                node: node.name.clone(),
                op: node.op.name().into(),
                msg: format!(
                    "produced {} outputs, the node has {}",
                    outs.len(),
                    node.outputs.len()
                ),
            });
        }
        for (&id, t) in node.outputs.iter().zip(outs) {
            env[id] = Some(t);
        }
        for &i in node.inputs.iter().flatten() {
            uses[i] -= 1;
            if uses[i] == 0 && graph.values[i].konst.is_none() {
                env[i] = None;
            }
        }
    }
    graph
        .outputs
        .iter()
        .map(|&o| {
            env[o].clone().ok_or_else(|| {
                Error::Shape(format!(
                    "output '{}' was not computed",
                    graph.values[o].name
                ))
            })
        })
        .collect()
}
