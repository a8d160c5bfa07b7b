//! Values seen as strided views of earlier values, through chains of data movement: the
//! analysis behind `fold_copies` and `fold_attention_layout`.
//!
//! Reshapes (Identity, Reshape, Squeeze, Unsqueeze) are free in generated code; Transpose,
//! Split, Slice and StridedCopy each copy. Following a value back through them yields the
//! first value that is not such a copy (the `base`) and where each element of the value
//! sits in it, so one strided copy, or a kernel reading strided operands, can replace the
//! whole chain.

use crate::ir::{Graph, ValueId};
use crate::ops::{strides, Op};
use std::collections::HashMap;

/// Element `idx` of a value is element `offset + Σ idx·strides` of `base` (flat, row-major).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The value the data starts in.
    pub base: ValueId,
    /// Flat element offset in `base` of element 0.
    pub offset: usize,
    /// Element stride in `base` of each axis of the value.
    pub strides: Vec<usize>,
    /// How many copying nodes the chain from `base` holds.
    pub copies: usize,
}

/// Strides that read `new` (same element count) from a tensor of shape `old` read with
/// strides `st`, when no copy is needed (as numpy's and PyTorch's `view`): dims are split
/// freely, merged only where they are contiguous with each other.
pub fn reshape_strides(old: &[usize], st: &[usize], new: &[usize]) -> Option<Vec<usize>> {
    if old.contains(&0) || old.iter().product::<usize>() != new.iter().product::<usize>() {
        return None;
    }
    // Unit dims carry no stride.
    let (os, ost): (Vec<usize>, Vec<usize>) = old
        .iter()
        .zip(st)
        .filter(|(&n, _)| n != 1)
        .map(|(&n, &s)| (n, s))
        .unzip();
    let mut ns = vec![0; new.len()];
    let (mut oi, mut ni) = (0, 0);
    while oi < os.len() {
        // Skip new unit dims (stride 0 is as good as any).
        while ni < new.len() && new[ni] == 1 {
            ni += 1;
        }
        // The smallest groups old[o0..oi] and new[n0..ni] with equal products.
        let (o0, n0) = (oi, ni);
        let (mut op, mut np) = (os[oi], *new.get(ni)?);
        oi += 1;
        ni += 1;
        while op != np {
            if op < np {
                op *= os.get(oi)?;
                oi += 1;
            } else {
                np *= new.get(ni)?;
                ni += 1;
            }
        }
        // The old group must be one run of memory: each stride the next one's extent.
        if (o0..oi - 1).any(|k| ost[k] != os[k + 1] * ost[k + 1]) {
            return None;
        }
        let mut s = ost[oi - 1];
        for k in (n0..ni).rev() {
            ns[k] = s;
            s *= new[k];
        }
    }
    Some(ns)
}

/// `v` as a view of the value its chain of data movement starts from (itself when it is
/// not produced by data movement). Constants are not looked through: their copies are
/// folded at compile time.
pub fn view_of(g: &Graph, producers: &HashMap<ValueId, usize>, v: ValueId) -> View {
    let shape = g.shape(v);
    let itself = View {
        base: v,
        offset: 0,
        strides: strides(&shape),
        copies: 0,
    };
    let Some(&p) = producers.get(&v) else {
        return itself;
    };
    let n = &g.nodes[p];
    let Some(x) = n.inputs.first().copied().flatten() else {
        return itself;
    };
    if g.values[x].konst.is_some() {
        return itself;
    }
    let xs = g.shape(x);
    let consts: Vec<Option<&crate::ir::Tensor>> = n
        .inputs
        .iter()
        .map(|i| i.and_then(|i| g.konst(i)))
        .collect();
    let copied = |w: View, offset: usize, strides: Vec<usize>| View {
        base: w.base,
        offset,
        strides,
        copies: w.copies + 1,
    };
    let w = || view_of(g, producers, x);
    let view = match &n.op {
        Op::Identity | Op::Reshape { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. } => {
            let w = w();
            reshape_strides(&xs, &w.strides, &shape).map(|strides| View { strides, ..w })
        }
        Op::Transpose { perm } => {
            let w = w();
            let p: Vec<usize> = perm
                .clone()
                .unwrap_or_else(|| (0..xs.len()).rev().collect());
            let st = p.iter().map(|&a| w.strides[a]).collect();
            Some(copied(w.clone(), w.offset, st))
        }
        Op::Split { .. } => crate::ops::slice::split_sizes(&n.op, &xs, &consts)
            .ok()
            .map(|(axis, sizes)| {
                let k = n.outputs.iter().position(|&o| o == v).expect("an output");
                let at: usize = sizes[..k].iter().sum();
                let w = w();
                let offset = w.offset + at * w.strides[axis];
                copied(w.clone(), offset, w.strides)
            }),
        Op::Slice { .. } => crate::ops::slice::slice_plan(&xs, &n.op, &consts)
            .ok()
            .filter(|plan| plan.iter().all(|&(start, step, _)| start >= 0 && step > 0))
            .map(|plan| {
                let w = w();
                let offset = w.offset
                    + plan
                        .iter()
                        .zip(&w.strides)
                        .map(|(&(start, _, _), &s)| start as usize * s)
                        .sum::<usize>();
                let st = plan
                    .iter()
                    .zip(&w.strides)
                    .map(|(&(_, step, _), &s)| step as usize * s)
                    .collect();
                copied(w, offset, st)
            }),
        Op::StridedCopy(c) => {
            // The copy reads its input flat: the input's view must be one run of strides.
            let w = w();
            let n_in = crate::ir::numel(&xs);
            reshape_strides(&xs, &w.strides, &[n_in]).map(|flat| {
                let s = flat[0];
                let st = c.strides.iter().map(|&x| x * s).collect();
                copied(w.clone(), w.offset + c.offset * s, st)
            })
        }
        _ => None,
    };
    view.unwrap_or(itself)
}

#[cfg(test)]
mod tests {
    use super::reshape_strides;

    #[test]
    fn reshapes_split_freely_and_merge_only_contiguous_dims() {
        // [L, 3D] read as the middle third: split D into heads.
        assert_eq!(
            reshape_strides(&[1, 5, 8], &[120, 24, 1], &[1, 5, 2, 4]),
            Some(vec![0, 24, 4, 1])
        );
        // Merging heads back is fine (contiguous), merging rows with heads is not.
        assert_eq!(
            reshape_strides(&[5, 2, 4], &[24, 4, 1], &[5, 8]),
            Some(vec![24, 1])
        );
        assert_eq!(reshape_strides(&[5, 2, 4], &[24, 4, 1], &[40]), None);
        // A transposed view merges nothing.
        assert_eq!(reshape_strides(&[2, 5, 4], &[4, 8, 1], &[10, 4]), None);
        assert_eq!(
            reshape_strides(&[2, 5, 4], &[4, 8, 1], &[2, 1, 5, 4, 1]),
            Some(vec![4, 0, 8, 1, 0])
        );
        assert_eq!(reshape_strides(&[2, 3], &[3, 1], &[4, 2]), None);
    }
}
