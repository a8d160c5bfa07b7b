//! Matrix-vector product for decoding: `y = alpha · x·W + beta · y` with `W` `[k, n]`
//! row-major. One token's step is a handful of these over every weight matrix, so this is
//! memory-bound: the kernel streams each row of `W` once, four rows at a time, into a block
//! of `y` that stays in L1.
//!
//! The ISA is chosen once at run time: AVX-512F, AVX2+FMA, or the portable scalar loop;
//! each SIMD variant is the same source compiled with its target features, and is tested
//! against the scalar one.
//!
//! A kernel family on `cpu` alone (whose `Isa`, `detected` and `available` it re-exports
//! under their old paths); `matmul` picks it for one or a few rows.

pub use crate::cpu::{available, detected, Isa};

/// Columns of `y` processed together (16 KiB of f32).
const BLOCK: usize = 4096;

/// `y[j] = alpha · Σ_p x[p] · w[p·ldw + j] + beta · y[j]` for `j < y.len()`, on all
/// threads (`crate::threads`): each takes a range of columns, so the result does not depend
/// on the thread count.
pub fn gemv(alpha: f32, x: &[f32], w: &[f32], ldw: usize, beta: f32, y: &mut [f32]) {
    let isa = detected();
    let t = crate::threads();
    let n = y.len();
    // Below ~256K multiply-adds a thread costs more than it saves.
    if t <= 1 || x.len() * n < (1 << 18) {
        return gemv_with(isa, alpha, x, w, ldw, beta, y);
    }
    let chunk = n.div_ceil(t).div_ceil(16) * 16;
    crate::for_each_part(y, chunk, |i, part| {
        gemv_with(isa, alpha, x, &w[i * chunk..], ldw, beta, part)
    });
}

/// `gemv` on a chosen ISA; falls back to scalar if the CPU lacks it.
pub fn gemv_with(isa: Isa, alpha: f32, x: &[f32], w: &[f32], ldw: usize, beta: f32, y: &mut [f32]) {
    let (k, n) = (x.len(), y.len());
    assert!(
        n <= ldw || k <= 1,
        "row stride {ldw} shorter than a row of {n}"
    );
    if k > 0 {
        assert!(
            w.len() >= (k - 1) * ldw + n,
            "w holds {} elements, needs {}",
            w.len(),
            (k - 1) * ldw + n
        );
    }
    if beta == 0.0 {
        y.iter_mut().for_each(|v| *v = 0.0);
    } else if beta != 1.0 {
        y.iter_mut().for_each(|v| *v *= beta);
    }
    for c0 in (0..n).step_by(BLOCK) {
        let yb = &mut y[c0..(c0 + BLOCK).min(n)];
        block_on(isa, alpha, x, w, ldw, c0, yb);
    }
}

/// Rows of `a` at or below this count use `gemm_small` instead of a packed GEMM.
pub const SMALL_M: usize = 16;

/// `c = alpha · a·W + beta · c` for a few rows (`m` = `c.len() / n`, a prompt being
/// prefilled): like `gemv`, but each block of `W` is read once for all rows, so the weights
/// stream from memory once instead of being packed. `a` rows have stride `lda`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_small(
    alpha: f32,
    a: &[f32],
    lda: usize,
    k: usize,
    w: &[f32],
    ldw: usize,
    beta: f32,
    c: &mut [f32],
    n: usize,
) {
    let m = c.len() / n.max(1);
    let isa = detected();
    let t = crate::threads();
    if k > 0 {
        assert!(w.len() >= (k - 1) * ldw + n && a.len() >= (m.max(1) - 1) * lda + k);
    }
    if t <= 1 || m * k * n < (1 << 18) {
        return gemm_small_serial(isa, alpha, a, lda, k, w, ldw, beta, c, n);
    }
    // Threads take column ranges; each needs every row, so split by column via raw rows.
    let chunk = n.div_ceil(t).div_ceil(16) * 16;
    let ranges: Vec<(usize, usize)> = (0..n)
        .step_by(chunk)
        .map(|c0| (c0, (c0 + chunk).min(n)))
        .collect();
    let mut parts: Vec<Vec<f32>> = ranges
        .iter()
        .map(|&(c0, c1)| {
            let mut v = Vec::with_capacity(m * (c1 - c0));
            for i in 0..m {
                v.extend_from_slice(&c[i * n + c0..i * n + c1]);
            }
            v
        })
        .collect();
    // Each part is an m × width matrix: run on it with the columns of W shifted.
    crate::for_each_part(&mut parts, 1, |i, part| {
        let (c0, c1) = ranges[i];
        gemm_small_serial(
            isa,
            alpha,
            a,
            lda,
            k,
            &w[c0..],
            ldw,
            beta,
            &mut part[0],
            c1 - c0,
        );
    });
    for (part, &(c0, c1)) in parts.iter().zip(&ranges) {
        let width = c1 - c0;
        for i in 0..m {
            c[i * n + c0..i * n + c1].copy_from_slice(&part[i * width..(i + 1) * width]);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn gemm_small_serial(
    isa: Isa,
    alpha: f32,
    a: &[f32],
    lda: usize,
    k: usize,
    w: &[f32],
    ldw: usize,
    beta: f32,
    c: &mut [f32],
    n: usize,
) {
    let m = c.len() / n.max(1);
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        if beta == 0.0 {
            row.iter_mut().for_each(|v| *v = 0.0);
        } else if beta != 1.0 {
            row.iter_mut().for_each(|v| *v *= beta);
        }
    }
    for b0 in (0..n).step_by(SMALL_BLOCK) {
        let b1 = (b0 + SMALL_BLOCK).min(n);
        multi_on(isa, alpha, a, lda, k, w, ldw, b0, b1, c, n);
    }
}

crate::cpu::isa_kernel!(
    /// `multi` compiled for the given ISA.
    multi_on => multi::<FMA>(
        alpha: f32,
        a: &[f32],
        lda: usize,
        k: usize,
        w: &[f32],
        ldw: usize,
        b0: usize,
        b1: usize,
        c: &mut [f32],
        n: usize
    )
);

/// Columns `b0..b1` of every row of `c`: four rows of `W` (a few KiB) are loaded once and
/// used by every row of `a` before moving on, so `W` streams from memory once.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn multi<const FMA: bool>(
    alpha: f32,
    a: &[f32],
    lda: usize,
    k: usize,
    w: &[f32],
    ldw: usize,
    b0: usize,
    b1: usize,
    c: &mut [f32],
    n: usize,
) {
    let m = c.len() / n.max(1);
    let nb = b1 - b0;
    let row = |p: usize| &w[p * ldw + b0..p * ldw + b0 + nb];
    let mut p = 0;
    while p + 4 <= k {
        let (r0, r1, r2, r3) = (row(p), row(p + 1), row(p + 2), row(p + 3));
        for i in 0..m {
            let x = &a[i * lda + p..i * lda + p + 4];
            let (x0, x1, x2, x3) = (alpha * x[0], alpha * x[1], alpha * x[2], alpha * x[3]);
            let y = &mut c[i * n + b0..i * n + b1];
            for ((((yj, &a0), &a1), &a2), &a3) in y.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
                *yj = if FMA {
                    x3.mul_add(a3, x2.mul_add(a2, x1.mul_add(a1, x0.mul_add(a0, *yj))))
                } else {
                    *yj + x0 * a0 + x1 * a1 + x2 * a2 + x3 * a3
                };
            }
        }
        p += 4;
    }
    while p < k {
        let r0 = row(p);
        for i in 0..m {
            let x0 = alpha * a[i * lda + p];
            let y = &mut c[i * n + b0..i * n + b1];
            for (yj, &a0) in y.iter_mut().zip(r0) {
                *yj = if FMA {
                    x0.mul_add(a0, *yj)
                } else {
                    *yj + x0 * a0
                };
            }
        }
        p += 1;
    }
}

/// Columns per block in `gemm_small`: a block of W rows (4 × this) stays in L1 while every
/// row of the prompt uses it.
const SMALL_BLOCK: usize = 512;

/// `y[j] = alpha · Σ_p x[p] · w[j·ldw + p] + beta · y[j]`: the matrix stored transposed
/// (`[n, k]` rows, e.g. a tied embedding read as the LM head), one dot product per output,
/// on all threads.
pub fn gemv_t(alpha: f32, x: &[f32], w: &[f32], ldw: usize, beta: f32, y: &mut [f32]) {
    let isa = detected();
    let t = crate::threads();
    let (k, n) = (x.len(), y.len());
    if t <= 1 || k * n < (1 << 18) {
        return gemv_t_with(isa, alpha, x, w, ldw, beta, y);
    }
    // Four parts per thread, claimed dynamically, so a thread on a busier core lags less.
    let chunk = n.div_ceil(4 * t).div_ceil(16) * 16;
    crate::for_each_part(y, chunk, |i, part| {
        gemv_t_with(isa, alpha, x, &w[i * chunk * ldw..], ldw, beta, part)
    });
}

/// `gemv_t` on a chosen ISA; falls back to scalar if the CPU lacks it.
pub fn gemv_t_with(
    isa: Isa,
    alpha: f32,
    x: &[f32],
    w: &[f32],
    ldw: usize,
    beta: f32,
    y: &mut [f32],
) {
    let (k, n) = (x.len(), y.len());
    assert!(
        k <= ldw || n <= 1,
        "row stride {ldw} shorter than a row of {k}"
    );
    if n > 0 {
        assert!(
            w.len() >= (n - 1) * ldw + k,
            "w holds {} elements, needs {}",
            w.len(),
            (n - 1) * ldw + k
        );
    }
    dots_on(isa, alpha, x, w, ldw, beta, y)
}

crate::cpu::isa_kernel!(
    /// `dots` compiled for the given ISA.
    dots_on => dots::<FMA>(alpha: f32, x: &[f32], w: &[f32], ldw: usize, beta: f32, y: &mut [f32])
);

/// One dot product per output, with 16 independent partial sums so it vectorizes.
#[inline(always)]
fn dots<const FMA: bool>(alpha: f32, x: &[f32], w: &[f32], ldw: usize, beta: f32, y: &mut [f32]) {
    let k = x.len();
    for (j, yj) in y.iter_mut().enumerate() {
        let row = &w[j * ldw..j * ldw + k];
        let mut acc = [0f32; 16];
        let (cx, cw) = (x.chunks_exact(16), row.chunks_exact(16));
        let (rx, rw) = (cx.remainder(), cw.remainder());
        for (a, b) in cx.zip(cw) {
            for i in 0..16 {
                acc[i] = if FMA {
                    a[i].mul_add(b[i], acc[i])
                } else {
                    acc[i] + a[i] * b[i]
                };
            }
        }
        let mut sum: f32 = acc.iter().sum();
        for (a, b) in rx.iter().zip(rw) {
            sum += a * b;
        }
        *yj = alpha * sum + if beta == 0.0 { 0.0 } else { beta * *yj };
    }
}

crate::cpu::isa_kernel!(
    /// `block` compiled for the given ISA.
    block_on => block::<FMA>(alpha: f32, x: &[f32], w: &[f32], ldw: usize, c0: usize, y: &mut [f32])
);

/// One block of columns `c0..c0 + y.len()`, four rows of `w` per pass over `y`.
/// `FMA` selects fused multiply-adds (see `isa_kernel!`).
#[inline(always)]
fn block<const FMA: bool>(alpha: f32, x: &[f32], w: &[f32], ldw: usize, c0: usize, y: &mut [f32]) {
    let nb = y.len();
    let row = |p: usize| &w[p * ldw + c0..p * ldw + c0 + nb];
    let mut p = 0;
    while p + 4 <= x.len() {
        let (x0, x1, x2, x3) = (
            alpha * x[p],
            alpha * x[p + 1],
            alpha * x[p + 2],
            alpha * x[p + 3],
        );
        let (r0, r1, r2, r3) = (row(p), row(p + 1), row(p + 2), row(p + 3));
        for ((((yj, &a), &b), &c), &d) in y.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
            *yj = if FMA {
                x3.mul_add(d, x2.mul_add(c, x1.mul_add(b, x0.mul_add(a, *yj))))
            } else {
                *yj + x0 * a + x1 * b + x2 * c + x3 * d
            };
        }
        p += 4;
    }
    while p < x.len() {
        let x0 = alpha * x[p];
        for (yj, &a) in y.iter_mut().zip(row(p)) {
            *yj = if FMA {
                x0.mul_add(a, *yj)
            } else {
                *yj + x0 * a
            };
        }
        p += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_isa_matches_the_f64_reference_on_ragged_sizes() {
        let mut seed = 1u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for &(k, n, ldw) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 40),
            (64, 4097, 4100),
            (769, 129, 129),
            (5, 9000, 9000),
        ] {
            let x: Vec<f32> = (0..k).map(|_| rnd()).collect();
            let w: Vec<f32> = (0..k * ldw).map(|_| rnd()).collect();
            let y0: Vec<f32> = (0..n).map(|_| rnd()).collect();
            let reference: Vec<f64> = (0..n)
                .map(|j| {
                    0.5 * (0..k)
                        .map(|p| x[p] as f64 * w[p * ldw + j] as f64)
                        .sum::<f64>()
                        + 2.0 * y0[j] as f64
                })
                .collect();
            for &isa in available() {
                let mut y = y0.clone();
                gemv_with(isa, 0.5, &x, &w, ldw, 2.0, &mut y);
                for (j, (&a, &b)) in y.iter().zip(&reference).enumerate() {
                    assert!(
                        (a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{isa:?} {k}x{n} col {j}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
