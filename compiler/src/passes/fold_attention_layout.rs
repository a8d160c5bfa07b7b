//! Lets `Attention` read its operands and write its output where they are, instead of
//! through copies:
//!
//! ```text
//! qkv ─► Split ─► Reshape ─► Transpose ─► q ─► Attention ─► Transpose ─► Reshape ─► c_proj
//!                       ==> qkv ─► Attention(q: view of qkv; out: [B, L, H, d]) ─► Reshape ─► c_proj
//! ```
//! An operand used only by the Attention, made by data movement (`views::view_of`: Split,
//! Slice, Transpose, StridedCopy and the reshapes between them), is replaced by the value
//! the movement starts from, the node's `HeadView` for it now pointing into that value.
//! An output read only by a Transpose that keeps channels last is written transposed
//! (`out_perm`). GPT-2's query is then read straight from the fused QKV projection and the
//! heads are written side by side in each row, as the output projection reads them: two
//! copies of the activations per layer fewer. The runtime kernel needs q and v channels
//! contiguous and rows of q at least a head apart; keys and values, the attention cache,
//! are folded only where each head's rows stay dense (when a graph has no present outputs
//! they are copied out of the projection once, as the zoo export's presents are); views
//! that are not are left alone.
//! Needs: fused Attention (`fuse_attention`), static shapes.

use super::views::{reshape_strides, view_of, View};
use super::Pass;
use crate::error::Result;
use crate::ir::Graph;
use crate::ops::attention::HeadView;
use crate::ops::{strides, Op};

/// The attention-layout folding pass (see the module docs).
pub struct FoldAttentionLayout;

/// `view` (over the flat elements of a tensor of shape `xs`) composed with `w` (that
/// tensor as a view of `w.base`): the operand as a view of `w.base`.
fn compose(view: HeadView, logical: [usize; 4], xs: &[usize], w: &View) -> Option<HeadView> {
    // The tensor read flat, when its view is one run of strides.
    if let Some(flat) = reshape_strides(xs, &w.strides, &[crate::ir::numel(xs)]) {
        let s = flat[0];
        return Some(HeadView {
            offset: w.offset + view.offset * s,
            strides: view.strides.map(|x| x * s),
        });
    }
    // Or an operand that reads the tensor whole, its axes permuted (dense or transposed
    // keys): each logical axis is one axis of the tensor.
    if view.offset != 0
        || xs.len() != 4
        || crate::ir::numel(xs) != logical.iter().product::<usize>()
    {
        return None;
    }
    let dense = strides(xs);
    let mut out = [0; 4];
    for a in 0..4 {
        if logical[a] == 1 {
            continue;
        }
        let j = (0..4).find(|&j| xs[j] == logical[a] && dense[j] == view.strides[a])?;
        out[a] = w.strides[j];
    }
    Some(HeadView {
        offset: w.offset,
        strides: out,
    })
}

impl Pass for FoldAttentionLayout {
    fn name(&self) -> &'static str {
        "fold-attention-layout"
    }

    fn run(&self, g: &mut Graph) -> Result<String> {
        let producers = g.producers();
        let uses = g.use_counts();
        let graph_outputs = g.outputs.clone();
        let single = |v: usize| uses[v] == 1 && !graph_outputs.contains(&v);
        let (mut operands, mut outputs) = (0, 0);
        let mut drop = vec![false; g.nodes.len()];
        for ai in 0..g.nodes.len() {
            let Op::Attention(mut at) = g.nodes[ai].op else {
                continue;
            };
            let mut inputs = g.nodes[ai].inputs.clone();
            for (i, slot) in inputs.iter_mut().enumerate().take(3) {
                let Some(x) = *slot else { continue };
                if !single(x) {
                    continue;
                }
                let w = view_of(g, &producers, x);
                if w.copies == 0 {
                    continue;
                }
                let (view, logical) = at.operand(i);
                let Some(new) = compose(view, logical, &g.shape(x), &w) else {
                    continue;
                };
                // The kernel's needs: contiguous channels of q and v, q rows a head apart.
                let d = at.head_dim;
                if i != 1 && d > 1 && (new.strides[3] != 1 || new.strides[2] < d) {
                    continue;
                }
                // Keys and values become the attention cache, read row after row at every
                // step: keep each head's rows dense (a copy into `[.., L, d]`) rather than
                // read them a QKV row apart, one page per row at long contexts.
                if i != 0 && d > 1 && (new.strides[3] != 1 || new.strides[2] != d) {
                    continue;
                }
                match i {
                    0 => at.q = new,
                    1 => at.k = new,
                    _ => at.v = new,
                }
                *slot = Some(w.base);
                operands += 1;
            }
            // The output, when only a Transpose reads it.
            let o = g.nodes[ai].outputs[0];
            let mut out = o;
            if single(o) {
                let user = (ai + 1..g.nodes.len())
                    .find(|&u| g.nodes[u].inputs.contains(&Some(o)))
                    .expect("a used value has a reader");
                if let Op::Transpose { perm } = &g.nodes[user].op {
                    let p = perm.clone().unwrap_or_else(|| vec![3, 2, 1, 0]);
                    let new: [usize; 4] = std::array::from_fn(|i| at.out_perm[p[i]]);
                    if new[3] == 3 {
                        at.out_perm = new;
                        out = g.nodes[user].outputs[0];
                        drop[user] = true;
                        outputs += 1;
                    }
                }
            }
            let n = &mut g.nodes[ai];
            n.op = Op::Attention(at);
            n.inputs = inputs;
            n.outputs = vec![out];
        }
        let mut k = 0;
        g.nodes.retain(|_| {
            k += 1;
            !drop[k - 1]
        });
        let dead = g.remove_dead();
        Ok(format!(
            "{operands} operands read in place, {outputs} outputs written transposed, {dead} dead nodes removed"
        ))
    }
}
