//! Stores tied weights once. The GPT-2 export keeps the token embedding `wte [V, E]` and,
//! for the LM head, a constant-folded copy of its transpose `[E, V]`:
//!
//! ```text
//! ids ─► Gather(wte) ─► ...            ...─► MatMul(x, wteᵀ-copy)
//!                                      ==> MatMul(x, Transpose(wte))
//! ```
//! Every right-hand operand of MatMul/Gemm that is a 2-D constant equal to the transpose of
//! another 2-D constant becomes a `Transpose([1, 0])` of that constant. Code generation
//! reads such a transpose as a strided view (no copy), so the bytes are embedded once.

use super::Pass;
use crate::error::Result;
use crate::ir::{DType, Graph, Node, TensorType, ValueId};
use crate::ops::Op;

/// The tie-weights pass (see the module docs).
pub struct TieWeights;

/// Whether `b` is the transpose of `a` (both 2-D f32).
fn is_transpose(a: &crate::ir::Tensor, b: &crate::ir::Tensor) -> bool {
    let (r, c) = (a.shape()[0], a.shape()[1]);
    if b.shape() != [c, r] || a.dtype() != DType::F32 || b.dtype() != DType::F32 {
        return false;
    }
    let (ab, bb) = (a.bytes(), b.bytes());
    let same = (0..r).all(|i| {
        (0..c).all(|j| {
            ab[(i * c + j) * 4..(i * c + j) * 4 + 4] == bb[(j * r + i) * 4..(j * r + i) * 4 + 4]
        })
    });
    // Both tables were read whole (gpt2-xl: 2 × 320 MB); codegen reads them again later.
    a.release_pages();
    b.release_pages();
    same
}

impl Pass for TieWeights {
    fn name(&self) -> &'static str {
        "tie-weights"
    }

    fn run(&self, g: &mut Graph) -> Result<String> {
        let uses = g.use_counts();
        let mats: Vec<ValueId> = (0..g.values.len())
            .filter(|&v| {
                uses[v] > 0
                    && g.values[v]
                        .konst
                        .as_ref()
                        .is_some_and(|t| t.rank() == 2 && t.dtype() == DType::F32)
            })
            .collect();
        let mut tied = 0;
        let mut saved = 0;
        let mut i = 0;
        while i < g.nodes.len() {
            let n = &g.nodes[i];
            let b = match (&n.op, n.inputs.get(1).copied().flatten()) {
                (Op::MatMul | Op::Gemm { .. }, Some(b)) if mats.contains(&b) => b,
                _ => {
                    i += 1;
                    continue;
                }
            };
            let bt = g.values[b].konst.clone().expect("constant");
            let source = mats.iter().copied().find(|&a| {
                a != b && is_transpose(g.values[a].konst.as_ref().expect("constant"), &bt)
            });
            let Some(a) = source else {
                i += 1;
                continue;
            };
            let shape = bt.shape().to_vec();
            let name = format!("{}_tied", g.values[b].name);
            let t = g.add_value(name.clone(), Some(TensorType::known(DType::F32, &shape)));
            g.nodes.insert(
                i,
                Node {
                    name,
                    op: Op::Transpose {
                        perm: Some(vec![1, 0]),
                    },
                    inputs: vec![Some(a)],
                    outputs: vec![t],
                },
            );
            for n in &mut g.nodes[i + 1..] {
                if let Some(x) = n.inputs.get_mut(1) {
                    if *x == Some(b) && matches!(n.op, Op::MatMul | Op::Gemm { .. }) {
                        *x = Some(t);
                    }
                }
            }
            tied += 1;
            saved += bt.byte_len();
            i += 2;
        }
        let dead = g.remove_dead();
        Ok(format!(
            "{tied} tied weight(s) stored once ({saved} bytes saved), {dead} dead removed"
        ))
    }
}
