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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpt2Config {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub vocab: usize,
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

/// The token input: the single rank-3 i64 graph input `[B, 1, L]`.
pub fn token_input(graph: &Graph) -> Result<(String, Vec<Dim>)> {
    let [id] = graph.inputs[..] else {
        return Err(Error::Shape(format!(
            "a GPT-2 graph has one input, this one has {}",
            graph.inputs.len()
        )));
    };
    let v = &graph.values[id];
    match &v.ty {
        Some(t) if t.dtype == DType::I64 && t.shape.len() == 3 => {
            Ok((v.name.clone(), t.shape.clone()))
        }
        Some(t) => Err(Error::Shape(format!(
            "input '{}' is {t}; a GPT-2 token input is i64[B,1,L]",
            v.name
        ))),
        None => Err(Error::Shape(format!("input '{}' has no type", v.name))),
    }
}

/// Largest sequence length the input allows: the declared length if static, else none.
fn declared_len(dims: &[Dim]) -> Option<usize> {
    match dims.get(2) {
        Some(Dim::Known(n)) => Some(*n),
        _ => None,
    }
}

impl Gpt2Config {
    /// Reads the configuration from a raw (unspecialized) graph.
    pub fn derive(graph: &Graph) -> Result<Gpt2Config> {
        let (name, dims) = token_input(graph)?;
        let probe_len = declared_len(&dims).unwrap_or(1);
        let g = crate::compile_graph(graph, vec![(name, vec![1, 1, probe_len])], |_, _, _| {})?;
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
            [1, 1, l, v] if l == probe_len => v,
            _ => {
                return Err(not(format!(
                    "output 0 has shape {logits:?}, expected [1,1,L,vocab]"
                )))
            }
        };
        let presents: Vec<Vec<usize>> = g.outputs[1..].iter().map(|&o| shape(o)).collect();
        let (n_head, head_dim) = match presents.first().map(|p| &p[..]) {
            Some(&[2, 1, h, l, d]) if l == probe_len => (h, d),
            p => {
                return Err(not(format!(
                    "output 1 has shape {p:?}, expected a present [2,1,heads,L,head_dim]"
                )))
            }
        };
        if presents
            .iter()
            .any(|p| p[..] != [2, 1, n_head, probe_len, head_dim])
        {
            return Err(not("the present outputs differ in shape".into()));
        }
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
            n_layer: presents.len(),
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
