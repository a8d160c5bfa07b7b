//! Inlines model-local functions (ONNX IR 8+): every node that calls a function of the
//! model (same domain, name and overload) is replaced by the function's body, with the
//! body's values renamed under the calling node's name and attribute references
//! (`ref_attr_name`) resolved against the call's attributes or the function's defaults.
//! The dynamo exporter writes helpers such as onnxscript's `aten_getitem` this way.
//! Bodies may call other functions; recursion deeper than `MAX_DEPTH` is an error.

use super::proto::{AttributeProto, FunctionProto, ModelProto, NodeProto};
use crate::error::{Error, Result};
use std::collections::HashMap;

const MAX_DEPTH: usize = 32;

/// A node of the flattened graph with the default-domain opset it was written against
/// (a function body has its own opset imports).
pub struct FlatNode {
    /// The node; from a function body, with its values renamed under the calling node's name.
    pub node: NodeProto,
    /// The default-domain opset its op is read at.
    pub opset: i64,
}

fn default_opset(imports: &[super::proto::OperatorSetIdProto]) -> Option<i64> {
    imports
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
}

type Key<'a> = (&'a str, &'a str, &'a str);

/// The graph's nodes with every function call expanded; `opset` is the model's default
/// opset. Also returns the names of the functions that were inlined (for messages).
pub fn flatten(model: &ModelProto, opset: i64) -> Result<(Vec<FlatNode>, Vec<String>)> {
    let functions: HashMap<Key, &FunctionProto> = model
        .functions
        .iter()
        .map(|f| ((f.domain.as_str(), f.name.as_str(), f.overload.as_str()), f))
        .collect();
    let graph = model.graph.as_ref().expect("import checked the graph");
    let mut out = Vec::with_capacity(graph.node.len());
    let mut used = Vec::new();
    for (i, n) in graph.node.iter().enumerate() {
        expand(n.clone(), i, opset, &functions, 0, &mut out, &mut used)?;
    }
    used.sort();
    used.dedup();
    Ok((out, used))
}

fn expand(
    mut node: NodeProto,
    index: usize,
    opset: i64,
    functions: &HashMap<Key, &FunctionProto>,
    depth: usize,
    out: &mut Vec<FlatNode>,
    used: &mut Vec<String>,
) -> Result<()> {
    if node.name.is_empty() {
        node.name = format!("{}_{index}", node.op_type);
    }
    let key = (
        node.domain.as_str(),
        node.op_type.as_str(),
        node.overload.as_str(),
    );
    let Some(f) = functions.get(&key) else {
        out.push(FlatNode { node, opset });
        return Ok(());
    };
    if depth >= MAX_DEPTH {
        return Err(Error::Invalid(format!(
            "node '{}': calls to function '{}' nest deeper than {MAX_DEPTH}",
            node.name, f.name
        )));
    }
    used.push(if f.domain.is_empty() {
        f.name.clone()
    } else {
        format!("{}.{}", f.domain, f.name)
    });
    let body_opset = default_opset(&f.opset_import).unwrap_or(opset);
    // Formal parameter → actual name. Unset optional inputs and outputs map to "".
    let mut rename: HashMap<&str, String> = HashMap::new();
    for (i, formal) in f.input.iter().enumerate() {
        rename.insert(formal, node.input.get(i).cloned().unwrap_or_default());
    }
    for (i, formal) in f.output.iter().enumerate() {
        rename.insert(formal, node.output.get(i).cloned().unwrap_or_default());
    }
    let prefix = node.name.clone();
    let local = |name: &str| -> String {
        if name.is_empty() {
            return String::new();
        }
        match rename.get(name) {
            Some(actual) => actual.clone(),
            None => format!("{prefix}/{name}"),
        }
    };
    for (j, b) in f.node.iter().enumerate() {
        let mut inner = b.clone();
        inner.input = b.input.iter().map(|s| local(s)).collect();
        inner.output = b.output.iter().map(|s| local(s)).collect();
        inner.name = format!(
            "{prefix}/{}",
            if b.name.is_empty() {
                format!("{}_{j}", b.op_type)
            } else {
                b.name.clone()
            }
        );
        inner.attribute = resolve_attributes(&b.attribute, &node.attribute, f);
        expand(inner, j, body_opset, functions, depth + 1, out, used)?;
    }
    Ok(())
}

/// A body node's attributes with references to the function's attributes replaced by the
/// call's values (or the function's defaults); references to unset attributes are dropped,
/// which leaves the op's own default in force.
fn resolve_attributes(
    body: &[AttributeProto],
    call: &[AttributeProto],
    f: &FunctionProto,
) -> Vec<AttributeProto> {
    body.iter()
        .filter_map(|a| {
            if a.ref_attr_name.is_empty() {
                return Some(a.clone());
            }
            let given = call
                .iter()
                .find(|c| c.name == a.ref_attr_name)
                .or_else(|| f.attribute_proto.iter().find(|d| d.name == a.ref_attr_name))?;
            let mut v = given.clone();
            v.name = a.name.clone();
            v.ref_attr_name = String::new();
            Some(v)
        })
        .collect()
}
