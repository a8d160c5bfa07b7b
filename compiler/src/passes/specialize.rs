//! Specialization: fixes the input shapes, then walks the graph once, inferring every static
//! shape and folding every node whose inputs are all constant.
//!
//! Needs: a valid graph. Guarantees after: every value has a static type; no Shape, NonZero
//! or ConstantOfShape node remains (a check names any survivor); the shape computations of
//! the export (Shape → Gather → Unsqueeze → Concat → Reshape, position ids from
//! ConstantOfShape → NonZero, the causal-mask Slice bounds) are constants.
//!
//! Folding has a byte budget: a node whose result would exceed it stays a runtime op, so
//! folding never materializes a copy of a large weight (e.g. a Slice of the whole mask).

use super::Pass;
use crate::error::{Error, Result};
use crate::ir::{Dim, Graph, Tensor, TensorType};
use crate::ops::{InferIn, Op};

/// Default folding budget per node result.
pub const FOLD_BUDGET_BYTES: usize = 1 << 20;

/// The specialization pass (see the module docs).
pub struct Specialize {
    /// Static shape for each named graph input.
    pub inputs: Vec<(String, Vec<usize>)>,
    /// Largest node result in bytes that is folded to a constant; bigger results stay nodes.
    pub fold_budget: usize,
}

impl Specialize {
    /// Specializes to `inputs` with the default folding budget.
    pub fn new(inputs: Vec<(String, Vec<usize>)>) -> Self {
        Specialize {
            inputs,
            fold_budget: FOLD_BUDGET_BYTES,
        }
    }
}

impl Pass for Specialize {
    fn name(&self) -> &'static str {
        "specialize"
    }

    fn run(&self, graph: &mut Graph) -> Result<String> {
        for &id in &graph.inputs.clone() {
            let v = &graph.values[id];
            let decl =
                v.ty.clone()
                    .ok_or_else(|| Error::Invalid(format!("input '{}' has no type", v.name)))?;
            let shape = match self.inputs.iter().find(|(n, _)| *n == v.name) {
                Some((_, s)) => s.clone(),
                None => decl.static_shape().ok_or_else(|| {
                    Error::Shape(format!(
                        "input '{}' has symbolic shape {decl}; give it a static shape",
                        v.name
                    ))
                })?,
            };
            let fits = decl.shape.len() == shape.len()
                && decl
                    .shape
                    .iter()
                    .zip(&shape)
                    .all(|(d, &n)| matches!(d, Dim::Sym(_)) || *d == Dim::Known(n));
            if !fits {
                return Err(Error::Shape(format!(
                    "input '{}' is declared {decl}; it cannot take shape {shape:?}",
                    v.name
                )));
            }
            graph.values[id].ty = Some(TensorType::known(decl.dtype, &shape));
        }

        let nodes = std::mem::take(&mut graph.nodes);
        let (before, mut folded) = (nodes.len(), 0);
        for mut node in nodes {
            // CastLike is a Cast once its second input's type is known.
            if node.op == Op::CastLike {
                if let Some(t) = node.inputs.get(1).copied().flatten() {
                    if let Some(ty) = &graph.values[t].ty {
                        node.op = Op::Cast { to: ty.dtype };
                        node.inputs.truncate(1);
                    }
                }
            }
            // Flatten is a Reshape to a constant target once the input's shape is known.
            if let (Op::Flatten { axis }, Some(x)) =
                (&node.op, node.inputs.first().copied().flatten())
            {
                if let Some(s) = graph.values[x].ty.as_ref().and_then(|t| t.static_shape()) {
                    if let Ok(t) = crate::ops::shape::flatten_shape(&s, *axis) {
                        let target: Vec<i64> = t.iter().map(|&d| d as i64).collect();
                        let name = format!("{}/shape", node.name);
                        let c = graph.add_const(name, Tensor::from_vec(vec![2], target));
                        node.op = Op::Reshape { allow_zero: false };
                        node.inputs.push(Some(c));
                    }
                }
            }
            let node_err = |msg: String| Error::Node {
                node: node.name.clone(),
                op: node.op.name().into(),
                msg,
            };
            let shapes: Vec<Option<(crate::ir::DType, Vec<usize>)>> = node
                .inputs
                .iter()
                .map(|i| {
                    i.map(|i| {
                        let v = &graph.values[i];
                        let ty = v.ty.as_ref().ok_or_else(|| {
                            node_err(format!("input '{}' has no known type", v.name))
                        })?;
                        let s = ty.static_shape().ok_or_else(|| {
                            node_err(format!("input '{}' has symbolic type {ty}", v.name))
                        })?;
                        Ok((ty.dtype, s))
                    })
                    .transpose()
                })
                .collect::<Result<_>>()?;
            let ins: Vec<Option<InferIn>> = node
                .inputs
                .iter()
                .zip(&shapes)
                .map(|(i, s)| {
                    i.zip(s.as_ref()).map(|(i, (dt, sh))| InferIn {
                        dtype: *dt,
                        shape: sh,
                        konst: graph.values[i].konst.as_ref(),
                    })
                })
                .collect();
            let out_types = node.op.infer(&ins).map_err(|e| node_err(e.0))?;
            if out_types.len() != node.outputs.len() {
                return Err(node_err(format!(
                    "has {} outputs, the op makes {}",
                    node.outputs.len(),
                    out_types.len()
                )));
            }
            let out_bytes: usize = out_types
                .iter()
                .map(|(d, s)| crate::ir::numel(s) * d.size())
                .sum();
            let all_const = ins.iter().flatten().all(|i| i.konst.is_some());
            let results: Option<Vec<Tensor>> = match &node.op {
                // A shape is known from the type alone.
                Op::Shape { .. } => {
                    let (_, s) = shapes[0].as_ref().expect("Shape has an input");
                    Some(vec![Tensor::from_vec(
                        out_types[0].1.clone(),
                        shape_slice(&node.op, s),
                    )])
                }
                _ if all_const && out_bytes <= self.fold_budget => {
                    let consts: Vec<Option<&Tensor>> =
                        ins.iter().map(|i| i.and_then(|i| i.konst)).collect();
                    Some(node.op.eval(&consts).map_err(|e| node_err(e.0))?)
                }
                _ => None,
            };
            match results {
                Some(ts) => {
                    folded += 1;
                    for (&o, t) in node.outputs.iter().zip(ts) {
                        graph.values[o].ty = Some(TensorType::known(t.dtype(), t.shape()));
                        graph.values[o].konst = Some(t);
                    }
                }
                None => {
                    for (&o, (dt, s)) in node.outputs.iter().zip(&out_types) {
                        graph.values[o].ty = Some(TensorType::known(*dt, s));
                    }
                    graph.nodes.push(node);
                }
            }
        }
        let dead = graph.remove_dead();
        check_static(graph)?;
        Ok(format!(
            "{before} nodes -> {}: {folded} folded, {dead} dead removed",
            graph.nodes.len()
        ))
    }
}

fn shape_slice(op: &Op, s: &[usize]) -> Vec<i64> {
    let Op::Shape { start, end } = op else {
        unreachable!()
    };
    let r = s.len() as i64;
    let c = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let (a, b) = (c(*start), c(end.unwrap_or(r)));
    s[a..b.max(a)].iter().map(|&d| d as i64).collect()
}

/// After specialization: every value a node touches is static, and no shape-only op is left.
pub fn check_static(graph: &Graph) -> Result<()> {
    let survivors: Vec<String> = graph
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.op,
                Op::Shape { .. } | Op::NonZero | Op::ConstantOfShape { .. }
            )
        })
        .map(|n| format!("'{}' ({})", n.name, n.op.name()))
        .collect();
    if !survivors.is_empty() {
        return Err(Error::Shape(format!(
            "shape computations survived specialization: {}",
            survivors.join(", ")
        )));
    }
    for n in &graph.nodes {
        for &v in n.inputs.iter().flatten().chain(&n.outputs) {
            let ok = graph.values[v]
                .ty
                .as_ref()
                .is_some_and(|t| t.static_shape().is_some());
            if !ok {
                return Err(Error::Shape(format!(
                    "value '{}' of node '{}' has no static shape",
                    graph.values[v].name, n.name
                )));
            }
        }
    }
    Ok(())
}
