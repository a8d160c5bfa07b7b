//! What makes a graph a GPT-2 LM head: its configuration, read from the graph itself.
//!
//! Nothing here is assumed: layers and heads come from the present outputs' static types,
//! the vocabulary from the logits, the width from the token embedding, the context from
//! the position embedding. A graph that is not shaped like that is still a valid graph for
//! the compiler; it just has no `Gpt2Config`.

use crate::error::{Error, Result};
use crate::ir::{DType, Dim, Graph};
use crate::ops::Op;
use std::fmt;

/// GPT-2 hyperparameters, as read from the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpt2Config {
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Embedding width (hidden size).
    pub n_embd: usize,
    /// Vocabulary size: logits per position.
    pub vocab: usize,
    /// Context length: rows of the position embedding.
    pub n_ctx: usize,
}

impl fmt::Display for Gpt2Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "layers {}, heads {}, embedding width {}, vocabulary {}, context {}",
            self.n_layer, self.n_head, self.n_embd, self.vocab, self.n_ctx
        )
    }
}

/// Graph inputs a GPT-2 export may have besides its tokens, recognised by name.
fn side_input(name: &str) -> Option<SideInput> {
    let n = name.to_ascii_lowercase();
    if n.starts_with("past") || n.contains("past_key_values") || n.contains(".past") {
        Some(SideInput::Past)
    } else if n.contains("attention_mask") {
        Some(SideInput::Mask)
    } else if n.contains("position_ids") {
        Some(SideInput::Positions)
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SideInput {
    Mask,
    Positions,
    Past,
}

/// The token input: the i64 graph input `[B, 1, L]` (the zoo's `input1`) or `[B, L]`
/// (`input_ids` of later exporters). Other inputs must be side inputs that
/// `bind_side_inputs` removes first.
pub fn token_input(graph: &Graph) -> Result<(String, Vec<Dim>)> {
    let tokens: Vec<usize> = graph
        .inputs
        .iter()
        .copied()
        .filter(|&i| side_input(&graph.values[i].name).is_none())
        .collect();
    let [id] = tokens[..] else {
        let names: Vec<&str> = graph
            .inputs
            .iter()
            .map(|&i| graph.values[i].name.as_str())
            .collect();
        return Err(Error::Shape(format!(
            "a GPT-2 graph has one token input (besides attention_mask and position_ids); this one has inputs {names:?}"
        )));
    };
    if graph.inputs.len() > 1 {
        let side: Vec<&str> = graph
            .inputs
            .iter()
            .filter(|&&i| i != id)
            .map(|&i| graph.values[i].name.as_str())
            .collect();
        return Err(Error::Shape(format!(
            "the graph still has the inputs {side:?} besides its tokens; bind them first (gpt2::bind_side_inputs)"
        )));
    }
    let v = &graph.values[id];
    match &v.ty {
        Some(t) if t.dtype == DType::I64 && (t.shape.len() == 3 || t.shape.len() == 2) => {
            Ok((v.name.clone(), t.shape.clone()))
        }
        Some(t) => Err(Error::Shape(format!(
            "input '{}' is {t}; a GPT-2 token input is i64[B,1,L] or i64[B,L]",
            v.name
        ))),
        None => Err(Error::Shape(format!("input '{}' has no type", v.name))),
    }
}

/// The static shape of the token input for one sequence of `len` tokens.
pub fn token_shape(dims: &[Dim], len: usize) -> Vec<usize> {
    if dims.len() == 2 {
        vec![1, len]
    } else {
        vec![1, 1, len]
    }
}

/// The graph with its side inputs computed from the token input: `attention_mask` all
/// ones (every token is real: no padding) and `position_ids` counting from 0, which is
/// what generating or scoring one sequence passes. The graph still takes any length;
/// specialization folds both to constants. A graph that takes a cache as input
/// (`past_key_values…`, optimum's decoder-with-past) is refused: gpt2c derives the cache
/// from the graph without past inputs.
pub fn bind_side_inputs(graph: &Graph) -> Result<Graph> {
    use crate::ir::{Node, Tensor};
    let side: Vec<(usize, SideInput)> = graph
        .inputs
        .iter()
        .filter_map(|&i| side_input(&graph.values[i].name).map(|s| (i, s)))
        .collect();
    // Nothing to bind, or no other input to compute them from: not a GPT-2 graph's side
    // inputs (the graph compiles as it is).
    if side.is_empty() || side.len() == graph.inputs.len() {
        return Ok(graph.clone());
    }
    let past: Vec<&str> = side
        .iter()
        .filter(|(_, s)| *s == SideInput::Past)
        .map(|&(i, _)| graph.values[i].name.as_str())
        .collect();
    if !past.is_empty() {
        return Err(Error::Shape(format!(
            "the graph takes a key/value cache as inputs ({}); gpt2c derives the cache itself from the graph without past inputs (optimum's decoder_model.onnx, not decoder_with_past_model.onnx)",
            past.join(", ")
        )));
    }
    let mut g = graph.clone();
    g.inputs.retain(|i| !side.iter().any(|(s, _)| s == i));
    let (tokens, dims) = token_input(&g)?;
    let tok = g.inputs[0];
    for &(id, kind) in &side {
        let want_rank = 2;
        let ty = g.values[id].ty.clone();
        if !ty
            .as_ref()
            .is_some_and(|t| t.dtype == DType::I64 && t.shape.len() == want_rank && dims.len() == 2)
        {
            return Err(Error::Shape(format!(
                "input '{}' is {}; expected i64[B,L] beside the token input '{tokens}' i64[B,L]",
                g.values[id].name,
                ty.map_or("untyped".into(), |t| t.to_string())
            )));
        }
        let name = g.values[id].name.clone();
        let shape = g.add_value(format!("{name}/token_shape"), None);
        let mut nodes = vec![Node {
            name: format!("{name}/Shape"),
            op: Op::Shape {
                start: 0,
                end: None,
            },
            inputs: vec![Some(tok)],
            outputs: vec![shape],
        }];
        match kind {
            SideInput::Mask => {
                // ConstantOfShape(Shape(tokens), 1): no padding.
                nodes.push(Node {
                    name: format!("{name}/Ones"),
                    op: Op::ConstantOfShape {
                        value: Tensor::from_vec(vec![1], vec![1i64]),
                    },
                    inputs: vec![Some(shape)],
                    outputs: vec![id],
                });
            }
            SideInput::Positions => {
                // Expand(Unsqueeze(Range(0, L, 1), 0), Shape(tokens)): 0, 1, …, L−1.
                let last = g.add_const(format!("{name}/last"), Tensor::scalar(-1i64));
                let zero = g.add_const(format!("{name}/zero"), Tensor::scalar(0i64));
                let one = g.add_const(format!("{name}/one"), Tensor::scalar(1i64));
                let len = g.add_value(format!("{name}/len"), None);
                let range = g.add_value(format!("{name}/range"), None);
                let row = g.add_value(format!("{name}/row"), None);
                nodes.extend([
                    Node {
                        name: format!("{name}/Gather"),
                        op: Op::Gather { axis: 0 },
                        inputs: vec![Some(shape), Some(last)],
                        outputs: vec![len],
                    },
                    Node {
                        name: format!("{name}/Range"),
                        op: Op::Range,
                        inputs: vec![Some(zero), Some(len), Some(one)],
                        outputs: vec![range],
                    },
                    Node {
                        name: format!("{name}/Unsqueeze"),
                        op: Op::Unsqueeze {
                            axes: Some(vec![0]),
                        },
                        inputs: vec![Some(range)],
                        outputs: vec![row],
                    },
                    Node {
                        name: format!("{name}/Expand"),
                        op: Op::Expand,
                        inputs: vec![Some(row), Some(shape)],
                        outputs: vec![id],
                    },
                ]);
            }
            SideInput::Past => unreachable!("refused above"),
        }
        // The input's readers come later; its computation goes first.
        let rest = std::mem::take(&mut g.nodes);
        g.nodes = nodes;
        g.nodes.extend(rest);
    }
    g.validate().map_err(Error::Invalid)?;
    Ok(g)
}

/// Largest sequence length the input allows: the declared length if static, else none.
fn declared_len(dims: &[Dim]) -> Option<usize> {
    match dims.last() {
        Some(Dim::Known(n)) => Some(*n),
        _ => None,
    }
}

impl Gpt2Config {
    /// Reads the configuration from a raw (unspecialized) graph whose side inputs are
    /// bound (`bind_side_inputs`).
    ///
    /// Logits are output 0, `[1,1,L,vocab]` or `[1,L,vocab]`. Layers and heads come from
    /// the fused attention blocks, or, without them, from the presents: one `[2,1,H,L,D]`
    /// per layer (the zoo's) or a key and a value `[1,H,L,D]` per layer (Hugging Face's).
    pub fn derive(graph: &Graph) -> Result<Gpt2Config> {
        let (name, dims) = token_input(graph)?;
        let probe_len = declared_len(&dims).unwrap_or(1);
        let g = crate::compile_graph(
            graph,
            vec![(name, token_shape(&dims, probe_len))],
            |_, _, _| {},
        )?;
        let shape = |id: usize| {
            g.values[id]
                .ty
                .as_ref()
                .and_then(|t| t.static_shape())
                .unwrap_or_default()
        };
        let not = |why: String| Error::Shape(format!("not a GPT-2 LM-head graph: {why}"));
        let logits = shape(g.outputs[0]);
        let vocab = match logits[..] {
            [1, 1, l, v] | [1, l, v] if l == probe_len => v,
            _ => {
                return Err(not(format!(
                    "output 0 has shape {logits:?}, expected [1,1,L,vocab] or [1,L,vocab]"
                )))
            }
        };
        let presents: Vec<Vec<usize>> = g.outputs[1..].iter().map(|&o| shape(o)).collect();
        let attention: Vec<(usize, usize)> = g
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Attention(a) if a.causal => Some((a.heads, a.head_dim)),
                _ => None,
            })
            .collect();
        let (n_layer, n_head, head_dim) = match (presents.first().map(|p| &p[..]), &attention[..]) {
            (Some(&[2, 1, h, l, d]), _) if l == probe_len => {
                if presents.iter().any(|p| p[..] != [2, 1, h, probe_len, d]) {
                    return Err(not("the present outputs differ in shape".into()));
                }
                (presents.len(), h, d)
            }
            (Some(&[1, h, l, d]), _) if l == probe_len && presents.len() & 1 == 0 => {
                if presents.iter().any(|p| p[..] != [1, h, probe_len, d]) {
                    return Err(not("the present outputs differ in shape".into()));
                }
                (presents.len() / 2, h, d)
            }
            (None, [(h, d), ..]) if attention.iter().all(|a| a == &(*h, *d)) => {
                (attention.len(), *h, *d)
            }
            (p, _) => {
                return Err(not(format!(
                    "output 1 has shape {p:?}, expected a present [2,1,heads,L,head_dim] or [1,heads,L,head_dim], and no fused attention tells the layers"
                )))
            }
        };
        let n_embd = n_head * head_dim;
        // Embedding tables: 2-D float constants read by Gather in the raw graph.
        let tables: Vec<usize> = graph
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Gather { axis: 0 }))
            .filter_map(|n| n.inputs[0].and_then(|i| graph.konst(i)))
            .filter(|t| t.dtype() == DType::F32 && t.rank() == 2 && t.shape()[1] == n_embd)
            .map(|t| t.shape()[0])
            .collect();
        if !tables.contains(&vocab) {
            return Err(not(format!("no [{vocab}, {n_embd}] token embedding found")));
        }
        let n_ctx = match tables
            .iter()
            .copied()
            .filter(|&r| r != vocab)
            .collect::<Vec<_>>()[..]
        {
            [c] => c,
            [] if tables.len() >= 2 => vocab,
            _ => {
                return Err(not(format!(
                    "cannot tell the position embedding among tables with rows {tables:?}"
                )))
            }
        };
        Ok(Gpt2Config {
            n_layer,
            n_head,
            n_embd,
            vocab,
            n_ctx,
        })
    }

    /// Checks that a sequence length is usable with this model and its declared input.
    pub fn check_len(&self, graph: &Graph, len: usize) -> Result<()> {
        if len == 0 {
            return Err(Error::Shape(
                "the sequence length must be at least 1".into(),
            ));
        }
        if len > self.n_ctx {
            return Err(Error::Shape(format!(
                "length {len} exceeds the model's context of {} tokens",
                self.n_ctx
            )));
        }
        let (name, dims) = token_input(graph)?;
        if let Some(n) = declared_len(&dims) {
            if n != len {
                return Err(Error::Shape(format!(
                    "input '{name}' has a static length of {n} (a converted model); it cannot run length {len}"
                )));
            }
        }
        Ok(())
    }
}
