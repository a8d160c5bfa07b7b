//! Folds chains of data movement into one copy from where the data starts:
//!
//! ```text
//! qkv ─► Split ─► Reshape ─► Transpose ─► k            ==> k = StridedCopy(qkv; offset, strides)
//! ```
//! Every copying node (Transpose, Slice, StridedCopy) whose input is itself the result of
//! copies (`views::view_of` looks through Split, Slice, Transpose, StridedCopy and the free
//! reshapes between them) becomes one `StridedCopy` of the chain's first value; the
//! copies it no longer needs die. GPT-2's keys and values, split from the fused QKV
//! projection and transposed to `[B, H, L, d]`, then each cost one copy instead of two.
//! Needs: static shapes. Outputs keep their values (and names).

use super::views::view_of;
use super::Pass;
use crate::error::Result;
use crate::ir::Graph;
use crate::ops::strided_copy::StridedCopy;
use crate::ops::Op;

/// The copy-folding pass (see the module docs).
pub struct FoldCopies;

impl Pass for FoldCopies {
    fn name(&self) -> &'static str {
        "fold-copies"
    }

    fn run(&self, g: &mut Graph) -> Result<String> {
        let producers = g.producers();
        let mut folded = Vec::new();
        for (i, n) in g.nodes.iter().enumerate() {
            if !matches!(
                n.op,
                Op::Transpose { .. } | Op::Slice { .. } | Op::StridedCopy(_)
            ) {
                continue;
            }
            let o = n.outputs[0];
            let view = view_of(g, &producers, o);
            // Only chains of two copies or more gain anything.
            if view.copies >= 2 {
                folded.push((i, view));
            }
        }
        let count = folded.len();
        for (i, view) in folded {
            let o = g.nodes[i].outputs[0];
            let copy = StridedCopy {
                offset: view.offset,
                strides: view.strides,
                shape: g.shape(o),
            };
            let n = &mut g.nodes[i];
            n.op = Op::StridedCopy(copy);
            n.inputs = vec![Some(view.base)];
        }
        let dead = g.remove_dead();
        Ok(format!(
            "{count} chains of copies folded into one each, {dead} dead nodes removed"
        ))
    }
}
