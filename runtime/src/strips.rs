//! The f32 Linear over stored panels on AVX2 (the CPUs without AVX-512): a strip of a few
//! rows against one `NR`-column panel at a time, the strip's sums in registers, so each
//! weight loaded serves every row of the strip.
//!
//! **Loop order.** With few rows (a batched decode step: one row per sequence) a panel is
//! taken `KC` rows of depth at a time: that block stays in L1 while every strip passes over
//! it, so the weights stream from memory once, front to back, and the stream never pauses
//! for a pass over L2. The strips' partial sums wait in a small tile between blocks. With
//! many rows (a prompt) the panels go in groups that stay in L2 (`for_panel_groups`) and
//! each strip passes over a group with its whole depth.
//!
//! **Numerics.** Every output is `fma(x_{k-1}, w_{k-1}, … fma(x₁, w₁, fma(x₀, w₀, 0))) + bias`:
//! one fused multiply-add per step, in depth order (half the instructions of a product then
//! a sum, which is what bounds a batched step's arithmetic here). A row's result is therefore
//! the same bits in a strip of any height and in any loop order (a partial sum is stored
//! exactly): a sequence's logits do not depend on the batch. The portable row
//! (`vmath::panel_row`, for CPUs without AVX2) rounds products and sums separately, so
//! the two agree to rounding, not bit for bit; the test below checks the strips against a
//! fused reference bit for bit.
//!
//! A kernel family beside `gemm` (which calls it), on `cpu`, `layout` and `linear`.

use crate::layout::NR;
use crate::linear::for_panel_groups;

/// Rows of a strip: 2 rows × 6 vectors of sums are 12 of the 16 registers.
const SR: usize = 2;
/// Vectors of 8 columns in a panel.
const NV: usize = NR / 8;
/// Depth of a block with few rows: `KC × NR` floats are 24 KiB, inside L1.
const KC: usize = 128;
/// Up to this many rows the depth is blocked (their tile is `FEW_ROWS × NR` floats).
pub(crate) const FEW_ROWS: usize = 32;

/// Columns of panels `p0..p1` of `y = x·W + bias` (`x` `[m, k]`, `W` in `k`-deep panels,
/// `y` `[m, n]` at `y`).
///
/// # Safety
/// The CPU has AVX2 and FMA; `y` points at `m·n` floats of which no other thread accesses
/// columns `p0·NR..min(p1·NR, n)`; `x` is `[m, k]`, `w` holds panels `0..p1` of `k × NR`
/// floats, a bias `n` floats.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn linear_panels(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    y: *mut f32,
    n: usize,
    p0: usize,
    p1: usize,
) {
    debug_assert!(x.len() == m * k && w.len() >= p1 * k * NR && k > 0);
    let mut tile = [0f32; FEW_ROWS * NR];
    if m <= FEW_ROWS {
        for t in p0..p1 {
            let panel = &w[t * k * NR..(t + 1) * k * NR];
            for kb in (0..k).step_by(KC) {
                let kc = (k - kb).min(KC);
                for i0 in (0..m).step_by(SR) {
                    let rows = (m - i0).min(SR);
                    // SAFETY: the CPU has AVX2 (caller); rows `i0..i0 + rows < m` of `x` have
                    // depth `kb..kb + kc ≤ k`; the panel holds `k × NR` floats; the tile holds
                    // `FEW_ROWS ≥ m` rows of `NR`.
                    unsafe {
                        strip(
                            rows,
                            kc,
                            x.as_ptr().add(i0 * k + kb),
                            k,
                            panel.as_ptr().add(kb * NR),
                            tile.as_mut_ptr().add(i0 * NR),
                            kb == 0,
                        )
                    }
                }
            }
            // SAFETY: panel `t` is in `p0..p1`, whose columns are this caller's (caller).
            unsafe { write_rows(&tile, 0, m, t, bias, y, n) }
        }
        return;
    }
    for_panel_groups(p0, p1, k * NR * 4, |g0, g1| {
        for i0 in (0..m).step_by(SR) {
            let rows = (m - i0).min(SR);
            for t in g0..g1 {
                // SAFETY: as above, with the whole depth of panel `t < p1`; the tile holds
                // `SR` rows.
                unsafe {
                    strip(
                        rows,
                        k,
                        x.as_ptr().add(i0 * k),
                        k,
                        w.as_ptr().add(t * k * NR),
                        tile.as_mut_ptr(),
                        true,
                    );
                    write_rows(&tile, i0, rows, t, bias, y, n)
                }
            }
        }
    });
}

/// Writes `tile` (`rows × NR`) as rows `i0..i0 + rows` of panel `t`'s columns of `y`, plus
/// the bias.
///
/// # Safety
/// `y` is `[m, n]` with `i0 + rows ≤ m` and panel `t`'s columns are the caller's; a bias has
/// `n` floats.
unsafe fn write_rows(
    tile: &[f32],
    i0: usize,
    rows: usize,
    t: usize,
    bias: Option<&[f32]>,
    y: *mut f32,
    n: usize,
) {
    let col = t * NR;
    let cols = (n - col).min(NR);
    for (i, sums) in tile.chunks_exact(NR).take(rows).enumerate() {
        // SAFETY: row `i0 + i` and columns `col..col + cols ≤ n` are inside `y` (caller).
        let out = unsafe { std::slice::from_raw_parts_mut(y.add((i0 + i) * n + col), cols) };
        match bias {
            Some(b) => {
                for ((o, &s), &b) in out.iter_mut().zip(sums).zip(&b[col..col + cols]) {
                    *o = s + b;
                }
            }
            None => out.copy_from_slice(&sums[..cols]),
        }
    }
}

/// Dispatches `kernel` on the strip height.
///
/// # Safety
/// As `kernel`.
unsafe fn strip(
    rows: usize,
    kc: usize,
    x: *const f32,
    ldx: usize,
    w: *const f32,
    tile: *mut f32,
    init: bool,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded from the caller.
    unsafe {
        match rows {
            2 => kernel::<2>(kc, x, ldx, w, tile, init),
            _ => kernel::<1>(kc, x, ldx, w, tile, init),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX2 is x86_64-only ({rows} {kc} {x:?} {ldx} {w:?} {tile:?} {init})");
}

/// `tile[i, j] (= 0 when init) += Σ_p x[i, p] · w[p, j]` for `i < R`, `j < NR`, `p < kc`,
/// one fused multiply-add per step, in depth order.
///
/// # Safety
/// The CPU has AVX2; `x + i·ldx + p` is readable for `i < R`, `p < kc`; `w` holds `kc × NR`
/// floats; `tile` holds `R × NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize>(
    kc: usize,
    x: *const f32,
    ldx: usize,
    w: *const f32,
    tile: *mut f32,
    init: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); NV]; R];
    if !init {
        for (i, row) in acc.iter_mut().enumerate() {
            for (v, a) in row.iter_mut().enumerate() {
                // SAFETY: `i·NR + 8v + 8 ≤ R·NR` floats of the tile (caller).
                *a = unsafe { _mm256_loadu_ps(tile.add(i * NR + 8 * v)) };
            }
        }
    }
    for p in 0..kc {
        // SAFETY: `p < kc` and `i < R`: inside `x` and `w` (caller).
        unsafe {
            let wp = w.add(p * NR);
            let mut xb = [_mm256_setzero_ps(); R];
            for (i, b) in xb.iter_mut().enumerate() {
                *b = _mm256_broadcast_ss(&*x.add(i * ldx + p));
            }
            // Each weight vector is loaded once and serves every row.
            for v in 0..NV {
                let wv = _mm256_loadu_ps(wp.add(8 * v));
                for (row, &xi) in acc.iter_mut().zip(&xb) {
                    row[v] = _mm256_fmadd_ps(xi, wv, row[v]);
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, &a) in row.iter().enumerate() {
            // SAFETY: as the loads above.
            unsafe { _mm256_storeu_ps(tile.add(i * NR + 8 * v), a) };
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::{available, Isa};
    use crate::gemm::{linear_on, Activation, NR};
    use crate::test_data::rand_vec;

    /// The strips give a fused multiply-add per step in depth order, then `+ bias`, exactly
    /// (the reference below, with `f32::mul_add`), for strips of any height, blocked depth or
    /// not (few rows or many), a depth that is not a multiple of the block, a partial last
    /// panel, with a bias and without, at 1 and 2 threads.
    #[test]
    fn strips_are_one_fused_chain_per_output() {
        if !available().contains(&Isa::Avx2) {
            eprintln!("no AVX2 here: the strips are not used, nothing to test");
            return;
        }
        let mut seed = 17;
        for &(k, n) in &[(1usize, 5usize), (130, 100), (300, 48), (64, 200)] {
            let w = rand_vec(n.div_ceil(NR) * k * NR, &mut seed);
            let b = rand_vec(n, &mut seed);
            for m in [1, 2, 3, 5, 8, 31, 32, 33, 40] {
                let x = rand_vec(m * k, &mut seed);
                for bias in [Some(&b[..]), None] {
                    let mut want = vec![0f32; m * n];
                    for (i, row) in want.chunks_exact_mut(n).enumerate() {
                        for (j, out) in row.iter_mut().enumerate() {
                            let panel = &w[j / NR * k * NR..];
                            let sum = (0..k).fold(0f32, |acc, p| {
                                x[i * k + p].mul_add(panel[p * NR + j % NR], acc)
                            });
                            *out = bias.map_or(sum, |b| sum + b[j]);
                        }
                    }
                    for threads in [1, 2] {
                        crate::set_threads(threads);
                        let mut got = vec![f32::NAN; m * n];
                        let act = Activation::Identity;
                        linear_on(Isa::Avx2, &x, m, k, &w, bias, act, &mut got, n);
                        let same = want
                            .iter()
                            .zip(&got)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(
                            same,
                            "k {k} n {n} m {m} bias {} threads {threads}",
                            bias.is_some()
                        );
                    }
                }
            }
        }
    }
}
