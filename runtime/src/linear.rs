//! What the Linear kernels of every weight format (`gemm::linear` for f32 and f16, `bf16`,
//! `q8`, `q4`) share: the activation they end with, the check of their operands, and how a
//! product over the compiler's column panels is split over threads and tiles. Above `cpu`,
//! `layout` and `vmath` (whose GELU the activation runs), below the format modules.

use crate::cpu::{detected, Isa};
use crate::layout::NR;

/// Parallel loops split into this many tasks per thread (claimed dynamically).
const TASKS_PER_THREAD: usize = 4;

/// Runs `f(p0, p1)` over ranges of whole panels covering `0..panels`, on `t` threads: a
/// few ranges per thread, claimed dynamically, so a thread that runs ahead (its core less
/// busy) takes over the work of one that lags.
pub(crate) fn for_panel_ranges(panels: usize, t: usize, f: impl Fn(usize, usize) + Sync) {
    if t <= 1 {
        return f(0, panels);
    }
    let tasks = (t * TASKS_PER_THREAD).min(panels);
    let per = panels.div_ceil(tasks);
    crate::pool::run(tasks, &|i| {
        let (p0, p1) = (i * per, ((i + 1) * per).min(panels));
        if p0 < p1 {
            f(p0, p1)
        }
    });
}

/// What a Linear applies to each output after adding the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// None: the output is `x·W + bias`.
    Identity,
    /// GPT-2's tanh-GELU (`vmath::gelu`).
    Gelu,
}

impl Activation {
    /// Applies the activation to every element of `y`, on this thread.
    pub(crate) fn apply_to(self, isa: Isa, y: &mut [f32]) {
        if self == Activation::Gelu {
            crate::vmath::gelu_in_place(isa, y);
        }
    }

    /// Applies the activation to columns `j0..j1` of the `m` rows of `y` (`[m, n]` at `y`),
    /// just computed by this task and still in cache.
    ///
    /// # Safety
    /// `y` points at `m·n` floats of which no other thread accesses columns `j0..j1`.
    pub(crate) unsafe fn apply(
        self,
        isa: Isa,
        y: *mut f32,
        m: usize,
        n: usize,
        j0: usize,
        j1: usize,
    ) {
        if self == Activation::Identity {
            return;
        }
        debug_assert!(j0 <= j1 && j1 <= n);
        for r in 0..m {
            // SAFETY: row `r < m`, columns `j0..j1 ≤ n`: inside `y` and this task's (caller).
            let row = unsafe { std::slice::from_raw_parts_mut(y.add(r * n + j0), j1 - j0) };
            self.apply_to(isa, row);
        }
    }
}

/// Checks a Linear's `x` `[m, k]`, `y` `[m, n]` and bias `[n]`; when the product is
/// empty (no rows, columns or depth), writes its result (the activated bias, or zeros)
/// and returns false.
pub(crate) fn linear_operands(
    x: &[f32],
    m: usize,
    k: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) -> bool {
    assert!(
        x.len() == m * k && y.len() == m * n,
        "x or y is not [m, k] / [m, n]"
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), n, "bias is not [n]");
    }
    if m == 0 || n == 0 {
        return false;
    }
    if k == 0 {
        for row in y.chunks_exact_mut(n) {
            match bias {
                Some(b) => row.copy_from_slice(b),
                None => row.fill(0.0),
            }
        }
        act.apply_to(detected(), y);
        return false;
    }
    true
}

/// The mask of the lanes of vector `v` (16 lanes each) that hold one of the first `cols`
/// columns of a tile.
#[inline(always)]
pub(crate) fn lane_mask(cols: usize, v: usize) -> u16 {
    let live = cols.saturating_sub(16 * v).min(16);
    ((1u32 << live) - 1) as u16
}

/// Panel bytes that stay in L2 while every row strip passes over them.
pub(crate) const GROUP_BYTES: usize = 256 << 10;

/// Calls `f(g0, g1)` for consecutive groups of panels covering `p0..p1`, each group of
/// panels of `panel_bytes` fitting in `GROUP_BYTES` (at least one panel), so that every row
/// of a product can pass over a group while it stays in L2.
pub(crate) fn for_panel_groups(
    p0: usize,
    p1: usize,
    panel_bytes: usize,
    mut f: impl FnMut(usize, usize),
) {
    let group = (GROUP_BYTES / panel_bytes.max(1)).max(1);
    for g0 in (p0..p1).step_by(group) {
        f(g0, (g0 + group).min(p1));
    }
}

/// Visits the tiles of panels `p0..p1` of an `[m, n]` product over stored panels of
/// `panel_bytes` each: panels in groups that fit in half of L2, and within a group each
/// strip of up to `mr` rows over each panel, so a group's weights come from memory once.
/// Calls `f(i0, rows, t, col, cols)` for rows `i0..i0 + rows`, panel `t`, columns
/// `col..col + cols`.
pub(crate) fn for_each_tile(
    m: usize,
    n: usize,
    p0: usize,
    p1: usize,
    mr: usize,
    panel_bytes: usize,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    for_panel_groups(p0, p1, panel_bytes, |g0, g1| {
        for i0 in (0..m).step_by(mr) {
            for t in g0..g1 {
                let col = t * NR;
                f(i0, (m - i0).min(mr), t, col, (n - col).min(NR));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    // A Linear's rows do not depend on each other: row r of an m-row product is bit for bit
    // the product of row r alone, in every weight format, on every ISA this CPU has, at 1 and 2
    // threads. Batched steps stack the rows of several sequences, so this is what makes a
    // sequence's text independent of what else is in the batch.

    use super::Activation;
    use crate::cpu::{available, Isa};
    use crate::elem::F16;
    use crate::layout::NR;
    use crate::test_data::rand_vec;

    /// A Linear in one format: `linear(isa, x, m, y)`.
    type Linear<'a> = &'a dyn Fn(Isa, &[f32], usize, &mut [f32]);

    /// Runs `linear` for every m up to 11 and checks each row against m = 1.
    fn check(name: &str, k: usize, n: usize, linear: Linear) {
        let mut seed = 3;
        let x = rand_vec(11 * k, &mut seed);
        for &isa in available() {
            for threads in [1, 2] {
                crate::set_threads(threads);
                let alone: Vec<Vec<f32>> = (0..11)
                    .map(|r| {
                        let mut y = vec![f32::NAN; n];
                        linear(isa, &x[r * k..(r + 1) * k], 1, &mut y);
                        y
                    })
                    .collect();
                for m in 2..=11 {
                    let mut y = vec![f32::NAN; m * n];
                    linear(isa, &x[..m * k], m, &mut y);
                    for (r, want) in alone.iter().take(m).enumerate() {
                        let got = &y[r * n..(r + 1) * n];
                        assert!(
                            got.iter()
                                .zip(want)
                                .all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{name} {isa:?} {threads} thread(s): row {r} of {m} differs from alone"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn linear_rows_are_independent_in_every_format() {
        for &(k, n) in &[
            (64usize, 100usize),
            (130, 48),
            (768, 200),
            (33, 7),
            (300, 480),
        ] {
            let mut seed = 9;
            let w = rand_vec(n.div_ceil(NR) * k * NR, &mut seed);
            let b = rand_vec(n, &mut seed);
            check("f32", k, n, &|isa, x, m, y| {
                crate::gemm::linear_on(isa, x, m, k, &w, Some(&b), Activation::Gelu, y, n)
            });
            let h: Vec<F16> = w.iter().map(|&v| F16::from_f32(v)).collect();
            check("f16", k, n, &|isa, x, m, y| {
                crate::gemm::linear_on(isa, x, m, k, &h, Some(&b), Activation::Identity, y, n)
            });
            let wk: Vec<f32> = rand_vec(k * n, &mut seed);
            let bf = crate::bf16::pack(&wk, k, n);
            check("bf16", k, n, &|isa, x, m, y| {
                crate::bf16::linear_on(isa, x, m, k, &bf, Some(&b), Activation::Identity, y, n)
            });
            let q: Vec<i8> = wk.iter().map(|v| (v * 127.0).round() as i8).collect();
            let qp = crate::q8::pack(&q, k, n);
            let scales: Vec<f32> = (0..n.div_ceil(NR) * NR)
                .map(|j| 0.01 + 0.001 * (j % 7) as f32)
                .collect();
            check("q8", k, n, &|isa, x, m, y| {
                crate::q8::linear_on(isa, x, m, k, &qp, &scales, Some(&b), Activation::Gelu, y, n)
            });
            let q4: Vec<i8> = wk.iter().map(|v| (v * 7.5).round() as i8).collect();
            let s: Vec<i8> = (0..k.div_ceil(crate::q4::BLOCK) * n)
                .map(|i| (100 + i % 27) as i8)
                .collect();
            let u: Vec<f32> = (0..n).map(|j| 1e-4 + 1e-5 * (j % 7) as f32).collect();
            let (q4p, q4s) = crate::q4::pack(&q4, &s, &u, k, n);
            check("q4", k, n, &|isa, x, m, y| {
                crate::q4::linear_on(isa, x, m, k, &q4p, &q4s, Some(&b), Activation::Gelu, y, n)
            });
        }
    }
}
