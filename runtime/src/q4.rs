//! The 4-bit Linear (`GPT2_WEIGHTS=q4`): weights stored as 4-bit integers with an int8
//! scale per column and block of `BLOCK` input rows and one f32 unit per column (by the
//! compiler), activations quantized to int8 per block of `q8::QBLOCK` at run time exactly
//! as `q8` does, integer dot products (AVX-512 VNNI `vpdpbusd` where the CPU has it, AVX2
//! `vpmaddubsw`, or portable code), f32 scaling in a fixed order: every ISA computes the
//! same bits.
//!
//! **Weights.** Weight `(p, j)` is `q · s · u`: `q` in [−8, 7], `s` the int8 scale of its
//! block of 16 rows, `u` the column's unit. 4.5 bits per weight, as ggml's k-quants: half
//! a bit per weight of block scales buys blocks of 16 (not 32 with an f16 scale each),
//! which took top-1 agreement on the default model from 96.97% to 97.56%
//! (`gpt2c accuracy`, README "Weight formats"). `quantize_line` is the rule, shared by the
//! compiler and tests: each block's best scale as `quantize_weights` finds it, the unit
//! the largest of them over 127, each block's `s` the multiple of the unit near its best
//! scale whose rounded block is closest to it.
//!
//! **Panels.** `⌈n / NR⌉` panels of `NR` columns, as for `q8`, the depth padded to whole
//! blocks with zero weights. The depth is taken eight rows at a time (a *pair* of quads):
//! pair `g` is `4·NR` bytes, column by column four bytes each, byte `i` of column `j`
//! holding `q + 8` of row `8g + i` in its low nibble and of row `8g + 4 + i` in its high
//! nibble. One 32-bit lane is thus one column's two quads: `and 0x0F` gives the first's
//! four unsigned weights, `>> 4` the second's, which is what `vpdpbusd` (unsigned × signed
//! bytes) and `vpmaddubsw` multiply with four activations. The scales are a second
//! stream of bytes, per panel the `NR` units (f32, little-endian) and then `[block][NR]`
//! int8 scales, read in the same order as the weights.
//!
//! **Sums.** Per activation block `A` (scale `s_A`, `QBLOCK` rows: `QBLOCK / BLOCK` weight
//! blocks) the exact integer `i_A[j] = Σ_{b∈A} s[b, j] · (Σ_{k∈b} (q[k, j] + 8) · xq[k] −
//! 8 · Σ_{k∈b} xq[k])` (at most 4 · 127 · 16 · 8 · 128 < 2²⁴ in magnitude, so exact as an
//! f32 too), then `y[j] = u[j] · Σ_A s_A · i_A[j] + bias[j]`: the outer sum f32 in block
//! order, each step `fma(s_A, i_A, sum)`, then one multiply by the unit and a plain add of
//! the bias.
//!
//! A kernel family beside `q8` (whose activation quantization it uses), on `cpu`,
//! `layout`, `elem` and the shared `linear`; the `kernels` facade calls it.

use crate::cpu::{detected, Isa};
use crate::elem::{F16, Q4};
use crate::layout::NR;
use crate::linear::Activation;
use crate::q8::QBLOCK;

/// Input rows per weight block (one int8 scale per block and column). A multiple of 8 that
/// divides `q8::QBLOCK`, so a weight block lies in one activation block.
pub const BLOCK: usize = 16;

const _: () = assert!(BLOCK.is_multiple_of(8) && QBLOCK.is_multiple_of(BLOCK));
// The AVX2 kernel adds a block's products in 16 bits: at most 4 · 2 · 15 · 128 per lane.
const _: () = assert!(BLOCK <= 32);
// An activation block's integer sum stays exact in f32 (see the module docs).
const _: () = assert!((QBLOCK / BLOCK) * 127 * BLOCK * 8 * 128 < 1 << 24);

/// Rows of a pair of quads: four bytes per column, two nibbles each.
const PAIR: usize = 8;

/// Weight blocks per activation block.
const PER_ABLOCK: usize = QBLOCK / BLOCK;

/// How far ahead of its loads the AVX2 kernel prefetches the weights, in bytes. One
/// decode step's Linears of GPT-2 124M on two Zen 3 cores (`examples/q4_bench.rs`, six
/// alternating runs): 3.97-4.42 ms without it, 1.07-1.40x a plain read of the same bytes
/// in the same run; 3.43-4.37 ms with it, 0.99-1.17x. 4 KB and 8 KB did no better. The
/// VNNI kernel too: on two Zen 4 cores (`q4_bench 20 2 avx512`, three alternated runs, the
/// kernel's best over the plain read's best) 1.53-1.60x without it and with one `vpdpbusd`
/// chain per vector, 1.33-1.79x with two chains, 1.01-1.38x with two chains and it.
const PREFETCH: usize = 2048;

/// The stored depth of a `k`-deep weight: `k` rounded up to whole blocks.
pub fn padded_depth(k: usize) -> usize {
    k.next_multiple_of(BLOCK)
}

/// Bytes (`Q4` elements) of a `[k, n]` weight in 4-bit panels.
pub fn panels_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * padded_depth(k) / 2 * NR
}

/// Bytes of one panel's scales: `NR` f32 units, then an int8 scale per block and column.
pub fn panel_scales_len(k: usize) -> usize {
    NR * (4 + padded_depth(k) / BLOCK)
}

/// Bytes of the scales of a `[k, n]` weight (`panel_scales_len` per panel).
pub fn scales_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * panel_scales_len(k)
}

/// Where weight `(p, j)` (row `p < k`, column `j < n`) of a `k`-deep matrix is: the index
/// of its byte in the panels and whether it is the high nibble.
pub fn panel_index(k: usize, p: usize, j: usize) -> (usize, bool) {
    let kp = padded_depth(k);
    let at = (j / NR) * kp / 2 * NR + (p / PAIR) * 4 * NR + (j % NR) * 4 + p % 4;
    (at, p % PAIR >= 4)
}

/// Byte index of the int8 scale of block `b` (rows `b·BLOCK..`) of column `j` of a
/// `k`-deep matrix.
pub fn scale_index(k: usize, b: usize, j: usize) -> usize {
    (j / NR) * panel_scales_len(k) + 4 * NR + b * NR + j % NR
}

/// Byte index of the f32 unit of column `j` of a `k`-deep matrix (four bytes).
pub fn unit_index(k: usize, j: usize) -> usize {
    (j / NR) * panel_scales_len(k) + 4 * (j % NR)
}

/// `x` in steps of `d`, the nearest of −8..=7 (0 for `d = 0`): how every weight rounds.
fn round(x: f32, d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        (x / d).round().clamp(-8.0, 7.0)
    }
}

/// The 4-bit values of one block of weights (at most `BLOCK` of them) into `q` (same
/// length) and their scale `d` (an f16), `q = round(v / d)` in [−8, 7]: of the scales
/// `m / −8` (ggml q4_0's, `m` the first value of largest magnitude) and
/// the least-squares scales of `round(v / c)` for `c = m / −(8 + i/10)`, `i` in −9..=9, and
/// of `round(v / c')` for each such scale `c'`, all rounded to f16: the one whose rounded
/// block is closest to `v` (squared error; the first on ties). All zeros
/// (`d = 0`) for a block of zeros.
pub fn quantize_weights(v: &[f32], q: &mut [i8]) -> F16 {
    let m = v
        .iter()
        .fold(0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
    if m == 0.0 {
        q.fill(0);
        return F16(0);
    }
    let error = |d: f32| {
        v.iter()
            .map(|&x| {
                let e = (x - round(x, d) * d) as f64;
                e * e
            })
            .sum::<f64>()
    };
    let d0 = F16::from_f32(m / -8.0);
    let mut best = (d0, error(d0.widen()));
    // Many starting points end at the same f16 scale. A scale already scored cannot win
    // again (only a strictly smaller error replaces the best), and a scale already used as
    // the second fit's start gives the same fit: both are skipped, which changes nothing
    // but the time (the compiler runs this for every block of every matrix).
    let (mut scored, mut n_scored) = ([0u16; 40], 1);
    let (mut fitted, mut n_fitted) = ([0u16; 19], 0);
    scored[0] = d0.0;
    for i in -9..=9 {
        let mut c = m / -(8.0 + i as f32 / 10.0);
        // Twice: the least-squares scale of the values rounded with `c`, then with it.
        for pass in 0..2 {
            if pass == 1 {
                // `c` is the f16 scale of the first fit.
                let start = F16::from_f32(c).0;
                if fitted[..n_fitted].contains(&start) {
                    break;
                }
                fitted[n_fitted] = start;
                n_fitted += 1;
            }
            let (mut vq, mut qq) = (0f64, 0f64);
            for &x in v {
                let r = round(x, c) as f64;
                vq += x as f64 * r;
                qq += r * r;
            }
            if qq == 0.0 {
                break;
            }
            let d = F16::from_f32((vq / qq) as f32);
            if !scored[..n_scored].contains(&d.0) {
                scored[n_scored] = d.0;
                n_scored += 1;
                let e = error(d.widen());
                if e < best.1 {
                    best = (d, e);
                }
            }
            c = d.widen();
        }
    }
    let df = best.0.widen();
    for (o, &x) in q.iter_mut().zip(v) {
        *o = round(x, df) as i8;
    }
    best.0
}

/// One column's (a depth line's) 4-bit values into `q` (same length as `v`), the int8
/// scale of each block of `BLOCK` into `s` (`⌈len / BLOCK⌉`), and the column's unit `u`
/// (returned): weight `i` is `q[i] · s[i / BLOCK] · u`. Each block's best scale `d_b` is
/// `quantize_weights`'s; `u` is the largest `|d_b|` over 127 (0 for a column of zeros);
/// `s[b]` is, of the integers within 6 of `d_b / u` in [−127, 127], the one whose block
/// rounded to `round(v / (s · u))` in [−8, 7] is closest to `v` (squared error; the first
/// on ties).
pub fn quantize_line(v: &[f32], q: &mut [i8], s: &mut [i8]) -> f32 {
    assert!(q.len() == v.len() && s.len() == v.len().div_ceil(BLOCK));
    let mut big = 0f32;
    let mut d = Vec::new();
    for (vb, qb) in v.chunks(BLOCK).zip(q.chunks_mut(BLOCK)) {
        let db = quantize_weights(vb, qb).widen();
        big = big.max(db.abs());
        d.push(db);
    }
    if big == 0.0 {
        q.fill(0);
        s.fill(0);
        return 0.0;
    }
    let u = big / 127.0;
    for (((vb, qb), sb), db) in v
        .chunks(BLOCK)
        .zip(q.chunks_mut(BLOCK))
        .zip(s.iter_mut())
        .zip(d)
    {
        let s0 = (db / u).round() as i32;
        let mut best = (f64::INFINITY, 0);
        for c in (s0 - 6).max(-127)..=(s0 + 6).min(127) {
            let dc = c as f32 * u;
            let e: f64 = vb
                .iter()
                .map(|&x| ((x - round(x, dc) * dc) as f64).powi(2))
                .sum();
            if e < best.0 {
                best = (e, c);
            }
        }
        *sb = best.1 as i8;
        let dc = best.1 as f32 * u;
        for (o, &x) in qb.iter_mut().zip(vb) {
            *o = round(x, dc) as i8;
        }
    }
    u
}

/// The activations of one product: `xq` `[m, padded_depth(k)]`, per activation block of a
/// row its scale (and `q8`'s offset, unused here), and per weight block `8 · Σ xq`.
#[derive(Default)]
struct Quantized {
    xq: Vec<i8>,
    scales: Vec<f32>,
    offsets: Vec<i32>,
    sums: Vec<i32>,
}

thread_local! {
    /// The caller's quantized rows, grown to the largest product seen (no allocation per
    /// token once warm).
    static QUANTIZED: std::cell::RefCell<Quantized> = std::cell::RefCell::new(Quantized::default());
}

/// One row's quantized activations, as the panel kernels read them.
#[derive(Clone, Copy)]
struct Row<'a> {
    /// `padded_depth(k)` values, zero past `k`.
    xq: &'a [i8],
    /// The scale of each activation block (`QBLOCK` values).
    scales: &'a [f32],
    /// `8 · Σ xq` of each weight block (`BLOCK` values).
    sums: &'a [i32],
}

/// `y = x·W + bias` with `x` `[m, k]`, `y` `[m, n]` and `W` `[k, n]` stored as 4-bit
/// panels with f16 `scales` per block and column (see the module docs). On all threads.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[Q4],
    scales: &[u8],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    linear_on(detected(), x, m, k, w, scales, bias, act, y, n)
}

/// Which panel kernel a product runs on `isa`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Portable,
    Avx2,
    Vnni,
}

fn kernel(isa: Isa) -> Kernel {
    if isa == Isa::Avx512 && crate::cpu::avx512_vnni() {
        Kernel::Vnni
    } else if isa != Isa::Scalar && crate::cpu::available().contains(&Isa::Avx2) {
        Kernel::Avx2
    } else {
        Kernel::Portable
    }
}

/// `linear` on a chosen ISA (AVX-512 means the VNNI kernel when the CPU has it), for tests
/// and benchmarks. Every ISA gives the same bits.
#[allow(clippy::too_many_arguments)]
pub fn linear_on(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[Q4],
    scales: &[u8],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    let panels = n.div_ceil(NR);
    let kp = padded_depth(k);
    assert_eq!(
        w.len(),
        panels_len(k, n),
        "W is not {k} x {n} in 4-bit panels"
    );
    assert_eq!(
        scales.len(),
        scales_len(k, n),
        "scales are not one per block and panel column"
    );
    if !crate::linear::linear_operands(x, m, k, bias, act, y, n) {
        return;
    }
    let (ablocks, wblocks) = (k.div_ceil(QBLOCK), kp / BLOCK);
    QUANTIZED.with(|qz| {
        let mut qz = qz.borrow_mut();
        let qz = &mut *qz;
        if qz.xq.len() < m * kp {
            qz.xq.resize(m * kp, 0);
        }
        if qz.scales.len() < m * ablocks {
            qz.scales.resize(m * ablocks, 0.0);
            qz.offsets.resize(m * ablocks, 0);
        }
        if qz.sums.len() < m * wblocks {
            qz.sums.resize(m * wblocks, 0);
        }
        let (xq, xs, xo, sums) = (
            &mut qz.xq[..m * kp],
            &mut qz.scales[..m * ablocks],
            &mut qz.offsets[..m * ablocks],
            &mut qz.sums[..m * wblocks],
        );
        crate::q8::quantize_rows(isa, x, m, k, kp, xq, xs, xo);
        for (row, s) in xq.chunks_exact(kp).zip(sums.chunks_exact_mut(wblocks)) {
            for (b, s) in row.chunks_exact(BLOCK).zip(s) {
                *s = 8 * b.iter().map(|&v| v as i32).sum::<i32>();
            }
        }
        let (xq, xs, sums) = (&*xq, &*xs, &*sums);
        let row = |r: usize| Row {
            xq: &xq[r * kp..(r + 1) * kp],
            scales: &xs[r * ablocks..(r + 1) * ablocks],
            sums: &sums[r * wblocks..(r + 1) * wblocks],
        };
        // As `q8::linear`: each thread brings its share of memory bandwidth.
        let t = crate::threads()
            .min(panels)
            .min((m * n * k / (1 << 16)).max(1));
        let yp = crate::SendPtr(y.as_mut_ptr());
        let kernel = kernel(isa);
        let (panel_bytes, panel_scales) = (kp / 2 * NR, panel_scales_len(kp));
        crate::linear::for_panel_ranges(panels, t, |p0, p1| {
            let (j0, j1) = (p0 * NR, (p1 * NR).min(n));
            // Panels in groups that stay in L2 while every row passes over them, so the rows
            // of a batched step read each weight from memory once. A column's sum is the
            // same whatever the grouping.
            crate::linear::for_panel_groups(p0, p1, panel_bytes, |g0, g1| {
                let (c0, c1) = (g0 * NR, (g1 * NR).min(n));
                let wp = &w[g0 * panel_bytes..g1 * panel_bytes];
                let sc = &scales[g0 * panel_scales..g1 * panel_scales];
                let b = bias.map(|b| &b[c0..c1]);
                // SAFETY: row `r`'s columns `c0..c1` (inside `j0..j1`) are inside `y`
                // (`r < m`, `c1 ≤ n`, `y` is m·n, checked above), only this task touches
                // them (the ranges are disjoint), and `y` stays mutably borrowed until
                // every task returns; each row's slice is taken once.
                let out = |r: usize| {
                    debug_assert!(r < m && c1 <= n && j0 <= c0 && c1 <= j1);
                    unsafe { std::slice::from_raw_parts_mut(yp.get().add(r * n + c0), c1 - c0) }
                };
                let mut r = 0;
                while r < m {
                    match kernel {
                        // SAFETY: the CPU has AVX-512F, AVX-512BW and VNNI (`kernel`).
                        Kernel::Vnni if r + 1 < m => unsafe {
                            vnni_panel_rows([row(r), row(r + 1)], wp, sc, b, [out(r), out(r + 1)]);
                            r += 1;
                        },
                        // SAFETY: as above.
                        Kernel::Vnni => unsafe { vnni_panel_row(row(r), wp, sc, b, out(r)) },
                        // SAFETY: the CPU has AVX2 and FMA (`kernel`).
                        Kernel::Avx2 => unsafe { avx2_panel_row(row(r), wp, sc, b, out(r)) },
                        Kernel::Portable => portable_panel_row(row(r), wp, sc, b, out(r)),
                    }
                    r += 1;
                }
            });
            // SAFETY: as above: columns `j0..j1` of `y`'s m rows are this task's alone.
            unsafe { act.apply(isa, yp.get(), m, n, j0, j1) }
        });
    })
}

/// Checks what every panel kernel assumes: whole panels of `kp` rows and their scales, at
/// most as many outputs as panel columns, a bias as long as the outputs.
fn check_panels(a: Row, w: &[Q4], scales: &[u8], bias: Option<&[f32]>, out: &[f32]) -> usize {
    let kp = a.xq.len();
    assert!(kp.is_multiple_of(BLOCK) && a.sums.len() == kp / BLOCK);
    assert_eq!(a.scales.len(), kp.div_ceil(QBLOCK));
    assert!(w.len().is_multiple_of(kp / 2 * NR));
    let panels = w.len() / (kp / 2 * NR);
    assert!(scales.len() == panels * panel_scales_len(kp) && out.len() <= panels * NR);
    assert!(bias.is_none_or(|b| b.len() == out.len()));
    panels
}

/// The f32 unit stored little-endian at byte `at` of a scale stream.
pub fn unit(scales: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([scales[at], scales[at + 1], scales[at + 2], scales[at + 3]])
}

/// Panel `t`'s units (the first `4·NR` bytes of its scales) and its int8 block scales.
#[inline(always)]
fn panel_scales(scales: &[u8], kp: usize, t: usize) -> (&[u8], &[u8]) {
    let len = panel_scales_len(kp);
    scales[t * len..(t + 1) * len].split_at(4 * NR)
}

/// Writes one panel's sums times the units plus bias to its (up to `NR`) outputs.
#[inline(always)]
fn finish(sums: &[f32; NR], units: &[u8], t: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let end = ((t + 1) * NR).min(out.len());
    for (j, o) in out[t * NR..end].iter_mut().enumerate() {
        let y = unit(units, 4 * j) * sums[j];
        *o = match bias {
            Some(b) => y + b[t * NR + j],
            None => y,
        };
    }
}

/// One row of `linear` in portable code: the twin the SIMD kernels are tested against.
fn portable_panel_row(a: Row, w: &[Q4], scales: &[u8], bias: Option<&[f32]>, out: &mut [f32]) {
    let panels = check_panels(a, w, scales, bias, out);
    let kp = a.xq.len();
    let blocks = kp / BLOCK;
    for t in 0..panels {
        let panel = &w[t * kp / 2 * NR..(t + 1) * kp / 2 * NR];
        let (units, s) = panel_scales(scales, kp, t);
        let mut sums = [0f32; NR];
        for (ab, &xs) in a.scales.iter().enumerate() {
            let mut iab = [0i32; NR];
            for b in ab * PER_ABLOCK..((ab + 1) * PER_ABLOCK).min(blocks) {
                let mut acc = [0i32; NR];
                for g in b * BLOCK / PAIR..(b + 1) * BLOCK / PAIR {
                    let x = &a.xq[g * PAIR..(g + 1) * PAIR];
                    let bytes = &panel[g * 4 * NR..(g + 1) * 4 * NR];
                    for (acc, wj) in acc.iter_mut().zip(bytes.chunks_exact(4)) {
                        for i in 0..4 {
                            let (lo, hi) = ((wj[i].0 & 15) as i32, (wj[i].0 >> 4) as i32);
                            *acc += lo * x[i] as i32 + hi * x[4 + i] as i32;
                        }
                    }
                }
                let o = a.sums[b];
                for (j, (iab, acc)) in iab.iter_mut().zip(acc).enumerate() {
                    *iab += s[b * NR + j] as i8 as i32 * (acc - o);
                }
            }
            for (sum, &iab) in sums.iter_mut().zip(&iab) {
                *sum = xs.mul_add(iab as f32, *sum);
            }
        }
        finish(&sums, units, t, bias, out);
    }
}

/// One row of `linear` with AVX2: per pair of quads and 8 columns, one 32-byte load gives
/// both quads' unsigned weights (`and 0x0F`, `>> 4`), and `vpmaddubsw` multiplies them with
/// the signed activations without saturating (two products of at most 15·128 per 16-bit
/// lane); a block's two pairs (16 rows, at most 4·3840 = 15360) add up in 16 bits before
/// `vpmaddwd` by ones widens them. The integers are the VNNI kernel's, scaled by the same
/// f32 steps.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_panel_row(a: Row, w: &[Q4], scales: &[u8], bias: Option<&[f32]>, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let panels = check_panels(a, w, scales, bias, out);
    let kp = a.xq.len();
    let blocks = kp / BLOCK;
    let (low, ones) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi16(1));
    for t in 0..panels {
        let panel = &w[t * kp / 2 * NR..(t + 1) * kp / 2 * NR];
        let (units, s) = panel_scales(scales, kp, t);
        let mut sums = [_mm256_setzero_ps(); NR / 8];
        for (ab, &xs) in a.scales.iter().enumerate() {
            let mut iab = [_mm256_setzero_si256(); NR / 8];
            for b in ab * PER_ABLOCK..((ab + 1) * PER_ABLOCK).min(blocks) {
                // A block's products add up in 16 bits (at most 4·3840 per lane).
                let mut acc16 = [_mm256_setzero_si256(); NR / 8];
                let (xb, wb) = (
                    &a.xq[b * BLOCK..(b + 1) * BLOCK],
                    &panel[b * BLOCK / 2 * NR..(b + 1) * BLOCK / 2 * NR],
                );
                for gi in 0..BLOCK / PAIR {
                    // The pair `PREFETCH` bytes ahead (three cache lines; past the end of
                    // the weights near the last pairs: a prefetch never faults).
                    let ahead = wb
                        .as_ptr()
                        .wrapping_add(gi * 4 * NR + PREFETCH)
                        .cast::<i8>();
                    for l in 0..3 {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * l));
                    }
                    // SAFETY: `xb` holds BLOCK = (BLOCK / PAIR) · 8 bytes; pair `gi` is in it.
                    let (xlo, xhi) = unsafe {
                        let xp = xb.as_ptr().add(gi * PAIR).cast::<i32>();
                        (
                            _mm256_set1_epi32(xp.read_unaligned()),
                            _mm256_set1_epi32(xp.add(1).read_unaligned()),
                        )
                    };
                    for (c, acc16) in acc16.iter_mut().enumerate() {
                        // SAFETY: `wb` holds BLOCK / PAIR pairs of 4·NR = 6 × 32 bytes; pair
                        // `gi`'s chunk `c < 6` is in it.
                        let v = unsafe {
                            _mm256_loadu_si256(wb.as_ptr().add(gi * 4 * NR + 32 * c).cast())
                        };
                        let lo = _mm256_and_si256(v, low);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                        let p = _mm256_add_epi16(
                            _mm256_maddubs_epi16(lo, xlo),
                            _mm256_maddubs_epi16(hi, xhi),
                        );
                        *acc16 = _mm256_add_epi16(*acc16, p);
                    }
                }
                let o = _mm256_set1_epi32(a.sums[b]);
                let sb = &s[b * NR..(b + 1) * NR];
                for (c, (iab, &a16)) in iab.iter_mut().zip(&acc16).enumerate() {
                    let acc = _mm256_sub_epi32(_mm256_madd_epi16(a16, ones), o);
                    // SAFETY: `sb` holds NR = 6 × 8 bytes; chunk `c < 6` is in it.
                    let sv = _mm256_cvtepi8_epi32(unsafe {
                        _mm_loadl_epi64(sb.as_ptr().add(8 * c).cast())
                    });
                    *iab = _mm256_add_epi32(*iab, _mm256_mullo_epi32(sv, acc));
                }
            }
            let xs = _mm256_set1_ps(xs);
            for (sum, &iab) in sums.iter_mut().zip(&iab) {
                *sum = _mm256_fmadd_ps(xs, _mm256_cvtepi32_ps(iab), *sum);
            }
        }
        let mut row = [0f32; NR];
        for (c, &sum) in sums.iter().enumerate() {
            // SAFETY: `row` holds NR = 6 × 8 floats and `c < 6`.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * c), sum) };
        }
        finish(&row, units, t, bias, out);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn avx2_panel_row(_: Row, _: &[Q4], _: &[u8], _: Option<&[f32]>, _: &mut [f32]) {
    unreachable!("AVX2 is x86_64-only")
}

/// `finish` for the VNNI kernels: one panel's sums from three vectors of 16 columns.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn finish512(
    sums: &[std::arch::x86_64::__m512; NR / 16],
    units: &[u8],
    t: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let mut row = [0f32; NR];
    for (c, &sum) in sums.iter().enumerate() {
        // SAFETY: `row` holds NR = 3 × 16 floats and `c < 3`.
        unsafe { std::arch::x86_64::_mm512_storeu_ps(row.as_mut_ptr().add(16 * c), sum) };
    }
    finish(&row, units, t, bias, out);
}

/// One row of `linear` with AVX-512 VNNI: per pair of quads and 16 columns, one 64-byte
/// load gives both quads' unsigned weights, and `vpdpbusd` adds each column's four
/// products with the signed activations to its 32-bit sum. The integers are the AVX2
/// kernel's, scaled by the same f32 steps. Panel i of each half of the group runs side by
/// side with its partner (`vnni_row_panels::<2>`): two streams from memory, which one core
/// needs on some CPUs to reach the bandwidth (see `q8::vnni_columns`).
///
/// # Safety
/// The CPU has AVX-512F, AVX-512BW and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_panel_row(a: Row, w: &[Q4], scales: &[u8], bias: Option<&[f32]>, out: &mut [f32]) {
    let panels = check_panels(a, w, scales, bias, out);
    let half = panels.div_ceil(2);
    for t in 0..half {
        // SAFETY: panels `t` and `t + half` (when below `panels`) are in `w`, `scales` and
        // `out` (checked above); the CPU has VNNI (this function's contract).
        unsafe {
            if t + half < panels {
                vnni_row_panels(a, w, scales, bias, out, [t, t + half]);
            } else {
                vnni_row_panels(a, w, scales, bias, out, [t]);
            }
        }
    }
}

/// Panels `ts` of one row of `linear` (see `vnni_panel_row`), their weights loaded side by
/// side; each panel's integers and f32 steps are the same whatever its partner.
///
/// # Safety
/// The CPU has AVX-512F, AVX-512BW and VNNI; `check_panels` passed for these operands and
/// every panel in `ts` is below its count.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_row_panels<const P: usize>(
    a: Row,
    w: &[Q4],
    scales: &[u8],
    bias: Option<&[f32]>,
    out: &mut [f32],
    ts: [usize; P],
) {
    use std::arch::x86_64::*;
    let kp = a.xq.len();
    let blocks = kp / BLOCK;
    let low = _mm512_set1_epi8(0x0F);
    let mut sums = [[_mm512_setzero_ps(); NR / 16]; P];
    // Each panel's int8 block scales, found once.
    let mut block_scales: [&[u8]; P] = [&[]; P];
    for (s, &t) in block_scales.iter_mut().zip(&ts) {
        *s = panel_scales(scales, kp, t).1;
    }
    for (ab, &xs) in a.scales.iter().enumerate() {
        let mut iab = [[_mm512_setzero_si512(); NR / 16]; P];
        for b in ab * PER_ABLOCK..((ab + 1) * PER_ABLOCK).min(blocks) {
            // The low and the high quads' products in sums of their own, added at the end
            // of the block (the same integers): two chains of `vpdpbusd` per vector
            // instead of one twice as long. The low one starts at the block's offset,
            // `−8 · Σ xq`.
            let mut acc = [[_mm512_set1_epi32(-a.sums[b]); NR / 16]; P];
            let mut acc_hi = [[_mm512_setzero_si512(); NR / 16]; P];
            for g in b * BLOCK / PAIR..(b + 1) * BLOCK / PAIR {
                // SAFETY: `a.xq` holds kp = blocks · BLOCK bytes; pair `g` (8 bytes) of
                // block `b < blocks` is in it.
                let (xlo, xhi) = unsafe {
                    let xp = a.xq.as_ptr().add(g * PAIR).cast::<i32>();
                    (
                        _mm512_set1_epi32(xp.read_unaligned()),
                        _mm512_set1_epi32(xp.add(1).read_unaligned()),
                    )
                };
                for ((&t, acc), acc_hi) in ts.iter().zip(&mut acc).zip(&mut acc_hi) {
                    let at = t * kp / 2 * NR + g * 4 * NR;
                    let wg = &w[at..at + 4 * NR];
                    // The pair `PREFETCH` bytes ahead (past the end of the weights near
                    // the last pairs: a prefetch never faults).
                    let ahead = wg.as_ptr().wrapping_add(PREFETCH).cast::<i8>();
                    for l in 0..3 {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * l));
                    }
                    for (c, (acc, acc_hi)) in acc.iter_mut().zip(acc_hi).enumerate() {
                        // SAFETY: `wg` holds 4·NR = 3 × 64 bytes; chunk `c < 3` is in it.
                        let v = unsafe { _mm512_loadu_si512(wg.as_ptr().add(64 * c).cast()) };
                        let lo = _mm512_and_si512(v, low);
                        let hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
                        *acc = _mm512_dpbusd_epi32(*acc, lo, xlo);
                        *acc_hi = _mm512_dpbusd_epi32(*acc_hi, hi, xhi);
                    }
                }
            }
            for (((s, iab), acc), acc_hi) in
                block_scales.iter().zip(&mut iab).zip(&acc).zip(&acc_hi)
            {
                let sb = &s[b * NR..(b + 1) * NR];
                for (c, ((iab, &acc), &hi)) in iab.iter_mut().zip(acc).zip(acc_hi).enumerate() {
                    // SAFETY: `sb` holds NR = 3 × 16 bytes; chunk `c < 3` is in it.
                    let sv = _mm512_cvtepi8_epi32(unsafe {
                        _mm_loadu_si128(sb.as_ptr().add(16 * c).cast())
                    });
                    let acc = _mm512_add_epi32(acc, hi);
                    *iab = _mm512_add_epi32(*iab, _mm512_mullo_epi32(sv, acc));
                }
            }
        }
        let xs = _mm512_set1_ps(xs);
        for (sums, iab) in sums.iter_mut().zip(&iab) {
            for (sum, &iab) in sums.iter_mut().zip(iab) {
                *sum = _mm512_fmadd_ps(xs, _mm512_cvtepi32_ps(iab), *sum);
            }
        }
    }
    for (&t, sums) in ts.iter().zip(&sums) {
        let (units, _) = panel_scales(scales, kp, t);
        // SAFETY: the CPU has AVX-512F (this function's contract).
        unsafe { finish512(sums, units, t, bias, out) };
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn vnni_panel_row(_: Row, _: &[Q4], _: &[u8], _: Option<&[f32]>, _: &mut [f32]) {
    unreachable!("the VNNI kernel is x86_64-only")
}

/// `R` rows of `linear` with AVX-512 VNNI: per pair of quads and 16 columns, one 64-byte
/// load gives both quads' unsigned weights, and `vpdpbusd` adds each column's four
/// products with each row's signed activations to its 32-bit sum; the rows share the
/// loads and the unpacking of the weights (a prompt's rows come two at a time). The
/// integers are the AVX2 kernel's, scaled by the same f32 steps, so a row's bits do not
/// depend on `R`.
///
/// # Safety
/// The CPU has AVX-512F, AVX-512BW and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_panel_rows<const R: usize>(
    a: [Row; R],
    w: &[Q4],
    scales: &[u8],
    bias: Option<&[f32]>,
    out: [&mut [f32]; R],
) {
    use std::arch::x86_64::*;
    let mut panels = 0;
    for (a, out) in a.iter().zip(&out) {
        panels = check_panels(*a, w, scales, bias, out);
    }
    let kp = a[0].xq.len();
    assert!(a.iter().all(|r| r.xq.len() == kp) && out.iter().all(|o| o.len() == out[0].len()));
    let blocks = kp / BLOCK;
    let low = _mm512_set1_epi8(0x0F);
    for t in 0..panels {
        let panel = &w[t * kp / 2 * NR..(t + 1) * kp / 2 * NR];
        let (units, s) = panel_scales(scales, kp, t);
        let mut sums = [[_mm512_setzero_ps(); NR / 16]; R];
        for ab in 0..kp.div_ceil(QBLOCK) {
            let mut iab = [[_mm512_setzero_si512(); NR / 16]; R];
            for b in ab * PER_ABLOCK..((ab + 1) * PER_ABLOCK).min(blocks) {
                // The low and the high quads' products in sums of their own, added at the
                // end of the block (the same integers): two chains of `vpdpbusd` per
                // vector instead of one twice as long. The low one starts at the block's
                // offset, `−8 · Σ xq`.
                let mut acc = [[_mm512_setzero_si512(); NR / 16]; R];
                for (acc, a) in acc.iter_mut().zip(&a) {
                    *acc = [_mm512_set1_epi32(-a.sums[b]); NR / 16];
                }
                let mut acc_hi = [[_mm512_setzero_si512(); NR / 16]; R];
                for g in b * BLOCK / PAIR..(b + 1) * BLOCK / PAIR {
                    let mut xlo = [_mm512_setzero_si512(); R];
                    let mut xhi = [_mm512_setzero_si512(); R];
                    for i in 0..R {
                        // SAFETY: `a[i].xq` holds kp = blocks · BLOCK bytes; pair `g`
                        // (8 bytes) of block `b < blocks` is in it.
                        unsafe {
                            let xp = a[i].xq.as_ptr().add(g * PAIR).cast::<i32>();
                            xlo[i] = _mm512_set1_epi32(xp.read_unaligned());
                            xhi[i] = _mm512_set1_epi32(xp.add(1).read_unaligned());
                        }
                    }
                    let wg = &panel[g * 4 * NR..(g + 1) * 4 * NR];
                    // The pair `PREFETCH` bytes ahead (past the end of the weights near the
                    // last pairs: a prefetch never faults).
                    let ahead = wg.as_ptr().wrapping_add(PREFETCH).cast::<i8>();
                    for l in 0..3 {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * l));
                    }
                    for c in 0..NR / 16 {
                        // SAFETY: `wg` holds 4·NR = 3 × 64 bytes; chunk `c < 3` is in it.
                        let v = unsafe { _mm512_loadu_si512(wg.as_ptr().add(64 * c).cast()) };
                        let lo = _mm512_and_si512(v, low);
                        let hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
                        for i in 0..R {
                            acc[i][c] = _mm512_dpbusd_epi32(acc[i][c], lo, xlo[i]);
                            acc_hi[i][c] = _mm512_dpbusd_epi32(acc_hi[i][c], hi, xhi[i]);
                        }
                    }
                }
                let sb = &s[b * NR..(b + 1) * NR];
                for c in 0..NR / 16 {
                    // SAFETY: `sb` holds NR = 3 × 16 bytes; chunk `c < 3` is in it.
                    let sv = _mm512_cvtepi8_epi32(unsafe {
                        _mm_loadu_si128(sb.as_ptr().add(16 * c).cast())
                    });
                    for i in 0..R {
                        let acc = _mm512_add_epi32(acc[i][c], acc_hi[i][c]);
                        iab[i][c] = _mm512_add_epi32(iab[i][c], _mm512_mullo_epi32(sv, acc));
                    }
                }
            }
            for i in 0..R {
                let xs = _mm512_set1_ps(a[i].scales[ab]);
                for c in 0..NR / 16 {
                    sums[i][c] = _mm512_fmadd_ps(xs, _mm512_cvtepi32_ps(iab[i][c]), sums[i][c]);
                }
            }
        }
        for i in 0..R {
            // SAFETY: the CPU has AVX-512F (this function's contract).
            unsafe { finish512(&sums[i], units, t, bias, &mut *out[i]) };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn vnni_panel_rows<const R: usize>(
    _: [Row; R],
    _: &[Q4],
    _: &[u8],
    _: Option<&[f32]>,
    _: [&mut [f32]; R],
) {
    unreachable!("the VNNI kernel is x86_64-only")
}

/// Row `r` of a `[rows, width]` table stored transposed in 4-bit panels (the tied LM
/// head's weight, `width` deep): `out[p] = (q[p, r] · s[p / BLOCK, r]) · u[r]`.
pub fn gather_row(w: &[Q4], scales: &[u8], rows: usize, width: usize, r: usize, out: &mut [f32]) {
    assert!(r < rows && out.len() == width && w.len() == panels_len(width, rows));
    assert_eq!(scales.len(), scales_len(width, rows));
    let u = unit(scales, unit_index(width, r));
    for (p, o) in out.iter_mut().enumerate() {
        let (at, high) = panel_index(width, p, r);
        let nibble = if high { w[at].0 >> 4 } else { w[at].0 & 15 };
        let s = scales[scale_index(width, p / BLOCK, r)] as i8 as i32;
        *o = ((nibble as i32 - 8) * s) as f32 * u;
    }
}

/// `q` (a `[k, n]` row-major matrix of values in [−8, 7]) in 4-bit panels, and `s` (the
/// `[⌈k / BLOCK⌉, n]` row-major int8 block scales) with `units` (one per column) as the
/// kernels read them: for the compiler and tests.
pub fn pack(q: &[i8], s: &[i8], units: &[f32], k: usize, n: usize) -> (Vec<Q4>, Vec<u8>) {
    assert!(q.len() == k * n && s.len() == k.div_ceil(BLOCK) * n && units.len() == n);
    let mut w = vec![Q4(0x88); panels_len(k, n)];
    for p in 0..k {
        for j in 0..n {
            let (at, high) = panel_index(k, p, j);
            let v = (q[p * n + j] + 8) as u8;
            debug_assert!(v < 16);
            w[at].0 = if high {
                (w[at].0 & 0x0F) | (v << 4)
            } else {
                (w[at].0 & 0xF0) | v
            };
        }
    }
    let mut sc = vec![0u8; scales_len(k, n)];
    for (j, u) in units.iter().enumerate() {
        let at = unit_index(k, j);
        sc[at..at + 4].copy_from_slice(&u.to_le_bytes());
        for b in 0..k.div_ceil(BLOCK) {
            sc[scale_index(k, b, j)] = s[b * n + j] as u8;
        }
    }
    (w, sc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{rand_vec, same_bits_on_every_isa};

    /// A random `[k, n]` weight quantized column by column: its 4-bit values, int8 block
    /// scales (`[blocks, n]`) and units (`n`).
    fn weight(k: usize, n: usize, seed: &mut u64) -> (Vec<i8>, Vec<i8>, Vec<f32>) {
        let v = rand_vec(k * n, seed);
        let blocks = k.div_ceil(BLOCK);
        let (mut q, mut s, mut u) = (vec![0i8; k * n], vec![0i8; blocks * n], vec![0f32; n]);
        let (mut col, mut qc, mut sc) = (vec![0f32; k], vec![0i8; k], vec![0i8; blocks]);
        for j in 0..n {
            for (p, c) in col.iter_mut().enumerate() {
                // Columns of different sizes, and blocks of very different sizes in one.
                *c = v[p * n + j] * (1.0 + j as f32 / 10.0) * [1.0, 0.03, 3.0][p / BLOCK % 3];
            }
            u[j] = quantize_line(&col, &mut qc, &mut sc);
            for p in 0..k {
                q[p * n + j] = qc[p];
            }
            for b in 0..blocks {
                s[b * n + j] = sc[b];
            }
        }
        (q, s, u)
    }

    /// Weight `(p, j)` as the kernels scale it.
    fn value(q: &[i8], s: &[i8], u: &[f32], n: usize, p: usize, j: usize) -> f32 {
        (q[p * n + j] as i32 * s[(p / BLOCK) * n + j] as i32) as f32 * u[j]
    }

    #[test]
    fn a_line_rounds_each_block_near_its_own_best_scale() {
        let mut seed = 3;
        for (t, len) in [1, 15, 16, 17, 128, 768, 128, 768].into_iter().enumerate() {
            let mut v = rand_vec(len, &mut seed);
            // Then one block far smaller than the others.
            if t >= 6 {
                v.iter_mut().take(BLOCK).for_each(|x| *x *= 0.01);
            }
            let blocks = len.div_ceil(BLOCK);
            let (mut q, mut s) = (vec![0i8; len], vec![0i8; blocks]);
            let u = quantize_line(&v, &mut q, &mut s);
            assert!(s.iter().any(|&s| s.unsigned_abs() == 127), "{s:?}");
            let (mut qb, mut e_line, mut e_own) = (vec![0i8; BLOCK], 0f64, 0f64);
            for (b, vb) in v.chunks(BLOCK).enumerate() {
                let d = quantize_weights(vb, &mut qb[..vb.len()]).widen();
                let err = |s: i32| -> f64 {
                    let ds = s as f32 * u;
                    vb.iter()
                        .map(|&x| {
                            let r = if ds == 0.0 {
                                0.0
                            } else {
                                (x / ds).round().clamp(-8.0, 7.0)
                            };
                            ((x - r * ds) as f64).powi(2)
                        })
                        .sum()
                };
                // The block's scale is the best near its own best one.
                let s0 = (d / u).round() as i32;
                let best = ((s0 - 6).max(-127)..=(s0 + 6).min(127))
                    .map(err)
                    .fold(f64::MAX, f64::min);
                assert_eq!(err(s[b] as i32), best);
                for (i, &x) in vb.iter().enumerate() {
                    let p = b * BLOCK + i;
                    let got = (q[p] as i32 * s[b] as i32) as f32 * u;
                    assert!((-8..=7).contains(&q[p]));
                    e_line += ((x - got) as f64).powi(2);
                    e_own += ((x - qb[i] as f32 * d) as f64).powi(2);
                }
            }
            // Blocks of like sizes lose little to int8 scales against f16 ones each.
            if t < 6 {
                assert!(e_line <= 1.1 * e_own, "{len}: {e_line} vs {e_own}");
            }
        }
        let (mut q, mut s) = ([1i8; 3], [1i8; 1]);
        assert_eq!(quantize_line(&[0.0; 3], &mut q, &mut s), 0.0);
        assert_eq!((q, s), ([0; 3], [0; 1]));
    }

    #[test]
    fn weight_blocks_round_to_their_scale_no_worse_than_q4_0() {
        let err = |v: &[f32], d: f32, q: &[i8]| -> f32 {
            v.iter()
                .zip(q)
                .map(|(x, &q)| (x - q as f32 * d).powi(2))
                .sum()
        };
        let mut seed = 1;
        let mut strictly_better = 0;
        for len in [1, 3, 6, 31, BLOCK] {
            for _ in 0..20 {
                let v = rand_vec(len, &mut seed);
                let mut q = vec![0i8; len];
                let d = quantize_weights(&v, &mut q).widen();
                for (&x, &q) in v.iter().zip(&q) {
                    assert_eq!(q, (x / d).round().clamp(-8.0, 7.0) as i8);
                }
                // ggml q4_0: d = m / -8, the largest magnitude exactly -8 steps.
                let m = v
                    .iter()
                    .fold(0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
                let d0 = F16::from_f32(m / -8.0).widen();
                let q0: Vec<i8> = v
                    .iter()
                    .map(|&x| (x / d0).round().clamp(-8.0, 7.0) as i8)
                    .collect();
                let (e, e0) = (err(&v, d, &q), err(&v, d0, &q0));
                assert!(e <= e0, "{e} > {e0}");
                strictly_better += usize::from(e < e0);
            }
        }
        assert!(strictly_better > 40, "{strictly_better}");
        let mut q = [1i8; 3];
        assert_eq!(quantize_weights(&[0.0; 3], &mut q), F16(0));
        assert_eq!(q, [0; 3]);
    }

    /// `quantize_weights` as first written, every starting point fitted and scored.
    fn quantize_weights_unskipped(v: &[f32], q: &mut [i8]) -> F16 {
        let m = v
            .iter()
            .fold(0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
        if m == 0.0 {
            q.fill(0);
            return F16(0);
        }
        let round = |x: f32, d: f32| {
            if d == 0.0 {
                0.0
            } else {
                (x / d).round().clamp(-8.0, 7.0)
            }
        };
        let error = |d: f32| {
            v.iter()
                .map(|&x| ((x - round(x, d) * d) as f64).powi(2))
                .sum::<f64>()
        };
        let d0 = F16::from_f32(m / -8.0);
        let mut best = (d0, error(d0.widen()));
        for i in -9..=9 {
            let mut c = m / -(8.0 + i as f32 / 10.0);
            for _ in 0..2 {
                let (mut vq, mut qq) = (0f64, 0f64);
                for &x in v {
                    let r = round(x, c) as f64;
                    vq += x as f64 * r;
                    qq += r * r;
                }
                if qq == 0.0 {
                    break;
                }
                let d = F16::from_f32((vq / qq) as f32);
                let e = error(d.widen());
                if e < best.1 {
                    best = (d, e);
                }
                c = d.widen();
            }
        }
        for (o, &x) in q.iter_mut().zip(v) {
            *o = round(x, best.0.widen()) as i8;
        }
        best.0
    }

    #[test]
    fn skipping_repeated_scales_changes_no_block() {
        let mut seed = 11;
        for len in [1, 2, 5, 17, BLOCK] {
            for t in 0..400 {
                let mut v = rand_vec(len, &mut seed);
                // Small and large magnitudes, an outlier, repeated values.
                v.iter_mut().for_each(|x| *x *= [1e-3, 1.0, 30.0][t % 3]);
                if t % 5 == 0 {
                    v[0] *= 20.0;
                }
                if t % 7 == 0 {
                    let a = v[len / 2];
                    v.iter_mut().step_by(2).for_each(|x| *x = a);
                }
                let (mut q, mut want) = (vec![0i8; len], vec![0i8; len]);
                let d = quantize_weights(&v, &mut q);
                assert_eq!(d, quantize_weights_unskipped(&v, &mut want), "{v:?}");
                assert_eq!(q, want);
            }
        }
    }

    #[test]
    fn packed_nibbles_pair_two_quads_per_byte() {
        let (k, n) = (BLOCK + 8, 50); // two blocks (the second padded), two panels
        let q: Vec<i8> = (0..k * n).map(|i| (i % 16) as i8 - 8).collect();
        let s: Vec<i8> = (0..2 * n)
            .map(|i| (i as i32 * 5 % 255 - 127) as i8)
            .collect();
        let u: Vec<f32> = (0..n).map(|j| 0.25 + j as f32).collect();
        let (w, sc) = pack(&q, &s, &u, k, n);
        assert_eq!(
            (w.len(), sc.len()),
            (2 * (2 * BLOCK) / 2 * NR, 2 * (4 + 2) * NR)
        );
        // Row 5 of column 1: pair 0, byte 1 of column 1, high nibble.
        assert_eq!(panel_index(k, 5, 1), (4 + 1, true));
        assert_eq!(w[5].0 >> 4, (q[5 * n + 1] + 8) as u8);
        assert_eq!(w[5].0 & 15, (q[n + 1] + 8) as u8);
        // Each panel's units, then its block scales.
        assert_eq!(sc[scale_index(k, 1, 49)] as i8, s[n + 49]);
        assert_eq!(
            (unit_index(k, 49), scale_index(k, 0, 48)),
            (6 * NR + 4, 6 * NR + 4 * NR)
        );
        assert_eq!(sc[unit_index(k, 49)..][..4], u[49].to_le_bytes());
        // The padding rows are zero weights (nibble 8).
        assert_eq!(w[panel_index(k, 2 * BLOCK - 1, 0).0].0, 0x88);
        let mut out = vec![0f32; k];
        for r in [0, 47, 48, 49] {
            gather_row(&w, &sc, n, k, r, &mut out);
            for (p, &o) in out.iter().enumerate() {
                assert_eq!(o, value(&q, &s, &u, n, p, r));
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
            (1, 3072, 50),
            // One row: panels in pairs from the two halves of a group, and one left over.
            (1, 256, 480),
            (1, 64, 1000),
        ] {
            let mut x = rand_vec(m * k, &mut seed);
            if let Some(v) = x.first_mut() {
                *v *= 40.0; // an outlier in the first block
            }
            let (q, s, u) = weight(k, n, &mut seed);
            let (w, sc) = pack(&q, &s, &u, k, n);
            let b = rand_vec(n, &mut seed);
            // The reference: quantize the rows as the kernel does, then f64 sums.
            let kp = padded_depth(k);
            let blocks = k.div_ceil(QBLOCK);
            let mut want = vec![0f64; m * n];
            for r in 0..m {
                let (mut xq, mut xs, mut xo) = (vec![0i8; kp], vec![0f32; blocks], vec![0; blocks]);
                crate::q8::quantize_row(
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
                        let wv = value(&q, &s, &u, n, p, j) as f64;
                        acc += xv * wv;
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
                    linear_on(isa, &x, m, k, &w, &sc, bias, act, y, n)
                });
            }
        }
    }
}
