//! The bfloat16 Linear (`GPT2_WEIGHTS=bf16`): weights stored as bf16 by the compiler, and
//! each input row rounded to bf16 at run time, so every product of a weight and an input is
//! exact in f32. AVX-512 BF16's `vdpbf16ps` (chosen at run time where the CPU has it) then
//! does 32 of them per instruction; elsewhere kernels widen both to f32.
//!
//! **Weights.** `⌈n / NR⌉` panels of `NR` columns, as in `gemm::linear`, with the depth taken
//! two rows at a time: pair `q` holds, column by column, the bf16 of rows `2q` and `2q + 1`,
//! so one 32-bit lane is one column's pair, what `vdpbf16ps` multiplies with a pair of
//! inputs. The depth is padded to even with zeros.
//!
//! **Sums.** For each column and each pair in order, `acc += x[2q+1]·w[2q+1]`, then
//! `acc += x[2q]·w[2q]`: each product exact, each addition rounded to nearest even, as
//! `vdpbf16ps` is defined. The widening kernels add in that order with fused multiply-adds
//! (the same result, the product being exact), so every ISA computes the same bits as long
//! as no input, weight or partial sum is subnormal (which `vdpbf16ps` flushes to zero).
//!
//! A kernel family beside `gemm` and `q8`, on `cpu`, `layout`, `elem` and the shared
//! `linear`; the `kernels` facade calls it.

use crate::cpu::{detected, Isa};
use crate::elem::Bf16;
use crate::layout::NR;
use crate::linear::Activation;

// Detected in `cpu`; this path stays for callers.
pub use crate::cpu::avx512_bf16 as dot_instructions;

/// Rows per group of the weight panels: a pair.
const PAIR: usize = 2;

/// The stored depth of a `k`-deep weight: `k` rounded up to whole pairs.
pub fn padded_depth(k: usize) -> usize {
    k.next_multiple_of(PAIR)
}

/// Elements of a `[k, n]` weight in bf16 panels.
pub fn panels_len(k: usize, n: usize) -> usize {
    crate::layout::grouped_len(k, n, PAIR)
}

/// Index in the panels of weight `(p, j)` (row `p < k`, column `j < n`) of a `k`-deep matrix.
pub fn panel_index(k: usize, p: usize, j: usize) -> usize {
    crate::layout::grouped_index(k, PAIR, p, j)
}

/// A `[k, n]` row-major matrix in bf16 panels (rounded to nearest even): for the compiler
/// and tests.
pub fn pack(w: &[f32], k: usize, n: usize) -> Vec<Bf16> {
    assert_eq!(w.len(), k * n);
    let mut out = vec![Bf16(0); panels_len(k, n)];
    for p in 0..k {
        for j in 0..n {
            out[panel_index(k, p, j)] = Bf16::from_f32(w[p * n + j]);
        }
    }
    out
}

thread_local! {
    /// The caller's rows rounded to bf16 pairs, grown to the largest product seen (no
    /// allocation per token once warm).
    static PAIRS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `y = x·W + bias` with `x` `[m, k]`, `y` `[m, n]` and `W` `[k, n]` stored as bf16 panels
/// (see the module docs). On all threads.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[Bf16],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    linear_on(detected(), x, m, k, w, bias, act, y, n)
}

/// One row of `x` as bf16 pairs: lane `q` holds `x[2q]` in its low half and `x[2q + 1]`
/// in its high half (zero past `x`).
#[inline(always)]
fn round_row_body(x: &[f32], pairs: &mut [u32]) {
    let full = x.chunks_exact(2);
    let odd = full.remainder();
    let n = full.len();
    for (p, v) in pairs.iter_mut().zip(full) {
        *p = bf16_bits(v[0]) | bf16_bits(v[1]) << 16;
    }
    for (p, &v) in pairs[n..].iter_mut().zip(odd) {
        *p = bf16_bits(v);
    }
    pairs[n + odd.len()..].fill(0);
}

/// `Bf16::from_f32(v).0` without a branch, so rows round in vector registers.
#[inline(always)]
fn bf16_bits(v: f32) -> u32 {
    let b = v.to_bits();
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    let quiet = (b >> 16) | 0x40;
    if v.is_nan() {
        quiet
    } else {
        rounded
    }
}

crate::cpu::isa_kernel!(
    /// Rounds one row to bf16 pairs (see `round_row_body`) with the given ISA.
    round_row => round_row_body(x: &[f32], pairs: &mut [u32])
);

/// `linear` on a chosen ISA (AVX-512 means `vdpbf16ps` when the CPU has it, or AMX tiles
/// where `amx::enabled()`), for tests and benchmarks.
#[allow(clippy::too_many_arguments)]
pub fn linear_on(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[Bf16],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    let tiles = crate::amx::enabled();
    linear_with(isa, tiles, x, m, k, w, bias, act, y, n)
}

/// Whether a `k`-deep product runs on AMX tiles (when they are allowed and supported): the
/// depth must be whole tile rows of 32 bf16 (it is in every GPT-2). Then every product
/// with that weight does, whatever its row count, so a row's result never depends on
/// what else is in the batch.
pub fn tiles_take(k: usize) -> bool {
    k.is_multiple_of(2 * TILE_PAIRS)
}

/// Pairs per AMX tile row (64 bytes).
const TILE_PAIRS: usize = 16;

/// `linear_on` with AMX tiles allowed or not (`tiles` is ignored where `amx::supported()`
/// is false). Tile sums are f32 additions in the tile unit's own order: within a few
/// units in the last place of `Σ|x·w|` of the vector kernels' (see the tests), not the
/// same bits.
#[allow(clippy::too_many_arguments)]
fn linear_with(
    isa: Isa,
    tiles: bool,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[Bf16],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    let tiles = tiles && isa == Isa::Avx512 && crate::amx::supported() && tiles_take(k);
    let panels = n.div_ceil(NR);
    let kp = padded_depth(k);
    assert_eq!(
        w.len(),
        panels_len(k, n),
        "W is not {k} x {n} in bf16 panels"
    );
    if !crate::linear::linear_operands(x, m, k, bias, act, y, n) {
        return;
    }
    let half = kp / 2;
    // The tile kernel reads rows 16 at a time: the buffer holds whole tiles of rows.
    let rows = if tiles {
        m.next_multiple_of(crate::amx::ROWS)
    } else {
        m
    };
    // Pairs from one row to the next: `half`, or more for the tile kernel.
    let ld = if tiles {
        crate::amx::row_stride(4 * half) / 4
    } else {
        half
    };
    PAIRS.with(|pairs| {
        let mut pairs = pairs.borrow_mut();
        // Rows start on cache lines: a tile row read across two lines costs two.
        if pairs.len() < rows * ld + 16 {
            pairs.resize(rows * ld + 16, 0);
        }
        let start = pairs.as_ptr().align_offset(64).min(16);
        let padded = &mut pairs[start..start + rows * ld];
        let xp = &mut padded[..m * ld];
        if m * k < 1 << 16 || crate::threads() <= 1 {
            for (r, row) in xp.chunks_exact_mut(ld).enumerate() {
                round_row(isa, &x[r * k..(r + 1) * k], &mut row[..half]);
            }
        } else {
            crate::for_each_part(xp, ld, |r, row| {
                round_row(isa, &x[r * k..(r + 1) * k], &mut row[..half])
            });
        }
        let padded = &*padded;
        let xp = &padded[..m * ld];
        // As `gemm::linear`: each thread brings its share of memory bandwidth.
        let t = crate::threads()
            .min(panels)
            .min((m * n * k / (1 << 16)).max(1));
        let yp = crate::SendPtr(y.as_mut_ptr());
        let fast = isa == Isa::Avx512 && dot_instructions() && !tiles;
        let avx2 = isa != Isa::Scalar && crate::cpu::available().contains(&Isa::Avx2);
        crate::linear::for_panel_ranges(panels, t, |p0, p1| {
            let (j0, j1) = (p0 * NR, (p1 * NR).min(n));
            let wp = &w[p0 * kp * NR..p1 * kp * NR];
            let b = bias.map(|b| &b[j0..j1]);
            for r in 0..if fast || tiles { 0 } else { m } {
                debug_assert!(r < m && j1 <= n);
                // SAFETY: row `r`'s columns `j0..j1` are inside `y` (`r < m`, `j1 ≤ n`) and
                // only this task touches them (as above).
                let out =
                    unsafe { std::slice::from_raw_parts_mut(yp.get().add(r * n + j0), j1 - j0) };
                let row = &xp[r * half..(r + 1) * half];
                if avx2 {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { avx2_panel_row(row, wp, b, out) }
                } else {
                    portable_panel_row(row, wp, b, out);
                }
            }
            if tiles {
                // SAFETY: as for `dot_columns` below; `padded` holds `m` rows rounded up to
                // 16 and `kp` is whole tile rows (`tiles_take`); AMX is supported (checked
                // above).
                unsafe { amx_columns(padded, ld, m, kp, w, bias, yp.get(), n, p0, p1) }
            }
            if fast {
                // SAFETY: this task writes only columns `j0..j1` of `y`'s m rows, disjoint
                // from every other task's, and `y` (m·n elements, checked above) stays
                // mutably borrowed until all tasks return; `w` and `xp` hold every panel
                // and row (checked above); the CPU has AVX-512 BF16.
                unsafe { dot_columns(xp, m, kp, w, bias, yp.get(), n, p0, p1) }
            }
            // SAFETY: as above: columns `j0..j1` of `y`'s m rows are this task's alone.
            unsafe { act.apply(isa, yp.get(), m, n, j0, j1) }
        });
    })
}

/// The f32 value of the low (`x[2q]`) or high (`x[2q + 1]`) half of a pair.
#[inline(always)]
fn low(p: u32) -> f32 {
    f32::from_bits(p << 16)
}
#[inline(always)]
fn high(p: u32) -> f32 {
    f32::from_bits(p & 0xffff_0000)
}

/// One row (as bf16 pairs) against the panels in `w` in portable code (`out` holds the
/// panels' columns, the last panel possibly partial).
fn portable_panel_row(x: &[u32], w: &[Bf16], bias: Option<&[f32]>, out: &mut [f32]) {
    let half = x.len();
    for (t, panel) in w.chunks_exact(2 * half * NR).enumerate() {
        let mut acc = [0f32; NR];
        for (&xq, wq) in x.iter().zip(panel.chunks_exact(2 * NR)) {
            let (x0, x1) = (low(xq), high(xq));
            for (a, wj) in acc.iter_mut().zip(wq.chunks_exact(2)) {
                let (w0, w1) = (
                    f32::from_bits((wj[0].0 as u32) << 16),
                    f32::from_bits((wj[1].0 as u32) << 16),
                );
                *a = x1.mul_add(w1, *a);
                *a = x0.mul_add(w0, *a);
            }
        }
        let end = ((t + 1) * NR).min(out.len());
        for (j, o) in out[t * NR..end].iter_mut().enumerate() {
            *o = acc[j] + bias.map_or(0.0, |b| b[t * NR + j]);
        }
    }
}

/// One row of `linear` with AVX2: each 32-byte load is 8 columns' pairs; shifting the low
/// halves up and masking the high ones widens them to two f32 vectors.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_panel_row(x: &[u32], w: &[Bf16], bias: Option<&[f32]>, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let half = x.len();
    assert!(w.len().is_multiple_of(2 * half * NR) && out.len() <= w.len() / (2 * half));
    assert!(bias.is_none_or(|b| b.len() == out.len()));
    let high_mask = _mm256_set1_epi32(0xffff_0000u32 as i32);
    for (t, panel) in w.chunks_exact(2 * half * NR).enumerate() {
        let mut acc = [_mm256_setzero_ps(); NR / 8];
        for (&xq, wq) in x.iter().zip(panel.chunks_exact(2 * NR)) {
            let (x0, x1) = (_mm256_set1_ps(low(xq)), _mm256_set1_ps(high(xq)));
            for (c, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `wq` holds 2·NR bf16 = 6 × 32 bytes; chunk `c < 6` is in it.
                let v = unsafe { _mm256_loadu_si256(wq.as_ptr().add(16 * c).cast()) };
                let w0 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v));
                let w1 = _mm256_castsi256_ps(_mm256_and_si256(v, high_mask));
                *acc = _mm256_fmadd_ps(x1, w1, *acc);
                *acc = _mm256_fmadd_ps(x0, w0, *acc);
            }
        }
        let mut row = [0f32; NR];
        for (c, &a) in acc.iter().enumerate() {
            // SAFETY: `row` holds NR = 6 × 8 floats and `c < 6`.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * c), a) };
        }
        let end = ((t + 1) * NR).min(out.len());
        for (j, o) in out[t * NR..end].iter_mut().enumerate() {
            *o = row[j] + bias.map_or(0.0, |b| b[t * NR + j]);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn avx2_panel_row(_: &[u32], _: &[Bf16], _: Option<&[f32]>, _: &mut [f32]) {
    unreachable!("AVX2 is x86_64-only")
}

/// Rows of the `vdpbf16ps` micro-kernel: 8 rows × 3 vectors of sums in 24 registers.
const DMR: usize = 8;

/// Panels `p0..p1` of `linear` on this thread with `vdpbf16ps`.
///
/// # Safety
/// `y` points at `m·n` floats of which no other thread accesses columns `p0·NR..p1·NR`;
/// the CPU has AVX-512F and AVX-512 BF16; `x` holds `m` rows of `kp / 2` pairs; `w` holds
/// panels `p0..p1`; a bias has `n` elements.
#[allow(clippy::too_many_arguments)]
unsafe fn dot_columns(
    x: &[u32],
    m: usize,
    kp: usize,
    w: &[Bf16],
    bias: Option<&[f32]>,
    y: *mut f32,
    n: usize,
    p0: usize,
    p1: usize,
) {
    let half = kp / 2;
    crate::linear::for_each_tile(m, n, p0, p1, DMR, 2 * kp * NR, |i0, rows, t, col, cols| {
        debug_assert!((t + 1) * kp * NR <= w.len() && (i0 + rows) * half <= x.len());
        debug_assert!(bias.is_none_or(|b| col + cols <= b.len()));
        let tile = Tile {
            x: x[i0 * half..].as_ptr(),
            half,
            w: w[t * kp * NR..].as_ptr().cast::<u32>(),
            bias: bias.map_or(std::ptr::null(), |b| b[col..].as_ptr()),
            // SAFETY: row `i0 < m`, column `col < n`: inside `y` (caller).
            y: unsafe { y.add(i0 * n + col) },
            ldy: n,
            cols,
        };
        // SAFETY: rows `i0..i0 + rows` of `x` and `y`, panel `t` and `cols ≤ NR`
        // columns of bias and `y` are in bounds (checked above); the columns are
        // this task's (caller); the CPU has AVX-512 BF16 (caller).
        unsafe {
            match rows {
                8 => dot_tile::<8>(tile),
                7 => dot_tile::<7>(tile),
                6 => dot_tile::<6>(tile),
                5 => dot_tile::<5>(tile),
                4 => dot_tile::<4>(tile),
                3 => dot_tile::<3>(tile),
                2 => dot_tile::<2>(tile),
                _ => dot_tile::<1>(tile),
            }
        }
    });
}

/// What one micro-kernel call reads and writes.
#[derive(Clone, Copy)]
struct Tile {
    /// First row's pairs, `half` per row.
    x: *const u32,
    half: usize,
    /// The panel: `half` pairs of `NR` columns, one 32-bit lane each.
    w: *const u32,
    /// `cols` bias elements, or null.
    bias: *const f32,
    /// First row's first output, `ldy` floats per row, `cols ≤ NR` of them.
    y: *mut f32,
    ldy: usize,
    cols: usize,
}

/// `R` rows × one panel with `vdpbf16ps`: `y = Σ pairs + bias`.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512 BF16; `t` describes `R` readable rows, a whole panel
/// and `cols ≤ NR` writable outputs per row (see `Tile`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dot_tile<const R: usize>(t: Tile) {
    use std::arch::x86_64::*;
    debug_assert!((1..=NR).contains(&t.cols));
    let mut acc = [[_mm512_setzero_ps(); 3]; R];
    for q in 0..t.half {
        // SAFETY: pair `q < half` of the panel is NR lanes = 3 × 16 at `q·NR`; row `i < R`
        // has `half` pairs from `i·half` (caller).
        unsafe {
            let wq = t.w.add(q * NR);
            let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(wq.cast()));
            let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(wq.add(16).cast()));
            let w2: __m512bh = std::mem::transmute(_mm512_loadu_si512(wq.add(32).cast()));
            for (i, acc) in acc.iter_mut().enumerate() {
                let xb: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*t.x.add(i * t.half + q) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], xb, w0);
                acc[1] = _mm512_dpbf16_ps(acc[1], xb, w1);
                acc[2] = _mm512_dpbf16_ps(acc[2], xb, w2);
            }
        }
    }
    for v in 0..3 {
        let mv = crate::linear::lane_mask(t.cols, v);
        if mv == 0 {
            continue;
        }
        // SAFETY: lanes under the mask are columns `16v + l < cols`: bias elements that
        // exist and outputs of rows `i < R` that are writable (caller).
        unsafe {
            let bias = if t.bias.is_null() {
                _mm512_setzero_ps()
            } else {
                _mm512_maskz_loadu_ps(mv, t.bias.add(16 * v))
            };
            for (i, acc) in acc.iter().enumerate() {
                _mm512_mask_storeu_ps(t.y.add(i * t.ldy + 16 * v), mv, _mm512_add_ps(acc[v], bias));
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_tile<const R: usize>(_: Tile) {
    unreachable!("AVX-512 BF16 is x86_64-only")
}

/// Depth of a chunk of a panel in the AMX kernel, in pairs: 128 pairs of 48 columns are
/// 24 KB, which stay in L1 while every tile of rows passes over them. Tile loads from L2
/// stall the tile unit; from L1 they keep up with it.
const CHUNK_PAIRS: usize = 128;

/// The f32 sums of one tile of rows over one panel: the three 16 × 16 tiles, as stored.
#[derive(Clone)]
#[repr(C, align(64))]
struct TileSums([[f32; 16 * 16]; 3]);

thread_local! {
    /// This thread's sums of every tile of rows over its current panel, grown to the
    /// largest product seen.
    static TILE_SUMS: std::cell::RefCell<Vec<TileSums>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Panels `p0..p1` of `linear` on this thread with AMX tiles: panel by panel, chunk by
/// chunk of depth, every tile of 16 rows over the chunk (`amx_chunk`), their sums kept in
/// memory between chunks; then `y = sums + bias`.
///
/// # Safety
/// As `dot_columns`, and: `amx::supported()`; `x` holds `m` rows rounded up to 16; `kp`
/// is a multiple of `2·TILE_PAIRS`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn amx_columns(
    x: &[u32],
    ld: usize,
    m: usize,
    kp: usize,
    w: &[Bf16],
    bias: Option<&[f32]>,
    y: *mut f32,
    n: usize,
    p0: usize,
    p1: usize,
) {
    use crate::amx::ROWS;
    let half = kp / 2;
    let row_tiles = m.div_ceil(ROWS);
    assert!(half.is_multiple_of(TILE_PAIRS) && ld >= half && x.len() >= row_tiles * ROWS * ld);
    assert!(w.len() >= p1 * kp * NR && bias.is_none_or(|b| b.len() >= n));
    TILE_SUMS.with(|sums| {
        let mut sums = sums.borrow_mut();
        if sums.len() < row_tiles {
            sums.resize(row_tiles, TileSums([[0.0; 16 * 16]; 3]));
        }
        // SAFETY: AMX is supported (caller).
        unsafe { crate::amx::configure() };
        // Tiles of rows in groups whose inputs stay in L2 while the panels pass by (the
        // weights are read once per group).
        let group = crate::amx::row_tiles_in_l2(4 * ld);
        for g0 in (0..row_tiles).step_by(group) {
            let g1 = (g0 + group).min(row_tiles);
            for t in p0..p1 {
                let panel = w[t * kp * NR..(t + 1) * kp * NR].as_ptr().cast::<u8>();
                for c0 in (0..half).step_by(CHUNK_PAIRS) {
                    let c1 = (c0 + CHUNK_PAIRS).min(half);
                    for (r, sums) in sums[..g1].iter_mut().enumerate().skip(g0) {
                        // SAFETY: 16 rows of `x` from row `16r` hold pairs `c0..c1` (asserted
                        // above); pairs `c0..c1` of panel `t` are in `w`; the tiles are
                        // configured.
                        unsafe {
                            amx_chunk(
                                x[r * ROWS * ld..].as_ptr(),
                                ld,
                                panel,
                                c0,
                                c1,
                                sums,
                                r == g0,
                            )
                        }
                    }
                }
                let (col, cols) = (t * NR, (n - t * NR).min(NR));
                for (r, sums) in sums[..g1].iter().enumerate().skip(g0) {
                    let rows = (m - r * ROWS).min(ROWS);
                    // SAFETY: rows `16r .. 16r + rows` (< m) and columns `col .. col + cols`
                    // (≤ n) of `y` are this task's (caller); the bias has `n` elements.
                    unsafe {
                        amx_write(
                            sums,
                            rows,
                            cols,
                            bias.map(|b| &b[col..col + cols]),
                            y.add(r * ROWS * n + col),
                            n,
                        )
                    }
                }
            }
        }
        // SAFETY: AMX is supported (caller).
        unsafe { crate::amx::release() };
    })
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn amx_columns(
    _: &[u32],
    _: usize,
    _: usize,
    _: usize,
    _: &[Bf16],
    _: Option<&[f32]>,
    _: *mut f32,
    _: usize,
    _: usize,
    _: usize,
) {
    unreachable!("AMX is x86_64-only")
}

/// 16 rows × pairs `c0..c1` of one panel with AMX tiles, added to `sums` (which the first
/// chunk, `c0 = 0`, starts from zero): per 16 pairs, `tdpbf16ps` multiplies 16 rows of
/// inputs (tile 3) by the panel's three 16-column slices (tiles 4–6; a panel pair is one
/// 64-byte row of each) into the three sum tiles (0–2). Storing and reloading sums between
/// chunks changes no bit, so a row's sums do not depend on the chunking or the other rows.
/// With `stream` (the first rows over a chunk, which read it from memory) the panel is
/// prefetched ahead.
///
/// # Safety
/// The CPU has AMX, the tiles are configured; `x` points at 16 readable rows of `ld ≥ c1`
/// pairs, `panel` at a readable panel of at least `c1` pairs, `c0 < c1` are multiples of
/// `TILE_PAIRS`.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn amx_chunk(
    x: *const u32,
    ld: usize,
    panel: *const u8,
    c0: usize,
    c1: usize,
    sums: &mut TileSums,
    stream: bool,
) {
    use crate::amx::{dp_bf16, load, store, zero, ROW_BYTES};
    debug_assert!(c0 < c1 && c1 <= ld && c0.is_multiple_of(TILE_PAIRS));
    let pair = 4 * NR;
    let out = &mut sums.0;
    // SAFETY: the tiles are configured (caller). Tiles 0–2 read and write `sums`, three
    // 16 × 64-byte tiles. Tile 3 reads 16 rows of 64 bytes at pair `s` of each row (`4·ld`
    // bytes apart, readable by the caller's contract); tiles 4–6 read pairs `s .. s + 16`
    // of the panel, 64 bytes each at offsets 0, 64, 128 of a 192-byte pair.
    unsafe {
        if c0 == 0 {
            zero!(0);
            zero!(1);
            zero!(2);
        } else {
            load!(0, out[0].as_ptr(), ROW_BYTES);
            load!(1, out[1].as_ptr(), ROW_BYTES);
            load!(2, out[2].as_ptr(), ROW_BYTES);
        }
        for s in (c0..c1).step_by(TILE_PAIRS) {
            let wb = panel.add(s * pair);
            if stream {
                crate::amx::prefetch_ahead(wb, TILE_PAIRS * pair);
            }
            load!(3, x.add(s), 4 * ld);
            load!(4, wb, pair);
            load!(5, wb.add(ROW_BYTES), pair);
            load!(6, wb.add(2 * ROW_BYTES), pair);
            dp_bf16!(0, 3, 4);
            dp_bf16!(1, 3, 5);
            dp_bf16!(2, 3, 6);
        }
        store!(0, out[0].as_mut_ptr(), ROW_BYTES);
        store!(1, out[1].as_mut_ptr(), ROW_BYTES);
        store!(2, out[2].as_mut_ptr(), ROW_BYTES);
    }
}

/// `y = sums + bias` for `rows` rows and `cols ≤ NR` columns of one tile of rows.
///
/// # Safety
/// The CPU has AVX-512F; `y` points at `rows` writable rows of `cols` floats, `ldy` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn amx_write(
    sums: &TileSums,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    y: *mut f32,
    ldy: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(rows <= 16 && (1..=NR).contains(&cols));
    for (v, tile) in sums.0.iter().enumerate() {
        let mv = crate::linear::lane_mask(cols, v);
        if mv == 0 {
            continue;
        }
        // SAFETY: lanes under the mask are columns `16v + l < cols`: bias elements that
        // exist and outputs of rows `i < rows` that are writable (caller); row `i < 16` of
        // a 16 × 16 tile.
        unsafe {
            let bias = match bias {
                None => _mm512_setzero_ps(),
                Some(b) => _mm512_maskz_loadu_ps(mv, b.as_ptr().add(16 * v)),
            };
            for i in 0..rows {
                let acc = _mm512_load_ps(tile.as_ptr().add(16 * i));
                _mm512_mask_storeu_ps(y.add(i * ldy + 16 * v), mv, _mm512_add_ps(acc, bias));
            }
        }
    }
}

/// Row `r` of a `[rows, width]` table stored transposed in bf16 panels (the tied LM head's
/// weight, `width` deep): `out[p] = w[p, r]`.
pub fn gather_row(w: &[Bf16], rows: usize, width: usize, r: usize, out: &mut [f32]) {
    assert!(r < rows && out.len() == width && w.len() == panels_len(width, rows));
    // Column `r`'s pairs: two values each, one pair of the panel (2·NR values) apart.
    let first = panel_index(width, 0, r);
    let pairs = w[first..].chunks(2 * NR).map(|p| &p[..2]);
    for (o2, p) in out.chunks_mut(2).zip(pairs) {
        for (o, b) in o2.iter_mut().zip(p) {
            *o = b.to_f32();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{rand_vec, same_bits_on_every_isa};

    #[test]
    fn every_isa_gives_the_same_bits_and_matches_the_rounded_reference() {
        let mut seed = 21;
        for &(m, k, n) in &[
            (1, 1, 1),
            (2, 0, 5),
            (1, 768, 100),
            (3, 71, 48),
            (9, 130, 97),
            (17, 64, 200),
            (1, 3072, 50),
        ] {
            let x = rand_vec(m * k, &mut seed);
            let wf = rand_vec(k * n, &mut seed);
            let w = pack(&wf, k, n);
            let b = rand_vec(n, &mut seed);
            // The reference: both operands rounded to bf16, f64 sums.
            let r = |v: f32| Bf16::from_f32(v).to_f32() as f64;
            let want: Vec<f64> = (0..m * n)
                .map(|i| {
                    let (row, j) = (i / n, i % n);
                    (0..k)
                        .map(|p| r(x[row * k + p]) * r(wf[p * n + j]))
                        .sum::<f64>()
                })
                .collect();
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
                        let w = w + bias.map_or(0.0, |b| b[i % n] as f64);
                        match act {
                            Gelu => crate::vmath::gelu(w as f32) as f64,
                            Identity => w,
                        }
                    })
                    .collect();
                let tol = 1e-5 * (k as f64).sqrt().max(1.0);
                same_bits_on_every_isa(
                    &format!("{m}x{k}x{n} {act:?}"),
                    &want,
                    |_| tol,
                    |isa, y| linear_with(isa, false, &x, m, k, &w, bias, act, y, n),
                );
            }
        }
    }

    #[test]
    fn rows_round_as_bf16_from_f32() {
        let mut bits: Vec<u32> = (0..1u64 << 32).step_by(65_521).map(|b| b as u32).collect();
        bits.extend([
            0x7f80_0000,
            0xff80_0000,
            0x7fc0_0001,
            0xff81_0000,
            0x7f7f_ffff,
            1,
        ]);
        for b in bits {
            let v = f32::from_bits(b);
            assert_eq!(bf16_bits(v), Bf16::from_f32(v).0 as u32, "{b:#x}");
        }
        let x = [1.0, f32::NAN, -3.5];
        let mut pairs = [7u32; 3];
        round_row_body(&x, &mut pairs);
        assert_eq!(
            pairs,
            [
                bf16_bits(1.0) | bf16_bits(f32::NAN) << 16,
                bf16_bits(-3.5),
                0
            ]
        );
    }

    #[test]
    fn tiles_are_within_their_rounding_bound_of_the_vector_kernels() {
        if !crate::amx::supported() {
            println!("AMX tiles not supported here: skipped");
            return;
        }
        // The tile unit adds the same exact products in its own order (and flushes
        // subnormals, none here). Any two orders of rounded additions of k terms are within
        // 2·k·2⁻²⁴·Σ|terms| of each other (each is within (k − 1)·2⁻²⁴·Σ|terms| of the exact
        // sum); the bias is then added once, one more rounding of the result.
        let mut seed = 22;
        for &(m, k, n) in &[
            (1, 32, 1),
            (1, 768, 100),
            (3, 64, 48),
            (16, 96, 97),
            (17, 768, 200),
            (40, 3072, 50),
            // Rows in two groups (`amx::row_tiles_in_l2`: 5 tiles of rows this deep).
            (100, 3072, 50),
        ] {
            let x = rand_vec(m * k, &mut seed);
            let wf = rand_vec(k * n, &mut seed);
            let w = pack(&wf, k, n);
            let b = rand_vec(n, &mut seed);
            let r = |v: f32| Bf16::from_f32(v).to_f32() as f64;
            for threads in [1, 2] {
                crate::set_threads(threads);
                let mut tiles = vec![f32::NAN; m * n];
                let mut vector = vec![f32::NAN; m * n];
                let act = Activation::Identity;
                linear_with(
                    Isa::Avx512,
                    true,
                    &x,
                    m,
                    k,
                    &w,
                    Some(&b),
                    act,
                    &mut tiles,
                    n,
                );
                linear_with(
                    Isa::Avx512,
                    false,
                    &x,
                    m,
                    k,
                    &w,
                    Some(&b),
                    act,
                    &mut vector,
                    n,
                );
                for i in 0..m * n {
                    let (row, j) = (i / n, i % n);
                    let magnitude: f64 = (0..k)
                        .map(|p| (r(x[row * k + p]) * r(wf[p * n + j])).abs())
                        .sum();
                    let y = vector[i].abs().max(tiles[i].abs()) as f64;
                    let bound = 2.0 * k as f64 * magnitude / (1u64 << 24) as f64
                        + 2.0 * y / (1u64 << 24) as f64;
                    let d = (tiles[i] as f64 - vector[i] as f64).abs();
                    assert!(
                        d <= bound,
                        "{m}x{k}x{n}, {threads} threads, output {i}: {} vs {} (bound {bound})",
                        tiles[i],
                        vector[i]
                    );
                }
                // A row's result does not depend on the other rows of the product.
                let mut alone = vec![f32::NAN; n];
                linear_with(
                    Isa::Avx512,
                    true,
                    &x[..k],
                    1,
                    k,
                    &w,
                    Some(&b),
                    act,
                    &mut alone,
                    n,
                );
                assert_eq!(
                    alone.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    tiles[..n].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{m}x{k}x{n}: row 0 alone differs"
                );
            }
        }
    }

    #[test]
    fn gathered_rows_are_the_stored_columns() {
        let mut seed = 4;
        let (width, rows) = (71, 100);
        let t = rand_vec(width * rows, &mut seed);
        let w = pack(&t, width, rows);
        let mut out = vec![0f32; width];
        for r in [0, 47, 48, 99] {
            gather_row(&w, rows, width, r, &mut out);
            for p in 0..width {
                assert_eq!(out[p], Bf16::from_f32(t[p * rows + r]).to_f32());
            }
        }
    }
}
