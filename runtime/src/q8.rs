//! The int8 Linear (`GPT2_WEIGHTS=q8`): weights stored as int8 with one f32 scale per output
//! column (by the compiler), activations quantized to int8 per row at run time, integer dot
//! products (AVX-512 VNNI `vpdpbusd` where the CPU has it), f32 scaling.
//!
//! **Weights.** `⌈n / NR⌉` panels of `NR` columns, as in `gemm::linear`, but each panel's
//! depth is taken four rows at a time (a *quad*): quad `q` holds, column by column, the four
//! bytes of rows `4q..4q + 4`, so one 32-bit lane of a vector is one column's four weights,
//! what `vpdpbusd` multiplies with four activations. A byte is the weight plus 128 (weights
//! are in [−127, 127]); the depth is padded to a multiple of four with zero weights.
//!
//! **Activations.** Each row is cut into blocks of `QBLOCK` inputs; a block's scale is
//! `s = max|x| / 127` and its values `round_ties_even(x · 127 / max|x|)`, in [−127, 127].
//! Blocks keep one large input from flattening the rest of the row.
//!
//! **Sums.** `y[j] = sw[j] · Σ_b s_b · Σ_{k∈b} xq[k] · wq[k, j] + bias[j]`. The inner sums
//! are exact integers (kernels add `(wq + 128) · xq` and subtract `128 · Σ xq`); the outer
//! one is f32 in block order with fused multiply-adds, and the last step is
//! `fma(sum, sw[j], bias[j])`: every ISA computes the same bits.
//!
//! A kernel family beside `gemm` and `bf16`, on `cpu`, `layout`, `elem` and the shared
//! `linear`; the `kernels` facade calls it.

use crate::cpu::{detected, Isa};
use crate::elem::Q8;
use crate::layout::NR;
use crate::linear::Activation;

// Detected in `cpu`; this path stays for callers.
pub use crate::cpu::avx512_vnni as vnni;

/// Activations per quantization block (a multiple of 4).
pub const QBLOCK: usize = 64;

/// Rows per group of the weight panels: a quad.
const QUAD: usize = 4;

/// The stored depth of a `k`-deep weight: `k` rounded up to whole quads.
pub fn padded_depth(k: usize) -> usize {
    k.next_multiple_of(QUAD)
}

/// Elements of a `[k, n]` weight in int8 panels.
pub fn panels_len(k: usize, n: usize) -> usize {
    crate::layout::grouped_len(k, n, QUAD)
}

/// Index in the panels of weight `(p, j)` (row `p < k`, column `j < n`) of a `k`-deep matrix.
pub fn panel_index(k: usize, p: usize, j: usize) -> usize {
    crate::layout::grouped_index(k, QUAD, p, j)
}

/// 1.5·2²³: a float whose unit in the last place is 1, with room for ±2²² around it.
const MAGIC: f32 = 12_582_912.0;

/// Quantizes one block of activations into `q` (same length): returns its scale and the
/// sum of its quantized values. An all-zero block has scale 0. Inlined into each ISA's
/// `quantize_row`, so it is compiled for that ISA.
#[inline(always)]
pub fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    // The largest magnitude in 16 lanes, then over them (the same value in any order),
    // so it vectorizes.
    let mut lanes = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v.abs());
        }
    }
    let amax = tail.iter().chain(&lanes).fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 {
        q.fill(0);
        return (0.0, 0);
    }
    let inv = 127.0 / amax;
    let mut sum = 0i32;
    for (o, &v) in q.iter_mut().zip(x) {
        // round_ties_even(clamp(v · inv)) (NaN to 0) without a float-to-integer conversion,
        // which does not vectorize: adding 1.5·2²³ rounds to a whole number (to nearest,
        // ties to even) and leaves it in the low bits of the sum's representation.
        let y = v * inv;
        let y = if y.is_nan() {
            0.0
        } else {
            y.clamp(-127.0, 127.0)
        };
        let r = (y + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32;
        sum += r;
        *o = r as i8;
    }
    (amax / 127.0, sum)
}

/// One row's quantized activations: `xq` padded to whole quads with zeros, and per block
/// its scale and `128 · Σ xq` (what the offset weights add).
#[inline(always)]
fn quantize_row_body(x: &[f32], xq: &mut [i8], scales: &mut [f32], offsets: &mut [i32]) {
    for (b, (s, o)) in scales.iter_mut().zip(offsets.iter_mut()).enumerate() {
        let lo = b * QBLOCK;
        let hi = (lo + QBLOCK).min(x.len());
        let (scale, sum) = quantize_block(&x[lo..hi], &mut xq[lo..hi]);
        *s = scale;
        *o = 128 * sum;
    }
    xq[x.len()..].fill(0);
}

crate::cpu::isa_kernel!(
    /// Quantizes one row of activations (see the module docs) with the given ISA.
    quantize_row => quantize_row_body(x: &[f32], xq: &mut [i8], scales: &mut [f32], offsets: &mut [i32])
);

/// Quantized activations of `m` rows: `xq` `[m, padded_depth(k)]`, `scales` and `offsets`
/// `[m, blocks]`.
#[derive(Default)]
struct Quantized {
    xq: Vec<i8>,
    scales: Vec<f32>,
    offsets: Vec<i32>,
}

thread_local! {
    /// The caller's quantized rows, grown to the largest product seen (no allocation per
    /// token once warm).
    static QUANTIZED: std::cell::RefCell<Quantized> = std::cell::RefCell::new(Quantized::default());
}

/// `y = x·W + bias` with `x` `[m, k]`, `y` `[m, n]` and `W` `[k, n]` stored as int8 panels
/// (see the module docs) with `scales` one per panel column. On all threads.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[Q8],
    scales: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    linear_on(detected(), x, m, k, w, scales, bias, act, y, n)
}

/// `linear` on a chosen ISA (AVX-512 means the VNNI kernel when the CPU has it, and AMX
/// tiles for products of several rows where `amx::enabled()`), for tests and benchmarks.
/// Every ISA gives the same bits.
#[allow(clippy::too_many_arguments)]
pub fn linear_on(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[Q8],
    scales: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    let tiles = crate::amx::enabled();
    linear_with(isa, tiles, x, m, k, w, scales, bias, act, y, n)
}

/// Products of `AMX_MIN_ROWS..=AMX_MAX_ROWS` rows (batched decode steps) use AMX tiles (16
/// rows each) where they may. Below, the VNNI kernel, which needs no padding rows, is as
/// fast; above (prompts, the full forward), it is as fast or faster too: the tile kernel
/// stores and rescales its integer sums every 64-deep block, one 16 × 16 tile per
/// `tdpbsud` (`examples/amx_bench`: 1.2–1.3× for 8 to 32 rows, 1.14× at 64, 1.05× at 128;
/// the 124M full forward at 1024 rows was slower with tiles). Either gives the same bits.
pub const AMX_MIN_ROWS: usize = 8;

/// See `AMX_MIN_ROWS`.
pub const AMX_MAX_ROWS: usize = 64;

/// `linear_on`, with AMX tiles allowed or not (`tiles` is ignored where `amx::supported()`
/// is false).
#[allow(clippy::too_many_arguments)]
fn linear_with(
    isa: Isa,
    tiles: bool,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[Q8],
    scales: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    let tiles = tiles && crate::amx::supported();
    let panels = n.div_ceil(NR);
    let kp = padded_depth(k);
    assert_eq!(
        w.len(),
        panels_len(k, n),
        "W is not {k} x {n} in int8 panels"
    );
    assert_eq!(
        scales.len(),
        panels * NR,
        "scales are not one per panel column"
    );
    if !crate::linear::linear_operands(x, m, k, bias, act, y, n) {
        return;
    }
    let blocks = k.div_ceil(QBLOCK);
    let fast = isa == Isa::Avx512 && vnni();
    // AMX tiles take whole 64-deep blocks of 16 rows: the rows are padded below, the depth
    // must be whole blocks already (it is in every GPT-2).
    let tiles =
        fast && tiles && k.is_multiple_of(QBLOCK) && (AMX_MIN_ROWS..=AMX_MAX_ROWS).contains(&m);
    // Rows the quantized buffer holds: the tile kernel reads 16 at a time.
    let rows = if tiles {
        m.next_multiple_of(crate::amx::ROWS)
    } else {
        m
    };
    // Bytes from one quantized row to the next.
    let ld = if tiles {
        crate::amx::row_stride(kp)
    } else {
        kp
    };
    QUANTIZED.with(|qz| {
        let mut qz = qz.borrow_mut();
        let qz = &mut *qz;
        // Rows start on cache lines: a tile row read across two lines costs two.
        if qz.xq.len() < rows * ld + 64 {
            qz.xq.resize(rows * ld + 64, 0);
        }
        let start = qz.xq.as_ptr().align_offset(64).min(64);
        if qz.scales.len() < m * blocks {
            qz.scales.resize(m * blocks, 0.0);
            qz.offsets.resize(m * blocks, 0);
        }
        let (xq, xs, xo) = (
            &mut qz.xq[start..start + rows * ld],
            &mut qz.scales[..m * blocks],
            &mut qz.offsets[..m * blocks],
        );
        quantize_rows(isa, x, m, k, ld, &mut xq[..m * ld], xs, xo);
        let a = Rows {
            xq,
            scales: xs,
            offsets: xo,
            kp,
            ld,
            blocks,
        };
        // As `gemm::linear`: each thread brings its share of memory bandwidth.
        let t = crate::threads()
            .min(panels)
            .min((m * n * k / (1 << 16)).max(1));
        let yp = crate::SendPtr(y.as_mut_ptr());
        let avx2 = isa != Isa::Scalar && crate::cpu::available().contains(&Isa::Avx2);
        crate::linear::for_panel_ranges(panels, t, |p0, p1| {
            let (j0, j1) = (p0 * NR, (p1 * NR).min(n));
            if tiles {
                // SAFETY: as for `vnni_columns` below; `a.xq` holds `m` rows rounded up to
                // 16 (`rows`) and the depth is whole blocks (checked above); AMX is
                // supported (`tiles` implies `amx::enabled()` or a test's explicit choice
                // on a CPU where `amx::supported()`).
                unsafe { amx_columns(&a, m, w, scales, bias, yp.get(), n, p0, p1) }
            } else if fast {
                // SAFETY: this task writes only columns `p0·NR .. min(p1·NR, n)` of `y`'s m
                // rows, disjoint from every other task's, and `y` (m·n elements, checked
                // above) stays mutably borrowed until all tasks return; `w`, `scales` and
                // `a` hold every panel and row (checked above); the CPU has VNNI.
                unsafe { vnni_columns(&a, m, w, scales, bias, yp.get(), n, p0, p1) }
            } else {
                // Panels in groups that stay in L2 while every row passes over them, so the
                // rows of a batched step read each weight from memory once. A column's sum
                // is the same whatever the grouping.
                crate::linear::for_panel_groups(p0, p1, kp * NR, |g0, g1| {
                    let (c0, c1) = (g0 * NR, (g1 * NR).min(n));
                    for r in 0..m {
                        debug_assert!(r < m && c1 <= n && j0 <= c0 && c1 <= j1);
                        // SAFETY: row `r`'s columns `c0..c1` (inside `j0..j1`) are inside
                        // `y` (`r < m`, `c1 ≤ n`) and only this task touches them (as above).
                        let out = unsafe {
                            std::slice::from_raw_parts_mut(yp.get().add(r * n + c0), c1 - c0)
                        };
                        let (xq, xs, xo) = (
                            &a.xq[r * kp..(r + 1) * kp],
                            &a.scales[r * blocks..(r + 1) * blocks],
                            &a.offsets[r * blocks..(r + 1) * blocks],
                        );
                        let wp = &w[g0 * kp * NR..g1 * kp * NR];
                        let sc = &scales[c0..g1 * NR];
                        let b = bias.map(|b| &b[c0..c1]);
                        if avx2 {
                            // SAFETY: the CPU has AVX2 and FMA (checked above).
                            unsafe { avx2_panel_row(xq, xs, wp, sc, b, out) }
                        } else {
                            portable_panel_row(xq, xs, xo, wp, sc, b, out);
                        }
                    }
                });
            }
            // SAFETY: as above: columns `j0..j1` of `y`'s m rows are this task's alone.
            unsafe { act.apply(isa, yp.get(), m, n, j0, j1) }
        });
    })
}

/// Quantizes `m` rows of `x` into rows of `kp ≥ k` bytes of `xq` (zero past `k`), their
/// per-block scales and offsets into `xs` and `xo` (`k.div_ceil(QBLOCK)` per row); threaded
/// when there are many. `q4` quantizes its inputs with this too.
#[allow(clippy::too_many_arguments)]
pub(crate) fn quantize_rows(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    kp: usize,
    xq: &mut [i8],
    xs: &mut [f32],
    xo: &mut [i32],
) {
    debug_assert!(kp >= k && xq.len() == m * kp);
    let blocks = k.div_ceil(QBLOCK);
    let one = |r: usize, xq: &mut [i8], xs: &mut [f32], xo: &mut [i32]| {
        quantize_row(isa, &x[r * k..(r + 1) * k], xq, xs, xo)
    };
    if m * k < 1 << 16 || crate::threads() <= 1 {
        for r in 0..m {
            one(
                r,
                &mut xq[r * kp..(r + 1) * kp],
                &mut xs[r * blocks..(r + 1) * blocks],
                &mut xo[r * blocks..(r + 1) * blocks],
            );
        }
        return;
    }
    // Threads take whole rows; the per-row scales go in place through raw parts.
    let (sp, op) = (
        crate::SendPtr(xs.as_mut_ptr()),
        crate::SendPtr(xo.as_mut_ptr()),
    );
    crate::for_each_part(xq, kp, |r, row| {
        debug_assert!(r < m);
        // SAFETY: part `r < m` owns blocks `r·blocks .. (r + 1)·blocks` of `xs` and `xo`
        // (each `m·blocks` long), disjoint from every other part's, and both stay mutably
        // borrowed until `for_each_part` returns.
        let (s, o) = unsafe {
            (
                std::slice::from_raw_parts_mut(sp.get().add(r * blocks), blocks),
                std::slice::from_raw_parts_mut(op.get().add(r * blocks), blocks),
            )
        };
        one(r, row, s, o)
    });
}

/// Quantized activations of all rows.
struct Rows<'a> {
    xq: &'a [i8],
    scales: &'a [f32],
    offsets: &'a [i32],
    /// The padded depth.
    kp: usize,
    /// Bytes from one row of `xq` to the next: `kp`, or more for the tile kernel
    /// (`amx::row_stride`); zero past `kp`.
    ld: usize,
    /// Blocks per row.
    blocks: usize,
}

/// One row (`xq`, with its blocks' `xscales` and `xoffsets`) against the panels in `w` in
/// portable code (`out` holds the panels' columns, the last panel possibly partial): exact
/// integer sums per block, then the same f32 steps as the VNNI kernel.
fn portable_panel_row(
    xq: &[i8],
    xscales: &[f32],
    xoffsets: &[i32],
    w: &[Q8],
    scales: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let kp = xq.len();
    for (t, panel) in w.chunks_exact(kp * NR).enumerate() {
        let mut sums = [0f32; NR];
        for (b, (&s, &o)) in xscales.iter().zip(xoffsets).enumerate() {
            let (q0, q1) = (b * QBLOCK / 4, ((b + 1) * QBLOCK).min(kp) / 4);
            let mut acc = [0i32; NR];
            for q in q0..q1 {
                let xs = &xq[4 * q..4 * q + 4];
                let wq = &panel[q * 4 * NR..(q + 1) * 4 * NR];
                for (a, wj) in acc.iter_mut().zip(wq.chunks_exact(4)) {
                    *a += wj[0].0 as i32 * xs[0] as i32
                        + wj[1].0 as i32 * xs[1] as i32
                        + wj[2].0 as i32 * xs[2] as i32
                        + wj[3].0 as i32 * xs[3] as i32;
                }
            }
            for (sum, a) in sums.iter_mut().zip(acc) {
                *sum = s.mul_add((a - o) as f32, *sum);
            }
        }
        let end = ((t + 1) * NR).min(out.len());
        for (j, v) in out[t * NR..end].iter_mut().enumerate() {
            let sw = scales[t * NR + j];
            *v = match bias {
                Some(b) => sums[j].mul_add(sw, b[t * NR + j]),
                None => sums[j] * sw,
            };
        }
    }
}

/// One row of `linear` with AVX2 (no VNNI): per quad and 8 columns, the weights' signs are
/// moved onto the activations' magnitudes (`vpsignb`), so `vpmaddubsw` multiplies an
/// unsigned by a signed byte without saturating (|x|·|w| ≤ 127·127, two per 16-bit lane),
/// and `vpmaddwd` by ones adds the pairs. The sums are the same integers as the VNNI
/// kernel's, scaled by the same f32 steps.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_panel_row(
    xq: &[i8],
    xscales: &[f32],
    w: &[Q8],
    scales: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let kp = xq.len();
    assert!(w.len().is_multiple_of(kp * NR) && scales.len() >= w.len() / kp);
    assert!(out.len() <= w.len() / kp && bias.is_none_or(|b| b.len() == out.len()));
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(-128);
    for (t, panel) in w.chunks_exact(kp * NR).enumerate() {
        let mut sums = [_mm256_setzero_ps(); NR / 8];
        for (b, &s) in xscales.iter().enumerate() {
            let (q0, q1) = (b * QBLOCK / 4, ((b + 1) * QBLOCK).min(kp) / 4);
            let mut acc = [_mm256_setzero_si256(); NR / 8];
            for q in q0..q1 {
                let x4 = i32::from_le_bytes(std::array::from_fn(|i| xq[4 * q + i] as u8));
                let xb = _mm256_set1_epi32(x4);
                let xabs = _mm256_abs_epi8(xb);
                let wq = &panel[q * 4 * NR..(q + 1) * 4 * NR];
                for (c, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: `wq` holds 4·NR = 6 × 32 bytes; chunk `c < 6` is in it.
                    let wu = unsafe { _mm256_loadu_si256(wq.as_ptr().add(32 * c).cast()) };
                    // Offset binary to two's complement, then the activations' signs.
                    let ws = _mm256_sign_epi8(_mm256_xor_si256(wu, flip), xb);
                    let pairs = _mm256_maddubs_epi16(xabs, ws);
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(pairs, ones));
                }
            }
            let sv = _mm256_set1_ps(s);
            for (sum, &a) in sums.iter_mut().zip(&acc) {
                *sum = _mm256_fmadd_ps(sv, _mm256_cvtepi32_ps(a), *sum);
            }
        }
        let mut row = [0f32; NR];
        for (c, &sum) in sums.iter().enumerate() {
            // SAFETY: `row` holds NR = 6 × 8 floats and `c < 6`.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * c), sum) };
        }
        let end = ((t + 1) * NR).min(out.len());
        for (j, o) in out[t * NR..end].iter_mut().enumerate() {
            let sw = scales[t * NR + j];
            *o = match bias {
                Some(bv) => row[j].mul_add(sw, bv[t * NR + j]),
                None => row[j] * sw,
            };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn avx2_panel_row(
    _: &[i8],
    _: &[f32],
    _: &[Q8],
    _: &[f32],
    _: Option<&[f32]>,
    _: &mut [f32],
) {
    unreachable!("AVX2 is x86_64-only")
}

/// Rows of the VNNI micro-kernel. Up to `REG_ROWS` rows keep both their block's integer
/// sums and their f32 sums in registers (3 vectors each); more rows (a batched decode
/// step's) keep the integer sums in registers (24 of the 32) and the f32 sums in memory,
/// touched once per block. Eight rows in one pass load each weight once for all of them:
/// two passes of four over a panel stream the weights from memory in the first while the
/// second, from L2, leaves the memory idle.
const QMR: usize = 8;

/// Panels one row's product reads at once (see `vnni_columns`).
const STREAMS: usize = 2;

/// Rows whose f32 sums stay in registers in the VNNI micro-kernel.
const REG_ROWS: usize = 4;

/// Panels `p0..p1` of `linear` on this thread with the VNNI kernel.
///
/// # Safety
/// `y` points at `m·n` floats of which no other thread accesses columns `p0·NR..p1·NR`;
/// the CPU has AVX-512F, AVX-512BW and VNNI; `a` holds `m` rows; `w` and `scales` hold the
/// panels `p0..p1`; a bias has `n` elements.
#[allow(clippy::too_many_arguments)]
unsafe fn vnni_columns(
    a: &Rows,
    m: usize,
    w: &[Q8],
    scales: &[f32],
    bias: Option<&[f32]>,
    y: *mut f32,
    n: usize,
    p0: usize,
    p1: usize,
) {
    let kp = a.kp;
    let tile = |i0: usize, t: usize| {
        let col = t * NR;
        let cols = (n - col).min(NR);
        debug_assert!((t + 1) * kp * NR <= w.len() && (t + 1) * NR <= scales.len());
        debug_assert!(bias.is_none_or(|b| col + cols <= b.len()));
        debug_assert!(i0 * kp < a.xq.len() && i0 * a.blocks < a.scales.len());
        Tile {
            xq: a.xq[i0 * kp..].as_ptr(),
            scales: a.scales[i0 * a.blocks..].as_ptr(),
            offsets: a.offsets[i0 * a.blocks..].as_ptr(),
            kp,
            blocks: a.blocks,
            w: w[t * kp * NR..].as_ptr().cast::<u8>(),
            sw: scales[col..].as_ptr(),
            bias: bias.map_or(std::ptr::null(), |b| b[col..].as_ptr()),
            // SAFETY: row `i0 < m`, column `col < n`: inside `y` (caller).
            y: unsafe { y.add(i0 * n + col) },
            ldy: n,
            cols,
        }
    };
    if m == 1 {
        // One row (a decoding step) reads its panels from STREAMS places at once: panel i
        // of each of STREAMS equal parts of the range. One core's single stream does not
        // reach the memory bandwidth on every CPU (on the Xeon it was measured on, 2/3 of it);
        // several do. Each panel's sums are those of `vnni_tile::<1>`, bit for bit.
        let part = (p1 - p0).div_ceil(STREAMS);
        for i in 0..part {
            let mut ts = [0; STREAMS];
            for (j, t) in ts.iter_mut().enumerate() {
                *t = p0 + j * part + i;
            }
            // SAFETY: row 0 of `a` and `y`, panels `ts` (those below `p1`), their scales
            // and columns are in bounds and this task's (as for the tiles below).
            unsafe {
                if ts[STREAMS - 1] < p1 {
                    vnni_row_panels(ts.map(|t| tile(0, t)));
                } else {
                    for &t in ts.iter().filter(|&&t| t < p1) {
                        vnni_tile::<1>(tile(0, t));
                    }
                }
            }
        }
        return;
    }
    crate::linear::for_each_tile(m, n, p0, p1, QMR, kp * NR, |i0, rows, t, _, _| {
        debug_assert!((i0 + rows) * kp <= a.xq.len());
        debug_assert!((i0 + rows) * a.blocks <= a.scales.len());
        let tile = tile(i0, t);
        // SAFETY: rows `i0..i0 + rows` of `a` and `y`, panel `t`, its scales and
        // `cols ≤ NR` columns of bias and `y` are in bounds (checked above); the
        // columns are this task's (caller); the CPU has VNNI (caller).
        unsafe {
            match rows {
                8 => vnni_tile::<8>(tile),
                7 => vnni_tile::<7>(tile),
                6 => vnni_tile::<6>(tile),
                5 => vnni_tile::<5>(tile),
                4 => vnni_tile::<4>(tile),
                3 => vnni_tile::<3>(tile),
                2 => vnni_tile::<2>(tile),
                _ => vnni_tile::<1>(tile),
            }
        }
    });
}

/// What one micro-kernel call reads and writes.
#[derive(Clone, Copy)]
struct Tile {
    /// First row's quantized activations (`kp` bytes per row) and per-block scales and
    /// offsets (`blocks` per row).
    xq: *const i8,
    scales: *const f32,
    offsets: *const i32,
    kp: usize,
    blocks: usize,
    /// The panel (`kp / 4` quads of `4·NR` bytes) and its `NR` column scales.
    w: *const u8,
    sw: *const f32,
    /// `cols` bias elements, or null.
    bias: *const f32,
    /// First row's first output, `ldy` floats per row, `cols ≤ NR` of them.
    y: *mut f32,
    ldy: usize,
    cols: usize,
}

/// `R` rows × one panel: `y = sw ⊙ Σ_b s_b·(Σ (wq + 128)·xq − 128·Σ xq) + bias`.
///
/// # Safety
/// The CPU has AVX-512F, AVX-512BW and VNNI; `t` describes `R` readable rows, a whole
/// panel and `cols ≤ NR` writable outputs per row (see `Tile`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_tile<const R: usize>(t: Tile) {
    use std::arch::x86_64::*;
    debug_assert!((1..=NR).contains(&t.cols) && t.kp.is_multiple_of(4));
    let mut sums = [[_mm512_setzero_ps(); 3]; R];
    // The f32 sums of more than `REG_ROWS` rows, in memory (see `QMR`).
    let mut spilled = [[0f32; NR]; R];
    for b in 0..t.blocks {
        let (q0, q1) = (b * QBLOCK / 4, ((b + 1) * QBLOCK).min(t.kp) / 4);
        let mut acc = [[_mm512_setzero_si512(); 3]; R];
        for q in q0..q1 {
            // SAFETY: quad `q < kp / 4` of the panel is `4·NR` = 3 × 64 bytes at `q·4·NR`;
            // row `i < R` has `kp` bytes from `i·kp`, of which `4q..4q + 4` (caller).
            unsafe {
                let wq = t.w.add(q * 4 * NR);
                let w0 = _mm512_loadu_si512(wq.cast());
                let w1 = _mm512_loadu_si512(wq.add(64).cast());
                let w2 = _mm512_loadu_si512(wq.add(128).cast());
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x4 = t.xq.add(i * t.kp + 4 * q).cast::<i32>().read_unaligned();
                    let xb = _mm512_set1_epi32(x4);
                    acc[0] = _mm512_dpbusd_epi32(acc[0], w0, xb);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], w1, xb);
                    acc[2] = _mm512_dpbusd_epi32(acc[2], w2, xb);
                }
            }
        }
        for (i, (acc, sums)) in acc.iter().zip(sums.iter_mut()).enumerate() {
            // SAFETY: block `b < blocks` of row `i < R` (caller).
            let (s, o) = unsafe {
                (
                    _mm512_set1_ps(*t.scales.add(i * t.blocks + b)),
                    _mm512_set1_epi32(*t.offsets.add(i * t.blocks + b)),
                )
            };
            for (v, (sum, &a)) in sums.iter_mut().zip(acc).enumerate() {
                let x = _mm512_cvtepi32_ps(_mm512_sub_epi32(a, o));
                if R <= REG_ROWS {
                    *sum = _mm512_fmadd_ps(s, x, *sum);
                } else {
                    // SAFETY: vector `v < 3` of row `i < R` of `spilled` ([f32; NR] rows).
                    unsafe {
                        let p = spilled[i].as_mut_ptr().add(16 * v);
                        _mm512_storeu_ps(p, _mm512_fmadd_ps(s, x, _mm512_loadu_ps(p)));
                    }
                }
            }
        }
    }
    if R > REG_ROWS {
        for (sums, row) in sums.iter_mut().zip(&spilled) {
            for (v, sum) in sums.iter_mut().enumerate() {
                // SAFETY: vector `v < 3` of a row of NR = 48 floats.
                *sum = unsafe { _mm512_loadu_ps(row.as_ptr().add(16 * v)) };
            }
        }
    }
    // SAFETY: `t` has `cols` scales, bias elements (or none) and writable outputs in each
    // of its R rows (caller).
    unsafe { write_scaled(&t, R, |i, v| sums[i][v]) }
}

/// One row × `STREAMS` panels, each as `vnni_tile::<1>` computes it (the same sums in the
/// same order), their weights loaded side by side: `STREAMS` streams from memory.
///
/// # Safety
/// As `vnni_tile::<1>` for each tile; the tiles share their row (`xq`, `scales`, `offsets`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_row_panels(ts: [Tile; STREAMS]) {
    use std::arch::x86_64::*;
    let t = &ts[0];
    debug_assert!(ts
        .iter()
        .all(|u| u.xq == t.xq && (1..=NR).contains(&u.cols)));
    debug_assert!(t.kp.is_multiple_of(4));
    let mut sums = [[_mm512_setzero_ps(); 3]; STREAMS];
    for b in 0..t.blocks {
        let (q0, q1) = (b * QBLOCK / 4, ((b + 1) * QBLOCK).min(t.kp) / 4);
        let mut acc = [[_mm512_setzero_si512(); 3]; STREAMS];
        for q in q0..q1 {
            // SAFETY: quad `q < kp / 4` of each panel is `4·NR` = 3 × 64 bytes at `q·4·NR`;
            // the row has `kp` bytes, of which `4q..4q + 4` (caller).
            unsafe {
                let xb = _mm512_set1_epi32(t.xq.add(4 * q).cast::<i32>().read_unaligned());
                for (u, acc) in ts.iter().zip(acc.iter_mut()) {
                    let wq = u.w.add(q * 4 * NR);
                    acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_loadu_si512(wq.cast()), xb);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], _mm512_loadu_si512(wq.add(64).cast()), xb);
                    acc[2] =
                        _mm512_dpbusd_epi32(acc[2], _mm512_loadu_si512(wq.add(128).cast()), xb);
                }
            }
        }
        // SAFETY: block `b < blocks` of the row (caller).
        let (s, o) = unsafe {
            (
                _mm512_set1_ps(*t.scales.add(b)),
                _mm512_set1_epi32(*t.offsets.add(b)),
            )
        };
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            for (sum, &a) in sums.iter_mut().zip(acc) {
                *sum = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(_mm512_sub_epi32(a, o)), *sum);
            }
        }
    }
    for (u, sums) in ts.iter().zip(&sums) {
        // SAFETY: each tile has `cols` scales, bias elements (or none) and writable
        // outputs in its row (caller).
        unsafe { write_scaled(u, 1, |_, v| sums[v]) }
    }
}

/// `y = sw ⊙ sum + bias` (or `sw ⊙ sum`) for `rows` rows of a tile, the last step of both
/// int8 kernels (`sum(i, v)`: row i's vector v of f32 sums, columns `16v..16v + 16`).
/// Inlined into each kernel, so it is compiled with the kernel's target features.
///
/// # Safety
/// The CPU has AVX-512F; `t` has `t.cols ≤ NR` scales, bias elements (or none) and
/// writable outputs in each of `rows` rows (see `Tile`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn write_scaled(
    t: &Tile,
    rows: usize,
    sum: impl Fn(usize, usize) -> std::arch::x86_64::__m512,
) {
    use std::arch::x86_64::*;
    debug_assert!((1..=NR).contains(&t.cols));
    for v in 0..3 {
        let mv = crate::linear::lane_mask(t.cols, v);
        if mv == 0 {
            continue;
        }
        // SAFETY: lanes under the mask are columns `16v + l < cols`: scale and bias
        // elements that exist, outputs of rows `i < rows` that are writable (caller).
        unsafe {
            let sw = _mm512_maskz_loadu_ps(mv, t.sw.add(16 * v));
            let bias = if t.bias.is_null() {
                None
            } else {
                Some(_mm512_maskz_loadu_ps(mv, t.bias.add(16 * v)))
            };
            for i in 0..rows {
                let out = match bias {
                    Some(b) => _mm512_fmadd_ps(sum(i, v), sw, b),
                    None => _mm512_mul_ps(sum(i, v), sw),
                };
                _mm512_mask_storeu_ps(t.y.add(i * t.ldy + 16 * v), mv, out);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn vnni_tile<const R: usize>(_: Tile) {
    unreachable!("the VNNI kernel is x86_64-only")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn vnni_row_panels(_: [Tile; STREAMS]) {
    unreachable!("the VNNI kernel is x86_64-only")
}

/// Blocks of depth in a chunk of a panel in the AMX kernel: 4 blocks of 48 columns are
/// 12 KB, which stay in L1 while every tile of rows passes over them. Tile loads from L2
/// stall the tile unit; from L1 they keep up with it.
const CHUNK_BLOCKS: usize = 4;

/// The three integer tiles of an AMX block, as stored.
#[repr(C, align(64))]
struct Ints([[i32; 16 * 16]; 3]);

/// The f32 sums of one tile of 16 rows over a panel.
#[derive(Clone)]
#[repr(C, align(64))]
struct Sums([[f32; NR]; 16]);

thread_local! {
    /// This thread's sums of every tile of rows over its current panel, grown to the
    /// largest product seen.
    static TILE_SUMS: std::cell::RefCell<Vec<Sums>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Panels `p0..p1` of `linear` on this thread with AMX tiles: panel by panel, chunk by
/// chunk of depth, every tile of 16 rows over the chunk (`amx_chunk`), the f32 sums kept in
/// memory between chunks; then the column scales and bias (`amx_write`).
///
/// # Safety
/// As `vnni_columns`, and: `amx::supported()`; `a.xq` holds `m` rows rounded up to 16;
/// `a.kp` is a multiple of `QBLOCK`; rows of `a.xq` are `a.ld` bytes apart.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn amx_columns(
    a: &Rows,
    m: usize,
    w: &[Q8],
    scales: &[f32],
    bias: Option<&[f32]>,
    y: *mut f32,
    n: usize,
    p0: usize,
    p1: usize,
) {
    use crate::amx::ROWS;
    let (kp, ld, blocks) = (a.kp, a.ld, a.blocks);
    let row_tiles = m.div_ceil(ROWS);
    assert!(kp == blocks * QBLOCK && ld >= kp && a.xq.len() >= row_tiles * ROWS * ld);
    assert!(a.scales.len() >= m * blocks && a.offsets.len() >= m * blocks);
    assert!(w.len() >= p1 * kp * NR && scales.len() >= p1 * NR);
    assert!(bias.is_none_or(|b| b.len() >= n));
    TILE_SUMS.with(|sums| {
        let mut sums = sums.borrow_mut();
        if sums.len() < row_tiles {
            sums.resize(row_tiles, Sums([[0.0; NR]; 16]));
        }
        // SAFETY: AMX is supported (caller).
        unsafe { crate::amx::configure() };
        for t in p0..p1 {
            let (col, cols) = (t * NR, (n - t * NR).min(NR));
            let tile = |r: usize| Tile {
                xq: a.xq[r * ROWS * ld..].as_ptr(),
                scales: a.scales[r * ROWS * blocks..].as_ptr(),
                offsets: a.offsets[r * ROWS * blocks..].as_ptr(),
                kp: ld,
                blocks,
                w: w[t * kp * NR..].as_ptr().cast::<u8>(),
                sw: scales[col..].as_ptr(),
                bias: bias.map_or(std::ptr::null(), |b| b[col..].as_ptr()),
                // SAFETY: row `16r < m`, column `col < n`: inside `y` (caller).
                y: unsafe { y.add(r * ROWS * n + col) },
                ldy: n,
                cols,
            };
            for b0 in (0..blocks).step_by(CHUNK_BLOCKS) {
                let b1 = (b0 + CHUNK_BLOCKS).min(blocks);
                for (r, sums) in sums[..row_tiles].iter_mut().enumerate() {
                    let rows = (m - r * ROWS).min(ROWS);
                    // SAFETY: 16 rows of `a.xq` from row `16r` are readable, `rows` rows of
                    // scales and offsets, and blocks `b0..b1` of panel `t` (asserted
                    // above); the tiles are configured.
                    unsafe { amx_chunk(&tile(r), rows, b0, b1, sums, r == 0) }
                }
            }
            for (r, sums) in sums[..row_tiles].iter().enumerate() {
                let rows = (m - r * ROWS).min(ROWS);
                // SAFETY: `rows` rows and `cols` columns of `y` from row `16r`, column `col`
                // are this task's (caller), as are their scales and bias (asserted above).
                unsafe { amx_write(&tile(r), rows, sums) }
            }
        }
        // SAFETY: AMX is supported (caller).
        unsafe { crate::amx::release() };
    })
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn amx_columns(
    _: &Rows,
    _: usize,
    _: &[Q8],
    _: &[f32],
    _: Option<&[f32]>,
    _: *mut f32,
    _: usize,
    _: usize,
    _: usize,
) {
    unreachable!("AMX is x86_64-only")
}

/// Adds block `b`'s integer sums (in `ints`) of `rows` rows to their f32 sums, as
/// `vnni_tile` does.
///
/// # Safety
/// The CPU has AVX-512F; `t` has `rows` rows of `t.blocks > b` scales and offsets.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn add_tile_block(t: &Tile, rows: usize, b: usize, ints: &Ints, sums: &mut Sums) {
    use std::arch::x86_64::*;
    for (i, row) in sums.0.iter_mut().enumerate().take(rows) {
        // SAFETY: block `b < blocks` of row `i < rows` (caller); row `i < 16` of each
        // 16 × 16 tile and vector `v < 3` of an NR = 48 float row.
        unsafe {
            let s = _mm512_set1_ps(*t.scales.add(i * t.blocks + b));
            let o = _mm512_set1_epi32(*t.offsets.add(i * t.blocks + b));
            for (v, ints) in ints.0.iter().enumerate() {
                let a = _mm512_load_si512(ints.as_ptr().add(16 * i).cast());
                let x = _mm512_cvtepi32_ps(_mm512_sub_epi32(a, o));
                let p = row.as_mut_ptr().add(16 * v);
                _mm512_storeu_ps(p, _mm512_fmadd_ps(s, x, _mm512_loadu_ps(p)));
            }
        }
    }
}

/// `rows ≤ 16` rows × blocks `b0..b1` of one panel with AMX tiles, added to `sums` (which
/// the first chunk, `b0 = 0`, starts from zero) exactly as `vnni_tile` adds: per 64-deep
/// block, `tdpbsud` multiplies 16 rows of signed activations (tile 3) by the panel's three
/// 16-column slices of offset weights (tiles 4–6; a panel quad is one 64-byte row of each)
/// into three tiles of exact integer sums (0–2). Those are stored and scaled into the f32
/// sums while the tile unit already multiplies the next block. With `stream` (the first
/// rows over a chunk, which read it from memory) the panel is prefetched ahead.
///
/// # Safety
/// The CPU has AVX-512F, AVX-512BW and AMX, the tiles are configured; `t` describes 16
/// readable rows of activations `t.kp ≥ 64·b1` bytes apart, `rows` rows of scales and
/// offsets, and a panel of at least `b1` blocks (see `Tile`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn amx_chunk(t: &Tile, rows: usize, b0: usize, b1: usize, sums: &mut Sums, stream: bool) {
    use crate::amx::{dp_signed_unsigned, load, store, zero, ROWS, ROW_BYTES};
    debug_assert!(rows <= ROWS && b0 < b1 && b1 <= t.blocks && t.kp >= b1 * QBLOCK);
    if b0 == 0 {
        sums.0[..rows].iter_mut().for_each(|r| r.fill(0.0));
    }
    // Block b's integer tiles go to `ints[b % 2]`: adding block b − 1 then reads stores
    // made an iteration earlier, not ones the tile unit may still be writing.
    let mut ints = [Ints([[0; 16 * 16]; 3]), Ints([[0; 16 * 16]; 3])];
    let quad = 4 * NR;
    for b in b0..b1 {
        // SAFETY: the tiles are configured (caller). Tile 3 reads 16 rows of 64 bytes at
        // byte `64b` of each row (`kp` apart, readable by the caller's contract); tiles 4–6
        // read quads `16b .. 16b + 16` of the panel, 64 bytes each at offsets 0, 64, 128 of
        // a 192-byte quad; `ints` holds three 16 × 64-byte tiles.
        unsafe {
            let wb = t.w.add(b * (QBLOCK / 4) * quad);
            if stream {
                crate::amx::prefetch_ahead(wb, (QBLOCK / 4) * quad);
            }
            load!(3, t.xq.add(b * QBLOCK), t.kp);
            load!(4, wb, quad);
            load!(5, wb.add(ROW_BYTES), quad);
            load!(6, wb.add(2 * ROW_BYTES), quad);
            dp_signed_unsigned!(0, 3, 4);
            dp_signed_unsigned!(1, 3, 5);
            dp_signed_unsigned!(2, 3, 6);
            if b > b0 {
                add_tile_block(t, rows, b - 1, &ints[(b - 1) % 2], sums);
            }
            let out = &mut ints[b % 2].0;
            store!(0, out[0].as_mut_ptr(), ROW_BYTES);
            store!(1, out[1].as_mut_ptr(), ROW_BYTES);
            store!(2, out[2].as_mut_ptr(), ROW_BYTES);
            zero!(0);
            zero!(1);
            zero!(2);
        }
    }
    // SAFETY: block `b1 − 1 < blocks` (caller).
    unsafe { add_tile_block(t, rows, b1 - 1, &ints[(b1 - 1) % 2], sums) };
}

/// `y = sw ⊙ sums + bias` for `rows` rows of one tile of rows, as `vnni_tile` finishes.
///
/// # Safety
/// The CPU has AVX-512F; `t` has `t.cols ≤ NR` scales, bias elements (or none) and
/// writable outputs in each of `rows` rows (see `Tile`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn amx_write(t: &Tile, rows: usize, sums: &Sums) {
    use std::arch::x86_64::*;
    debug_assert!(rows <= 16 && (1..=NR).contains(&t.cols));
    // SAFETY: `t` has `cols` scales, bias elements (or none) and writable outputs in each
    // of `rows ≤ 16` rows (caller); `sums` has 16 rows of NR = 3 × 16 floats.
    unsafe {
        write_scaled(t, rows, |i, v| {
            _mm512_loadu_ps(sums.0[i].as_ptr().add(16 * v))
        })
    }
}

/// Row `r` of a `[rows, width]` table stored transposed in int8 panels (the tied LM head's
/// weight, `width` deep): `out[p] = wq[p, r] · scales[r]`.
pub fn gather_row(w: &[Q8], scales: &[f32], rows: usize, width: usize, r: usize, out: &mut [f32]) {
    assert!(r < rows && out.len() == width && w.len() == panels_len(width, rows));
    let s = scales[r];
    // Column `r`'s quads: four bytes each, one quad of the panel (4·NR bytes) apart.
    let first = panel_index(width, 0, r);
    let quads = w[first..].chunks(4 * NR).map(|q| &q[..4]);
    for (o4, q) in out.chunks_mut(4).zip(quads) {
        for (o, b) in o4.iter_mut().zip(q) {
            *o = (b.0 as i32 - 128) as f32 * s;
        }
    }
}

/// `values` (a `[k, n]` row-major matrix already on a column's int8 grid, `q[p·n + j]`) in
/// int8 panels: for the compiler and tests.
pub fn pack(q: &[i8], k: usize, n: usize) -> Vec<Q8> {
    assert_eq!(q.len(), k * n);
    let mut out = vec![Q8(128); panels_len(k, n)];
    for p in 0..k {
        for j in 0..n {
            out[panel_index(k, p, j)] = Q8((q[p * n + j] as i32 + 128) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{rand_vec, same_bits_on_every_isa};

    /// A random int8 weight on a column grid, its scales (padded) and the f32 matrix.
    fn weight(k: usize, n: usize, seed: &mut u64) -> (Vec<i8>, Vec<f32>) {
        let q: Vec<i8> = rand_vec(k * n, seed)
            .iter()
            .map(|v| (v * 127.0).round().clamp(-127.0, 127.0) as i8)
            .collect();
        let scales: Vec<f32> = (0..n.div_ceil(NR) * NR)
            .map(|j| 0.01 + 0.001 * (j % 7) as f32)
            .collect();
        (q, scales)
    }

    #[test]
    fn quantized_blocks_round_to_even_within_half_a_step() {
        let x = [0.0, 1.0, -2.0, 0.5, 127.0 / 254.0 * 2.0, 3.0];
        let mut q = [0i8; 6];
        let (s, sum) = quantize_block(&x, &mut q);
        assert_eq!(s, 3.0 / 127.0);
        assert_eq!(q[5], 127);
        assert_eq!(q[2], -85); // -84.67
        assert_eq!(sum, q.iter().map(|&v| v as i32).sum::<i32>());
        for (&v, &r) in x.iter().zip(&q) {
            assert!((v - r as f32 * s).abs() <= s / 2.0 * 1.0001);
        }
        assert_eq!(quantize_block(&[0.0; 4], &mut [1; 4]), (0.0, 0));
    }

    #[test]
    fn quantized_blocks_are_the_definition_bit_for_bit() {
        // The definition, one value at a time.
        fn reference(x: &[f32], q: &mut [i8]) -> (f32, i32) {
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            if amax == 0.0 {
                q.fill(0);
                return (0.0, 0);
            }
            let inv = 127.0 / amax;
            let mut sum = 0;
            for (o, &v) in q.iter_mut().zip(x) {
                *o = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
                sum += *o as i32;
            }
            (amax / 127.0, sum)
        }
        let mut seed = 11;
        for len in [1usize, 15, 16, 17, 64] {
            for case in 0..50 {
                let mut x = rand_vec(len, &mut seed);
                // Exact ties (k + 1/2 steps of a block whose largest value is 127), zeros,
                // NaNs and infinities.
                match case % 5 {
                    1 => x.iter_mut().enumerate().for_each(|(i, v)| {
                        *v = if i == 0 {
                            127.0
                        } else {
                            (i % 120) as f32 + 0.5
                        }
                    }),
                    2 => x[len / 2] = f32::NAN,
                    3 => x[0] = f32::INFINITY,
                    4 => x.iter_mut().step_by(2).for_each(|v| *v = 0.0),
                    _ => {}
                }
                let (mut a, mut b) = (vec![0i8; len], vec![0i8; len]);
                let (sa, ua) = quantize_block(&x, &mut a);
                let (sb, ub) = reference(&x, &mut b);
                assert_eq!((sa.to_bits(), ua, &a), (sb.to_bits(), ub, &b), "{x:?}");
            }
        }
    }

    #[test]
    fn every_isa_gives_the_same_bits_and_matches_the_dequantized_reference() {
        let mut seed = 5;
        for &(m, k, n) in &[
            (1, 1, 1),
            (2, 0, 5),
            (1, 768, 100),
            (3, 70, 48),
            (5, 130, 97),
            (9, 64, 200),
            (8, 200, 96),
            (15, 64, 49),
            (1, 3072, 50),
            // One row: panels in pairs from the two halves of each thread's range, and
            // one left over.
            (1, 256, 480),
            (1, 64, 1000),
            // Where the CPU has AMX: one partial tile of rows, several, a ragged panel.
            (16, 768, 48),
            (33, 128, 97),
            (2, 192, 5),
        ] {
            let mut x = rand_vec(m * k, &mut seed);
            if let Some(v) = x.first_mut() {
                *v *= 40.0; // an outlier in the first block
            }
            let (q, scales) = weight(k, n, &mut seed);
            let w = pack(&q, k, n);
            let b = rand_vec(n, &mut seed);
            // The reference: quantize the rows as the kernel does, then f64 sums.
            let kp = padded_depth(k);
            let blocks = k.div_ceil(QBLOCK);
            let mut want = vec![0f64; m * n];
            for r in 0..m {
                let (mut xq, mut xs, mut xo) = (vec![0i8; kp], vec![0f32; blocks], vec![0; blocks]);
                quantize_row(
                    Isa::Scalar,
                    &x[r * k..(r + 1) * k],
                    &mut xq,
                    &mut xs,
                    &mut xo,
                );
                for j in 0..n {
                    let mut acc = 0f64;
                    for p in 0..k {
                        let xv = xq[p] as f64 * xs[p / QBLOCK] as f64;
                        acc += xv * q[p * n + j] as f64 * scales[j] as f64;
                    }
                    want[r * n + j] = acc + b[j] as f64;
                }
            }
            use Activation::{Gelu, Identity};
            for (bias, act) in [
                (None, Identity),
                (Some(&b[..]), Identity),
                (Some(&b[..]), Gelu),
            ] {
                let want: Vec<f64> = want
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        let w = w - if bias.is_some() { 0.0 } else { b[i % n] as f64 };
                        match act {
                            Gelu => crate::vmath::gelu(w as f32) as f64,
                            Identity => w,
                        }
                    })
                    .collect();
                let tol = |w: f64| 1e-5 * (k as f64).sqrt() * w.abs().max(1.0);
                same_bits_on_every_isa(&format!("{m}x{k}x{n} {act:?}"), &want, tol, |isa, y| {
                    linear_on(isa, &x, m, k, &w, &scales, bias, act, y, n)
                });
            }
        }
    }

    #[test]
    fn gathered_rows_are_the_dequantized_columns() {
        let mut seed = 9;
        let (width, rows) = (70, 100);
        let (q, scales) = weight(width, rows, &mut seed);
        let w = pack(&q, width, rows);
        let mut out = vec![0f32; width];
        for r in [0, 47, 48, 99] {
            gather_row(&w, &scales, rows, width, r, &mut out);
            for p in 0..width {
                assert_eq!(out[p], q[p * rows + r] as f32 * scales[r]);
            }
        }
    }
}
