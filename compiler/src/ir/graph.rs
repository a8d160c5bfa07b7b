//! Graph, nodes and values.
//!
//! Values live in one table indexed by `ValueId`; a value is a graph input, the output of
//! exactly one node, or a constant (an initializer, a `Constant` node, or a folded result).
//! `nodes` is kept in topological order: every pass preserves that.

use super::{DType, Tensor};
use crate::ops::Op;
use std::collections::HashMap;
use std::fmt;

/// Index of a value in `Graph::values`.
pub type ValueId = usize;

/// One dimension of a tensor type: known, or a named symbol (only before specialization).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size fixed in the model or by specialization.
    Known(usize),
    /// A symbolic size, e.g. `sequence_length`.
    Sym(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// Element type and (possibly symbolic) shape of a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: Vec<Dim>,
}

impl TensorType {
    /// A type with a fully known shape.
    pub fn known(dtype: DType, shape: &[usize]) -> TensorType {
        TensorType {
            dtype,
            shape: shape.iter().map(|&d| Dim::Known(d)).collect(),
        }
    }

    /// The shape as numbers, if every dimension is known.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .iter()
            .map(|d| match d {
                Dim::Known(n) => Some(*n),
                Dim::Sym(_) => None,
            })
            .collect()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        write!(f, "{}[{}]", self.dtype, dims.join(","))
    }
}

/// One value of the graph: a graph input, a node output or a constant.
#[derive(Clone, Debug)]
pub struct Value {
    /// Name, from the model or given by the pass that made the value.
    pub name: String,
    /// `None` while unknown (intermediate values before specialization).
    pub ty: Option<TensorType>,
    /// The data of a constant value.
    pub konst: Option<Tensor>,
}

/// One op applied to values.
#[derive(Clone, Debug)]
pub struct Node {
    /// ONNX node name (for messages), or the name a pass gave it.
    pub name: String,
    /// The op with its attributes.
    pub op: Op,
    /// `None` for an omitted optional input (ONNX's empty name).
    pub inputs: Vec<Option<ValueId>>,
    /// Values the node produces, one per op output.
    pub outputs: Vec<ValueId>,
}

/// Where the model came from, for `inspect` and the generated header.
#[derive(Clone, Debug, Default)]
pub struct ModelMeta {
    /// ONNX IR version of the model file.
    pub ir_version: i64,
    /// Producer name and version, e.g. `pytorch 2.1.0`.
    pub producer: String,
    /// Name of the ONNX graph.
    pub graph_name: String,
    /// Opset of the default (`ai.onnx`) domain.
    pub opset: i64,
}

/// A model as the compiler sees it: the value table and the nodes over it.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Where the model came from.
    pub meta: ModelMeta,
    /// All values, indexed by `ValueId`.
    pub values: Vec<Value>,
    /// The nodes, in topological order.
    pub nodes: Vec<Node>,
    /// Graph inputs, in the model's order.
    pub inputs: Vec<ValueId>,
    /// Graph outputs, in the model's order.
    pub outputs: Vec<ValueId>,
}

impl Graph {
    /// Adds a value without data (an input or node output) and returns its id.
    pub fn add_value(&mut self, name: impl Into<String>, ty: Option<TensorType>) -> ValueId {
        self.values.push(Value {
            name: name.into(),
            ty,
            konst: None,
        });
        self.values.len() - 1
    }

    /// Adds a constant value, typed from its data, and returns its id.
    pub fn add_const(&mut self, name: impl Into<String>, t: Tensor) -> ValueId {
        let ty = TensorType::known(t.dtype(), t.shape());
        self.values.push(Value {
            name: name.into(),
            ty: Some(ty),
            konst: Some(t),
        });
        self.values.len() - 1
    }

    /// The value with this id.
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id]
    }

    /// The static shape of a value; empty when unknown (callers run after specialization).
    pub fn shape(&self, id: ValueId) -> Vec<usize> {
        self.values[id]
            .ty
            .as_ref()
            .and_then(|t| t.static_shape())
            .unwrap_or_default()
    }

    /// The data of a constant value.
    pub fn konst(&self, id: ValueId) -> Option<&Tensor> {
        self.values[id].konst.as_ref()
    }

    /// Number of uses of each value by nodes and graph outputs.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.values.len()];
        for n in &self.nodes {
            for i in n.inputs.iter().flatten() {
                uses[*i] += 1;
            }
        }
        for &o in &self.outputs {
            uses[o] += 1;
        }
        uses
    }

    /// The node producing each value, if any.
    pub fn producers(&self) -> HashMap<ValueId, usize> {
        let mut p = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for &o in &n.outputs {
                p.insert(o, i);
            }
        }
        p
    }

    /// Histogram of op names, sorted by name.
    pub fn op_histogram(&self) -> Vec<(&'static str, usize)> {
        let mut h: std::collections::BTreeMap<&'static str, usize> = Default::default();
        for n in &self.nodes {
            *h.entry(n.op.name()).or_default() += 1;
        }
        h.into_iter().collect()
    }

    /// Total bytes and element count of constant float tensors (the weights).
    pub fn weight_stats(&self) -> (usize, usize) {
        let uses = self.use_counts();
        let mut bytes = 0;
        let mut params = 0;
        for (id, v) in self.values.iter().enumerate() {
            if let (Some(t), true) = (&v.konst, uses[id] > 0) {
                if t.dtype().is_float() {
                    bytes += t.byte_len();
                    params += t.numel();
                }
            }
        }
        (bytes, params)
    }

    /// Removes nodes whose outputs nobody uses, and unused constants' data.
    /// Value ids stay valid (dead values keep their slot, without data).
    pub fn remove_dead(&mut self) -> usize {
        let before = self.nodes.len();
        loop {
            let uses = self.use_counts();
            let len = self.nodes.len();
            self.nodes
                .retain(|n| n.outputs.iter().any(|&o| uses[o] > 0));
            if self.nodes.len() == len {
                break;
            }
        }
        let uses = self.use_counts();
        for (id, v) in self.values.iter_mut().enumerate() {
            if uses[id] == 0 && !self.inputs.contains(&id) {
                v.konst = None;
            }
        }
        before - self.nodes.len()
    }

    /// Checks the structural invariants every pass must keep: topological order, one producer
    /// per value, no use of a value that has no data and no producer.
    pub fn validate(&self) -> Result<(), String> {
        let mut defined = vec![false; self.values.len()];
        for &i in &self.inputs {
            defined[i] = true;
        }
        for (id, v) in self.values.iter().enumerate() {
            if v.konst.is_some() {
                defined[id] = true;
            }
        }
        for n in &self.nodes {
            for &i in n.inputs.iter().flatten() {
                if !defined[i] {
                    return Err(format!(
                        "node '{}' uses '{}' before it is defined",
                        n.name, self.values[i].name
                    ));
                }
            }
            for &o in &n.outputs {
                if defined[o] {
                    return Err(format!(
                        "value '{}' is defined twice (by node '{}')",
                        self.values[o].name, n.name
                    ));
                }
                defined[o] = true;
            }
        }
        for &o in &self.outputs {
            if !defined[o] {
                return Err(format!(
                    "graph output '{}' is never computed",
                    self.values[o].name
                ));
            }
        }
        Ok(())
    }
}
