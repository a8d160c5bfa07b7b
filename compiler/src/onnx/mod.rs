//! ONNX loading: file → `ModelProto` (prost, zero-copy) → IR `Graph`.
//!
//! The model file is mapped into memory, not read (`crate::mapped`); tensor `raw_data` fields are
//! slices of the mapping, and tensors kept in external-data files (`external`) become slices
//! of those files' mappings, so the weights are never copied while loading. Import checks
//! what the IR relies on (a graph, a default-domain opset, every name defined, topological
//! order) and reports all unsupported nodes at once.

pub mod external;
pub mod inline;
pub mod proto;

use crate::attrs::{Attr, AttrValue, Attrs, Untyped};
use crate::error::{Error, Result, UnsupportedNode};
use crate::ir::{DType, Dim, Graph, ModelMeta, Node, Tensor, TensorType, ValueId};
use crate::ops::Op;
use bytes::Bytes;
use external::DataFile;
use prost::Message;
use proto::{AttributeProto, AttributeType, ModelProto, TensorProto, ValueInfoProto};
use std::collections::HashMap;
use std::path::Path;

/// Newest ONNX IR version we know the layout of.
const MAX_IR_VERSION: i64 = 11;

/// A model decoded from its file, with the external-data files its tensors use.
#[derive(Debug)]
pub struct Loaded {
    /// The model; every tensor holds its bytes (external ones as slices of `data_files`).
    pub model: ModelProto,
    /// The external-data files, each mapped once (empty for a self-contained model).
    pub data_files: Vec<DataFile>,
}

/// Maps a model file into memory, decodes it and resolves its external data (relative to
/// the file's folder). The returned protos borrow nothing: their byte fields share the
/// mappings by reference count.
pub fn load(path: &Path) -> Result<ModelProto> {
    Ok(load_files(path)?.model)
}

/// `load`, also returning the external-data files the model uses.
pub fn load_files(path: &Path) -> Result<Loaded> {
    let data = map_model(path)?;
    decode_at(data, path)
}

/// Maps the model file `path` (an `Error::Io` naming it when that fails).
pub fn map_model(path: &Path) -> Result<Bytes> {
    crate::mapped::map_file(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Decodes the bytes of the model file `path` and resolves its external data against the
/// file's folder.
pub fn decode_at(data: Bytes, path: &Path) -> Result<Loaded> {
    let mut model = decode(data, &path.display().to_string())?;
    let data_files = external::resolve(&mut model, path)?;
    Ok(Loaded { model, data_files })
}

/// Decodes a model from bytes; `what` names the source in messages. External data is not
/// resolved (there is no folder to resolve it against): import refuses external tensors.
pub fn decode(data: Bytes, what: &str) -> Result<ModelProto> {
    let not_onnx = |reason: String| Error::NotOnnx {
        path: what.to_string(),
        reason,
    };
    if data.is_empty() {
        return Err(not_onnx("the file is empty".into()));
    }
    let model = ModelProto::decode(data).map_err(|e| {
        not_onnx(format!(
            "protobuf decoding failed ({e}); the file is truncated, corrupt or not ONNX"
        ))
    })?;
    if model.ir_version < 1 || model.ir_version > MAX_IR_VERSION {
        return Err(not_onnx(format!(
            "ir_version is {}, expected 1..={MAX_IR_VERSION}",
            model.ir_version
        )));
    }
    if model.graph.is_none() {
        return Err(not_onnx("the model has no graph".into()));
    }
    Ok(model)
}

/// Loads a model file straight into the IR.
pub fn load_graph(path: &Path) -> Result<Graph> {
    import(&load(path)?)
}

/// Converts a `TensorProto` into a tensor, sharing `raw_data` without copying.
pub fn tensor_from_proto(t: &TensorProto) -> std::result::Result<Tensor, String> {
    let name = if t.name.is_empty() {
        "<unnamed>"
    } else {
        &t.name
    };
    match t.data_location {
        external::EXTERNAL => {
            let loc = t
                .external_data
                .iter()
                .find(|e| e.key == "location")
                .map_or("?", |e| e.value.as_str());
            return Err(format!(
                "tensor '{name}' keeps its data in an external file ('{loc}'), which is only read when the model is loaded from its file"
            ));
        }
        0 if !t.external_data.is_empty() => {
            return Err(format!(
                "tensor '{name}' has external_data entries but data_location DEFAULT; external data needs data_location EXTERNAL (1)"
            ));
        }
        0 => {}
        n => return Err(format!("tensor '{name}' has an unknown data_location {n}")),
    }
    if t.segment.is_some() {
        return Err(format!(
            "tensor '{name}' is segmented, which is not supported"
        ));
    }
    let dtype = DType::from_onnx(t.data_type)
        .map_err(|n| format!("tensor '{name}' has unsupported data type {n}"))?;
    let shape = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("tensor '{name}' has a negative dimension {d}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let n = crate::ir::bounded_numel(&shape).ok_or_else(|| {
        format!("tensor '{name}' shape {shape:?} overflows the limit of 2^40 elements")
    })?;
    let bad = |found: usize| {
        format!("tensor '{name}' of shape {shape:?} needs {n} elements, found {found}")
    };
    if !t.raw_data.is_empty() || n == 0 {
        return Tensor::from_raw(dtype, shape.clone(), t.raw_data.clone())
            .map_err(|e| format!("tensor '{name}': {e}"));
    }
    let tensor = match dtype {
        DType::F32 if t.float_data.len() == n => Tensor::from_vec(shape, t.float_data.clone()),
        DType::F64 if t.double_data.len() == n => Tensor::from_vec(shape, t.double_data.clone()),
        DType::I64 if t.int64_data.len() == n => Tensor::from_vec(shape, t.int64_data.clone()),
        DType::I32 if t.int32_data.len() == n => Tensor::from_vec(shape, t.int32_data.clone()),
        DType::I8 if t.int32_data.len() == n => {
            Tensor::from_vec(shape, t.int32_data.iter().map(|&v| v as i8).collect())
        }
        DType::U8 if t.int32_data.len() == n => {
            Tensor::from_vec(shape, t.int32_data.iter().map(|&v| v as u8).collect())
        }
        DType::Bool if t.int32_data.len() == n => {
            Tensor::from_vec(shape, t.int32_data.iter().map(|&v| v != 0).collect())
        }
        DType::F32 => return Err(bad(t.float_data.len())),
        DType::F64 => return Err(bad(t.double_data.len())),
        DType::I64 => return Err(bad(t.int64_data.len())),
        _ => return Err(bad(t.int32_data.len())),
    };
    Ok(tensor)
}

/// Converts a node's attributes for the ops. Each value keeps its declared type, which the
/// getter an op reads it with checks; a tensor is decoded here, and a failure to decode it is
/// kept for the read.
fn attrs_from_proto(attributes: &[AttributeProto]) -> Attrs {
    Attrs(
        attributes
            .iter()
            .map(|a| Attr {
                name: a.name.clone(),
                value: attr_value(a),
            })
            .collect(),
    )
}

fn attr_value(a: &AttributeProto) -> AttrValue {
    let tensor = || {
        let t =
            a.t.as_ref()
                .ok_or_else(|| format!("attribute '{}' has no tensor", a.name))?;
        tensor_from_proto(t)
    };
    match AttributeType::try_from(a.r#type) {
        Ok(AttributeType::Undefined) => AttrValue::Untyped(Box::new(Untyped {
            int: a.i,
            float: a.f,
            string: a.s.to_vec(),
            ints: a.ints.clone(),
            tensor: tensor(),
        })),
        Ok(AttributeType::Int) => AttrValue::Int(a.i),
        Ok(AttributeType::Float) => AttrValue::Float(a.f),
        Ok(AttributeType::String) => AttrValue::String(a.s.to_vec()),
        Ok(AttributeType::Ints) => AttrValue::Ints(a.ints.clone()),
        Ok(AttributeType::Tensor) => AttrValue::Tensor(tensor()),
        Ok(other) => AttrValue::Other(format!("{other:?}")),
        Err(_) => AttrValue::Other("unknown".into()),
    }
}

fn value_type(vi: &ValueInfoProto) -> Result<Option<TensorType>> {
    let Some(tt) = vi.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) else {
        return Ok(None);
    };
    let dtype = DType::from_onnx(tt.elem_type)
        .map_err(|n| Error::Invalid(format!("'{}' has unsupported data type {n}", vi.name)))?;
    let Some(shape) = &tt.shape else {
        return Ok(None);
    };
    let dims: Vec<Dim> = shape
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| match &d.value {
            Some(proto::DimensionValue::DimValue(v)) if *v >= 0 => Dim::Known(*v as usize),
            Some(proto::DimensionValue::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
            _ => Dim::Sym(format!("{}_dim{i}", vi.name)),
        })
        .collect();
    let known: Vec<usize> = dims
        .iter()
        .filter_map(|d| match d {
            Dim::Known(n) => Some(*n),
            Dim::Sym(_) => None,
        })
        .collect();
    if crate::ir::bounded_numel(&known).is_none() {
        return Err(Error::Invalid(format!(
            "'{}' is declared with dims {known:?}, more than 2^40 elements",
            vi.name
        )));
    }
    Ok(Some(TensorType { dtype, shape: dims }))
}

/// `Constant` nodes become constant values: one of their value attributes is the data.
fn constant_value(node: &proto::NodeProto) -> std::result::Result<Tensor, String> {
    let a = attrs_from_proto(&node.attribute);
    a.only(&[
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
    ])?;
    if let Some(t) = a.tensor("value")? {
        return Ok(t);
    }
    if let Some(i) = a.int("value_int")? {
        return Ok(Tensor::scalar(i));
    }
    if let Some(v) = a.ints("value_ints")? {
        return Ok(Tensor::from_vec(vec![v.len()], v));
    }
    let attr = node
        .attribute
        .iter()
        .find(|x| x.name == "value_float" || x.name == "value_floats");
    match attr {
        Some(x) if x.name == "value_float" => Ok(Tensor::scalar(x.f)),
        Some(x) => Ok(Tensor::from_vec(vec![x.floats.len()], x.floats.clone())),
        None => Err("Constant without a supported value attribute".into()),
    }
}

/// Imports a decoded model into the IR.
pub fn import(model: &ModelProto) -> Result<Graph> {
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Invalid("no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| {
            Error::Invalid("the model imports no opset of the default ONNX domain".into())
        })?;
    let mut graph = Graph {
        meta: ModelMeta {
            ir_version: model.ir_version,
            producer: format!("{} {}", model.producer_name, model.producer_version)
                .trim()
                .to_string(),
            graph_name: g.name.clone(),
            opset,
        },
        ..Default::default()
    };
    let mut names: HashMap<String, ValueId> = HashMap::new();
    let define =
        |graph: &mut Graph, names: &mut HashMap<String, ValueId>, name: &str, id: ValueId| {
            if names.insert(name.to_string(), id).is_some() {
                return Err(Error::Invalid(format!(
                    "'{name}' is defined more than once"
                )));
            }
            let _ = graph;
            Ok(())
        };

    for t in &g.initializer {
        let tensor = tensor_from_proto(t).map_err(Error::Invalid)?;
        let id = graph.add_const(t.name.clone(), tensor);
        define(&mut graph, &mut names, &t.name, id)?;
    }
    for vi in &g.input {
        if names.contains_key(&vi.name) {
            continue; // an initializer listed as input (IR < 4): a constant here
        }
        let ty = value_type(vi)?.ok_or_else(|| {
            Error::Invalid(format!(
                "graph input '{}' has no tensor type with a shape",
                vi.name
            ))
        })?;
        let id = graph.add_value(vi.name.clone(), Some(ty));
        define(&mut graph, &mut names, &vi.name, id)?;
        graph.inputs.push(id);
    }

    let mut unsupported = Vec::new();
    let mut pending: Vec<(String, Op, Vec<String>, Vec<String>)> = Vec::new();
    let (flat, _functions) = inline::flatten(model, opset)?;
    // Sequences exist only between SplitToSequence and the SequenceAt nodes reading them.
    let sequences: HashMap<&str, &proto::NodeProto> = flat
        .iter()
        .filter(|f| f.node.op_type == "SplitToSequence" && f.node.domain.is_empty())
        .filter_map(|f| f.node.output.first().map(|o| (o.as_str(), &f.node)))
        .collect();
    for f in &flat {
        let (n, opset) = (&f.node, f.opset);
        let name = n.name.clone();
        let unsupported_node = |reason: String| UnsupportedNode {
            node: name.clone(),
            op_type: n.op_type.clone(),
            domain: n.domain.clone(),
            opset,
            reason,
        };
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            unsupported.push(unsupported_node(
                "custom op domains are not supported (and the model defines no function of that name)".into(),
            ));
            continue;
        }
        if let Some(s) = n.input.iter().find(|i| sequences.contains_key(i.as_str())) {
            if n.op_type != "SequenceAt" || n.input.first() != Some(s) {
                unsupported.push(unsupported_node(format!(
                    "reads the sequence '{s}'; only SequenceAt of a SplitToSequence is supported"
                )));
                continue;
            }
        }
        // Optional outputs that are not produced have empty names.
        let mut outputs = n.output.clone();
        while outputs.last().is_some_and(|o| o.is_empty()) {
            outputs.pop();
        }
        if n.op_type == "Constant" {
            match constant_value(n) {
                Ok(t) if outputs.len() == 1 => {
                    let id = graph.add_const(outputs[0].clone(), t);
                    define(&mut graph, &mut names, &outputs[0], id)?;
                }
                Ok(_) => unsupported.push(unsupported_node("Constant must have one output".into())),
                Err(e) => unsupported.push(unsupported_node(e)),
            }
            continue;
        }
        match n.op_type.as_str() {
            "SplitToSequence" => {
                // Checked here; computed by the SequenceAt nodes that read it.
                if let Err(e) =
                    crate::ops::slice::parse_split_to_sequence(&attrs_from_proto(&n.attribute))
                {
                    unsupported.push(unsupported_node(e));
                }
                continue;
            }
            "SequenceAt" => {
                let split = n.input.first().and_then(|s| sequences.get(s.as_str()));
                let part = split.map(|s| {
                    crate::ops::slice::parse_split_to_sequence(&attrs_from_proto(&s.attribute))
                        .map(|p| (p, s))
                });
                match part {
                    Some(Ok((p, s))) if n.input.len() == 2 && n.attribute.is_empty() => {
                        let x = s.input.first().cloned().unwrap_or_default();
                        let sizes = s.input.get(1).cloned().unwrap_or_default();
                        let inputs = vec![x, sizes, n.input[1].clone()];
                        pending.push((name, Op::SplitPart(p), inputs, outputs));
                    }
                    Some(Err(_)) => {} // reported at the SplitToSequence node
                    _ => unsupported.push(unsupported_node(
                        "only SequenceAt(SplitToSequence(x), position) is supported".into(),
                    )),
                }
                continue;
            }
            _ => {}
        }
        match Op::parse(
            &n.op_type,
            &attrs_from_proto(&n.attribute),
            opset,
            &n.output,
        ) {
            Ok(op) => pending.push((name, op, n.input.clone(), outputs)),
            Err(reason) => unsupported.push(unsupported_node(reason)),
        }
    }
    if !unsupported.is_empty() {
        return Err(Error::Unsupported(unsupported));
    }

    // Define every node output first, so wiring does not depend on the file's node order.
    let mut outs = Vec::with_capacity(pending.len());
    for (_, _, _, outputs) in &pending {
        let mut ids = Vec::new();
        for o in outputs {
            let id = graph.add_value(o.clone(), None);
            define(&mut graph, &mut names, o, id)?;
            ids.push(id);
        }
        outs.push(ids);
    }
    let mut nodes = Vec::with_capacity(pending.len());
    for ((name, op, inputs, _), outputs) in pending.into_iter().zip(outs) {
        let inputs = inputs
            .iter()
            .map(|i| {
                if i.is_empty() {
                    return Ok(None);
                }
                names.get(i).copied().map(Some).ok_or_else(|| {
                    Error::Invalid(format!(
                        "node '{name}' uses '{i}', which no node, input or initializer defines"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        nodes.push(Node {
            name,
            op,
            inputs,
            outputs,
        });
    }
    graph.nodes = topo_sort(&graph, nodes)?;

    for vi in &g.output {
        let id = *names
            .get(&vi.name)
            .ok_or_else(|| Error::Invalid(format!("graph output '{}' is not defined", vi.name)))?;
        if graph.values[id].ty.is_none() {
            graph.values[id].ty = value_type(vi)?;
        }
        graph.outputs.push(id);
    }
    if graph.outputs.is_empty() {
        return Err(Error::Invalid("the graph has no outputs".into()));
    }
    graph.validate().map_err(Error::Invalid)?;
    Ok(graph)
}

/// Orders nodes so every input is defined before use (ONNX files should already be in this
/// order; a stable sort keeps it when they are).
fn topo_sort(graph: &Graph, nodes: Vec<Node>) -> Result<Vec<Node>> {
    let mut ready = vec![false; graph.values.len()];
    for &i in &graph.inputs {
        ready[i] = true;
    }
    for (id, v) in graph.values.iter().enumerate() {
        if v.konst.is_some() {
            ready[id] = true;
        }
    }
    let mut left: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(left.len());
    loop {
        let mut progressed = false;
        for slot in left.iter_mut() {
            let Some(n) = slot else { continue };
            if n.inputs.iter().flatten().all(|&i| ready[i]) {
                for &o in &n.outputs {
                    ready[o] = true;
                }
                out.push(slot.take().expect("present"));
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    if let Some(n) = left.into_iter().flatten().next() {
        return Err(Error::Invalid(format!(
            "the graph has a cycle through node '{}'",
            n.name
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, r#type: i32, f: impl FnOnce(&mut AttributeProto)) -> AttributeProto {
        let mut a = AttributeProto {
            name: name.into(),
            r#type,
            ..Default::default()
        };
        f(&mut a);
        a
    }

    #[test]
    fn a_declared_type_is_checked_only_by_the_getter_that_reads_it() {
        let a = attrs_from_proto(&[
            attr("axis", AttributeType::Ints as i32, |a| a.ints = vec![1, 2]),
            attr("g", AttributeType::Graph as i32, |_| {}),
            attr("odd", 99, |_| {}),
        ]);
        assert_eq!(a.only(&["axis", "g", "odd"]), Ok(()));
        assert_eq!(a.only(&["axis"]), Err("unexpected attribute 'g'".into()));
        assert_eq!(a.ints("axis"), Ok(Some(vec![1, 2])));
        assert_eq!(
            a.int("axis"),
            Err("attribute 'axis' should be Int, found \"Ints\"".into())
        );
        assert_eq!(
            a.float_or("g", 1.0),
            Err("attribute 'g' should be Float, found \"Graph\"".into())
        );
        assert_eq!(
            a.string("odd"),
            Err("attribute 'odd' should be String, found \"unknown\"".into())
        );
        assert_eq!(a.int_or("missing", 7), Ok(7));
    }

    #[test]
    fn an_untyped_attribute_is_read_from_the_field_of_the_requested_type() {
        let a = attrs_from_proto(&[attr("x", 0, |a| {
            a.i = 3;
            a.f = 0.5;
            a.ints = vec![4];
            a.s = Bytes::from_static(b"tanh");
        })]);
        assert_eq!(a.int("x"), Ok(Some(3)));
        assert_eq!(a.float_or("x", 1.0), Ok(0.5));
        assert_eq!(a.ints("x"), Ok(Some(vec![4])));
        assert_eq!(a.string("x"), Ok(Some("tanh".into())));
        assert_eq!(a.tensor("x"), Err("attribute 'x' has no tensor".into()));
    }

    #[test]
    fn tensor_and_string_values_are_checked_when_read() {
        let bad = TensorProto {
            name: "t".into(),
            data_type: 8, // STRING
            ..Default::default()
        };
        let a = attrs_from_proto(&[
            attr("value", AttributeType::Tensor as i32, |a| a.t = Some(bad)),
            attr("none", AttributeType::Tensor as i32, |_| {}),
            attr("mode", AttributeType::String as i32, |a| {
                a.s = Bytes::from_static(&[0xff])
            }),
        ]);
        assert_eq!(a.only(&["value", "none", "mode"]), Ok(()));
        let e = a.tensor("value").unwrap_err();
        assert!(e.contains("tensor 't' has unsupported data type"), "{e}");
        assert_eq!(
            a.tensor("none"),
            Err("attribute 'none' has no tensor".into())
        );
        assert_eq!(
            a.string("mode"),
            Err("attribute 'mode' is not UTF-8".into())
        );
        let good = TensorProto {
            dims: vec![2],
            data_type: 7,
            int64_data: vec![5, 6],
            ..Default::default()
        };
        let a = attrs_from_proto(&[attr("value", AttributeType::Tensor as i32, |a| {
            a.t = Some(good)
        })]);
        assert_eq!(
            a.tensor("value"),
            Ok(Some(Tensor::from_vec(vec![2], vec![5i64, 6])))
        );
    }
}
