//! Scaled dot-product attention over the KV cache (`kernels::attention`): a few query rows
//! (decoding) by dot products against the cache, many (a prefill) by blocks of GEMMs, on
//! the packed AVX-512 panels (`gemm`) or `matmul`, with `vmath`'s softmax rows. A kernel
//! family above `gemm`, `matmul` and `vmath`, below the `kernels` facade.
//!
//! A decoding row's dot products and weighted sum are defined once, in plain code (`dots`,
//! `weighted_sum`: sixteen partial sums, four rows at a time); GPT-2's 64-value heads run
//! them through AVX-512 kernels (`dots64`, `weighted_sum64`) that add the same sums in the
//! same order and read every cache format in registers, so a narrow cache costs no pass
//! through memory to widen it.

use crate::batch::Run;
use crate::elem::{Bf16, F16};
use crate::kv::KvRef;
use crate::layout::Layout;
use crate::matmul::matmul_serial;

/// Where one operand of `attention` lies in its buffer: channel `c` of row `i` of head `h`
/// of batch `b` is element `offset + b·batch + h·head + i·row + c·col`. Heads may sit side
/// by side in each row: q, k and v read straight from a fused QKV projection `[rows, 3·H·d]`,
/// the output written as `[rows, H·d]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLayout {
    /// Element of batch 0, head 0, row 0, channel 0.
    pub offset: usize,
    /// Stride between batches.
    pub batch: usize,
    /// Stride between heads.
    pub head: usize,
    /// Stride between rows (sequence positions).
    pub row: usize,
    /// Stride between channels of a head.
    pub col: usize,
}

impl HeadLayout {
    /// `[batch, heads, rows, d]`, row-major from element 0.
    pub const fn dense(heads: usize, rows: usize, d: usize) -> HeadLayout {
        HeadLayout {
            offset: 0,
            batch: heads * rows * d,
            head: rows * d,
            row: d,
            col: 1,
        }
    }

    /// Where head `b` (of batch × heads) starts.
    fn start(&self, b: usize, heads: usize) -> usize {
        self.offset + b / heads * self.batch + b % heads * self.head
    }

    /// One past the largest element `bh` heads of `rows` × `d` touch (0 when empty).
    fn end(&self, bh: usize, heads: usize, rows: usize, d: usize) -> usize {
        if bh == 0 || rows == 0 || d == 0 {
            return 0;
        }
        self.start(bh - 1, heads)
            .max(self.start(heads.min(bh) - 1, heads))
            + (rows - 1) * self.row
            + (d - 1) * self.col
            + 1
    }

    /// No two positions share an element: taken in increasing order, each stride passes
    /// everything the smaller ones reach.
    fn is_injective(&self, bh: usize, heads: usize, rows: usize, d: usize) -> bool {
        let mut dims = [
            (bh / heads, self.batch),
            (heads.min(bh), self.head),
            (rows, self.row),
            (d, self.col),
        ];
        dims.sort_by_key(|&(_, s)| s);
        let mut reach = 0;
        for (n, s) in dims {
            if n > 1 {
                if s <= reach {
                    return false;
                }
                reach += (n - 1) * s;
            }
        }
        true
    }
}

/// Shapes and options of one `attention` call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionDims {
    /// Batch × heads.
    pub bh: usize,
    /// Heads per batch (a head's place in the layouts is `b / heads`, `b % heads`).
    pub heads: usize,
    /// Row capacity of q and out and of k and v (their sequence axis).
    pub q_rows: usize,
    /// Row capacity of k and v.
    pub kv_rows: usize,
    /// Head size.
    pub d: usize,
    /// Score multiplier (1/√d).
    pub scale: f32,
    /// Query row i sees keys 0..=i (+ kv_rows − q_rows); later keys are skipped.
    pub causal: bool,
    /// Where q, k, v and out lie in their buffers. q, v and out have contiguous channels
    /// (`col` 1); k may be stored transposed (`row` 1, `col` kv_rows).
    pub q: HeadLayout,
    /// Keys.
    pub k: HeadLayout,
    /// Values.
    pub v: HeadLayout,
    /// The output.
    pub out: HeadLayout,
}

/// Query rows per block in attention over many rows (scores of 64 rows × 1024 keys: 256 KiB).
const QUERY_BLOCK: usize = 64;

/// Rows of a narrow cache a step widens at once where no kernel reads it in registers (32
/// rows of 64 channels: 8 KiB, in L1).
const WIDE_ROWS: usize = 32;

/// A thread's working memory for `attention_heads`, kept between calls. It is borrowed
/// outside the ISA-compiled kernel and passed in: a closure given to `LocalKey::with`
/// inside the kernel would be compiled without the kernel's target features.
#[derive(Default)]
pub struct Scratch {
    /// Scores.
    scores: Vec<f32>,
    /// A block of output rows before they go to their (strided) place.
    tile: Vec<f32>,
    /// An attention head's keys (as Kᵀ) and values in GEMM panels (prefill on AVX-512).
    kt: Vec<f32>,
    vp: Vec<f32>,
    /// A head's keys and values widened from a narrow cache (prefill), and a stretch of
    /// rows of them (decoding).
    wk: Vec<f32>,
    wv: Vec<f32>,
    wrow: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Scaled dot-product attention for query rows `r0..r0 + rn` of every (batch, head):
/// `out[i] = Σ_j softmax_j(scale · q[i]·k[j]) v[j]`, over keys `0..=i` when causal (the
/// masked keys have weight exactly 0 in the reference graph, so they are not computed).
/// Buffers are full-size and read and written through the layouts in `dims`; this reads
/// only rows the causal mask lets through, so k and v rows beyond the last query are never
/// touched (they may hold stale cache data).
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    dims: AttentionDims,
    r0: usize,
    rn: usize,
) {
    attention_at(q, k, v, out, dims, r0, rn, r0)
}

/// `attention` for query rows `r0..r0 + rn` of q and out that hold sequence positions
/// `pos0..pos0 + rn`: causal row `r0 + i` sees keys `0..=pos0 + i` (+ kv_rows − q_rows).
/// A batched step stacks the rows of several sequences, so a row's place in the step and
/// its position differ; the arithmetic of each row is the same as in `attention`.
#[allow(clippy::too_many_arguments)]
pub fn attention_at(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    dims: AttentionDims,
    r0: usize,
    rn: usize,
    pos0: usize,
) {
    attention_kv(q, k.into(), v.into(), out, dims, r0, rn, pos0)
}

/// `attention_at` over keys and values in any cache format (`kv`): a narrow cache's rows
/// are widened as they are read, and the rest is computed in f32 as over their values.
#[allow(clippy::too_many_arguments)]
pub fn attention_kv(
    q: &[f32],
    k: KvRef,
    v: KvRef,
    out: &mut [f32],
    dims: AttentionDims,
    r0: usize,
    rn: usize,
    pos0: usize,
) {
    attention_kv_on(crate::cpu::detected(), q, k, v, out, dims, r0, rn, pos0)
}

/// `attention_kv` on a chosen ISA (AVX-512 with its decoding kernels), for tests and
/// benchmarks. Every ISA gives the same bits for decoding rows.
#[allow(clippy::too_many_arguments)]
pub fn attention_kv_on(
    isa: crate::cpu::Isa,
    q: &[f32],
    k: KvRef,
    v: KvRef,
    out: &mut [f32],
    dims: AttentionDims,
    r0: usize,
    rn: usize,
    pos0: usize,
) {
    let run = Run {
        row: r0,
        rows: rn,
        pos: pos0,
        cache: 0,
    };
    attention_runs_on(isa, q, out, dims, std::iter::once(run), |_| (k, v));
}

/// `attention_at` for every run of a batched step at once: run `r`'s rows `r.row..` of q
/// and out (positions `r.pos..`) against the keys and values `kv(r.cache)`, its own
/// sequence's cache. The (run, head) pairs are shared out over the threads in one dispatch
/// (a decode step's runs are one row each: a dispatch per run would cost more than the
/// work), and each is computed as `attention_at` computes it alone, so a row's result does
/// not depend on the other runs or the thread count. The runs' rows must increase and not
/// overlap, as `batch::runs` gives them.
pub fn attention_runs<'a, R>(
    q: &[f32],
    out: &mut [f32],
    dims: AttentionDims,
    runs: R,
    kv: impl Fn(usize) -> (KvRef<'a>, KvRef<'a>) + Sync,
) where
    R: Iterator<Item = Run> + Clone + Sync,
{
    attention_runs_on(crate::cpu::detected(), q, out, dims, runs, kv)
}

/// `attention_runs` on `isa` (one of `cpu::available()`).
fn attention_runs_on<'a, R>(
    isa: crate::cpu::Isa,
    q: &[f32],
    out: &mut [f32],
    dims: AttentionDims,
    runs: R,
    kv: impl Fn(usize) -> (KvRef<'a>, KvRef<'a>) + Sync,
) where
    R: Iterator<Item = Run> + Clone + Sync,
{
    let (bh, d) = (dims.bh, dims.d);
    let (mut n, mut work, mut next_row) = (0, 0, 0);
    for run in runs.clone() {
        assert!(run.row >= next_row, "runs overlap or are out of order");
        next_row = run.row + run.rows;
        let (k, v) = kv(run.cache);
        check(q, k, v, out, dims, run.row, run.rows, run.pos);
        let keys = if dims.causal {
            dims.kv_rows - dims.q_rows + run.pos + run.rows
        } else {
            dims.kv_rows
        };
        work += run.rows * keys * d * bh;
        n += 1;
    }
    assert!(
        crate::cpu::available().contains(&isa),
        "{isa:?} is not available"
    );
    // Prefill multiplies through packed GEMM panels where the packed kernel runs.
    let packed = isa == crate::cpu::Isa::Avx512 && crate::gemm::supported();
    // Decoding rows of 64 values through the AVX-512 kernels (`dots64`).
    let wide = isa == crate::cpu::Isa::Avx512;
    let rows = HeadRows {
        ptr: crate::SendPtr(out.as_mut_ptr()),
        layout: dims.out,
        heads: dims.heads,
        d,
        _out: std::marker::PhantomData,
    };
    // Items `i0..i1` of the (run, head) pairs, run-major: each run's heads in one call.
    let items = |i0: usize, i1: usize| {
        for (r, run) in runs.clone().enumerate() {
            let (h0, h1) = (i0.max(r * bh), i1.min((r + 1) * bh));
            if h0 < h1 {
                let (k, v) = kv(run.cache);
                let (r0, rn, pos0) = (run.row, run.rows, run.pos);
                let (h0, nh) = (h0 - r * bh, h1 - h0);
                SCRATCH.with(|sc| {
                    let sc = &mut *sc.borrow_mut();
                    attention_heads_with(
                        isa, packed, wide, q, k, v, &rows, dims, r0, rn, pos0, h0, nh, sc,
                    )
                });
            }
        }
    };
    // Split over threads when there is enough work; a few tasks per thread, claimed
    // dynamically, since a prompt's run outweighs a decoding row's.
    let total = n * bh;
    let t = crate::threads().min(total);
    if t > 1 && work >= (1 << 16) {
        let per = total.div_ceil(t * 4);
        crate::pool::run(total.div_ceil(per), &|i| {
            items(i * per, ((i + 1) * per).min(total))
        });
    } else {
        items(0, total);
    }
}

/// Checks one call of `attention_at`: the rows are in range and every head's q, k, v and
/// output rows lie inside their buffers, the output positions distinct.
#[allow(clippy::too_many_arguments)]
fn check(
    q: &[f32],
    k: KvRef,
    v: KvRef,
    out: &[f32],
    dims: AttentionDims,
    r0: usize,
    rn: usize,
    pos0: usize,
) {
    let AttentionDims {
        bh,
        heads,
        q_rows,
        kv_rows,
        d,
        ..
    } = dims;
    assert!(
        heads > 0 && bh % heads == 0,
        "bh is not a multiple of heads"
    );
    assert!(
        r0 + rn <= q_rows && pos0 + rn <= q_rows && q_rows <= kv_rows,
        "rows out of range"
    );
    let (lq, lk, lv, lo) = (dims.q, dims.k, dims.v, dims.out);
    assert!(
        lq.col == 1 && lv.col == 1 && lo.col == 1 && lq.row >= d,
        "q, v and out need contiguous channels"
    );
    assert!(lq.end(bh, heads, q_rows, d) <= q.len(), "q out of bounds");
    assert!(lk.end(bh, heads, kv_rows, d) <= k.len(), "k out of bounds");
    assert!(lv.end(bh, heads, kv_rows, d) <= v.len(), "v out of bounds");
    assert!(
        lo.end(bh, heads, q_rows, d) <= out.len(),
        "out out of bounds"
    );
    assert!(
        lo.is_injective(bh, heads, q_rows, d),
        "output positions overlap"
    );
    // A narrow cache is read a head's row at a time: contiguous channels, rows on blocks.
    for (x, l) in [(k, lk), (v, lv)] {
        if x.as_f32().is_none() {
            let b = x.block();
            assert!(
                l.col == 1
                    && l.offset % b == 0
                    && d % b == 0
                    && [l.batch, l.head, l.row].iter().all(|s| s % b == 0),
                "a narrow cache needs contiguous channels in whole blocks of {b}"
            );
        }
    }
}

/// The output rows of `attention`, handed out one at a time to the task computing their
/// head. `attention` checked that the layout stays inside the buffer and that no two
/// (head, row, channel) positions share an element.
pub struct HeadRows<'a> {
    ptr: crate::SendPtr<f32>,
    layout: HeadLayout,
    heads: usize,
    d: usize,
    _out: std::marker::PhantomData<&'a mut [f32]>,
}

impl HeadRows<'_> {
    /// Row `i` of head `b`.
    ///
    /// # Safety
    /// `b` and `i` are in range of the checked layout, no other task computes row `i` of
    /// head `b` (tasks take distinct heads of runs whose rows do not overlap), and the
    /// caller holds no other borrow of this row.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, b: usize, i: usize) -> &mut [f32] {
        let at = self.layout.start(b, self.heads) + i * self.layout.row;
        // SAFETY: in bounds and unshared by the caller's contract and `attention`'s checks.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.get().add(at), self.d) }
    }
}

/// How many cache rows ahead a decoding row's dot products and weighted sum ask for their
/// keys and values. A decode step reads each head's keys and values (a few KB each, of a
/// cache the weights stream has pushed out of L3) once, in short runs the hardware
/// prefetcher barely starts on before they end; asked for early, the rows arrive together.
const PREFETCH_ROWS: usize = 32;

/// Asks the cache for rows `rows` of `d` floats, `stride` apart, of `x` (rows past the end
/// of `x` are skipped).
#[inline(always)]
fn prefetch_rows(x: &[f32], stride: usize, rows: std::ops::Range<usize>, d: usize) {
    for j in rows {
        match x.get(j * stride..j * stride + d) {
            Some(row) => crate::cpu::prefetch(row),
            None => break,
        }
    }
}

/// A cache row as a decoding step reads it: `f32` values in place, or int8 values widened
/// in registers as they are read (each value exactly `KvRef::values`'s widening).
trait KvRow: Copy {
    /// Values `16c..16c + 16`.
    fn chunk(self, c: usize) -> [f32; 16];
    /// Value `i`.
    fn at(self, i: usize) -> f32;
}

impl KvRow for &[f32] {
    #[inline(always)]
    fn chunk(self, c: usize) -> [f32; 16] {
        self[16 * c..16 * c + 16].try_into().unwrap()
    }
    #[inline(always)]
    fn at(self, i: usize) -> f32 {
        self[i]
    }
}

/// A row of a q8 cache whose blocks are 32 values (`kv::q8_block` of every head size
/// that is a multiple of 32, GPT-2's 64 among them): its values and its blocks' scales.
#[derive(Clone, Copy)]
struct Q8Row<'a> {
    q: &'a [i8],
    scales: &'a [f32],
}

impl<'a> Q8Row<'a> {
    /// Values per scale.
    const BLOCK: usize = 32;

    /// The `d` values from `at` (a block boundary) of a q8 cache.
    #[inline(always)]
    fn new(q: &'a [i8], scales: &'a [f32], at: usize, d: usize) -> Q8Row<'a> {
        Q8Row {
            q: &q[at..at + d],
            scales: &scales[at / Self::BLOCK..],
        }
    }
}

impl KvRow for Q8Row<'_> {
    #[inline(always)]
    fn chunk(self, c: usize) -> [f32; 16] {
        let s = self.scales[16 * c / Self::BLOCK];
        let q: &[i8; 16] = self.q[16 * c..16 * c + 16].try_into().unwrap();
        // A loop, not `array::from_fn`: its closure would be compiled apart, without the
        // calling kernel's target features.
        let mut y = [0f32; 16];
        for i in 0..16 {
            y[i] = q[i] as f32 * s;
        }
        y
    }
    #[inline(always)]
    fn at(self, i: usize) -> f32 {
        self.q[i] as f32 * self.scales[i / Self::BLOCK]
    }
}

/// Sixteen partial sums added pairwise (the halves of an AVX-512 vector, then of what is
/// left), the order every ISA uses.
#[inline(always)]
fn sum16(a: [f32; 16]) -> f32 {
    let mut h = [0f32; 8];
    for i in 0..8 {
        h[i] = a[i] + a[i + 8];
    }
    let mut h4 = [0f32; 4];
    for i in 0..4 {
        h4[i] = h[i] + h[i + 4];
    }
    (h4[0] + h4[2]) + (h4[1] + h4[3])
}

/// `scores[j] = q · row(j) · scale`: each product in sixteen partial sums over 16-value
/// chunks (`sum16`), the values past the last whole chunk added after in order; four rows
/// at a time, so their sums overlap instead of each waiting on its own. `before(j)` runs
/// before row `j` is read (a prefetch).
#[inline(always)]
fn dots<R: KvRow>(
    q: &[f32],
    row: impl Fn(usize) -> R,
    scale: f32,
    scores: &mut [f32],
    mut before: impl FnMut(usize),
) {
    let mut j = 0;
    while j + 4 <= scores.len() {
        for r in j..j + 4 {
            before(r);
        }
        let rows = [row(j), row(j + 1), row(j + 2), row(j + 3)];
        scores[j..j + 4].copy_from_slice(&dot_rows(q, rows, scale));
        j += 4;
    }
    for (r, s) in scores.iter_mut().enumerate().skip(j) {
        before(r);
        *s = dot_rows(q, [row(r)], scale)[0];
    }
}

/// `q · rows[r] · scale` for each of the `N` rows, as `dots` defines it.
#[inline(always)]
fn dot_rows<R: KvRow, const N: usize>(q: &[f32], rows: [R; N], scale: f32) -> [f32; N] {
    let chunks = q.len() / 16;
    let mut acc = [[0f32; 16]; N];
    for c in 0..chunks {
        let x: &[f32; 16] = q[16 * c..16 * c + 16].try_into().unwrap();
        for r in 0..N {
            let y = rows[r].chunk(c);
            for i in 0..16 {
                acc[r][i] += x[i] * y[i];
            }
        }
    }
    let mut out = [0f32; N];
    for r in 0..N {
        let mut sum = sum16(acc[r]);
        for (i, &x) in q.iter().enumerate().skip(16 * chunks) {
            sum += x * rows[r].at(i);
        }
        out[r] = sum * scale;
    }
    out
}

/// `o = Σ_j p[j] · row(j)`: `weighted_sum_into` from zero.
#[inline(always)]
fn weighted_sum<R: KvRow>(
    p: &[f32],
    row: impl Fn(usize) -> R,
    o: &mut [f32],
    before: impl FnMut(usize),
) {
    o.iter_mut().for_each(|x| *x = 0.0);
    weighted_sum_into(p, row, o, before);
}

/// `o += Σ_j p[j] · row(j)`, row after row for each value; GPT-2's 64-value rows are summed
/// in registers. `before(j)` runs before row `j` is read (a prefetch).
#[inline(always)]
fn weighted_sum_into<R: KvRow>(
    p: &[f32],
    row: impl Fn(usize) -> R,
    o: &mut [f32],
    mut before: impl FnMut(usize),
) {
    if let Ok(o) = <&mut [f32; 64]>::try_from(&mut *o) {
        let mut acc = *o;
        for (j, &pj) in p.iter().enumerate() {
            before(j);
            let r = row(j);
            for c in 0..4 {
                let y = r.chunk(c);
                for i in 0..16 {
                    acc[16 * c + i] += pj * y[i];
                }
            }
        }
        *o = acc;
        return;
    }
    for (j, &pj) in p.iter().enumerate() {
        before(j);
        let r = row(j);
        for (i, x) in o.iter_mut().enumerate() {
            *x += pj * r.at(i);
        }
    }
}

/// A decoding row's 64-value keys or values as the AVX-512 kernels read them: `rows` rows
/// `stride` apart, f32 or int8 with a scale per 32 values (each value widened exactly as
/// `KvRef::values` widens it). Made only over rows that are in bounds.
#[derive(Clone, Copy)]
enum Rows64<'a> {
    F32 {
        x: &'a [f32],
        stride: usize,
    },
    F16 {
        x: &'a [F16],
        stride: usize,
    },
    Bf16 {
        x: &'a [Bf16],
        stride: usize,
    },
    Q8 {
        q: &'a [i8],
        scales: &'a [f32],
        stride: usize,
    },
}

impl<'a> Rows64<'a> {
    /// Rows `0..rows` of 64 values at `at + j · stride` of a cache, or `None` for a q8 one
    /// whose blocks are not 32 values or whose rows do not start on block boundaries.
    fn new(x: KvRef<'a>, at: usize, stride: usize, rows: usize) -> Option<Rows64<'a>> {
        let end = if rows == 0 {
            at
        } else {
            at + (rows - 1) * stride + 64
        };
        assert!(end <= x.len(), "rows past the cache");
        Some(match x {
            KvRef::F32(x) => Rows64::F32 {
                x: &x[at..],
                stride,
            },
            KvRef::F16(x) => Rows64::F16 {
                x: &x[at..],
                stride,
            },
            KvRef::Bf16(x) => Rows64::Bf16 {
                x: &x[at..],
                stride,
            },
            KvRef::Q8 { q, scales, block } => {
                if block != Q8Row::BLOCK
                    || !at.is_multiple_of(block)
                    || !stride.is_multiple_of(block)
                {
                    return None;
                }
                assert!(end.div_ceil(block) <= scales.len(), "scales past the cache");
                Rows64::Q8 {
                    q: &q[at..],
                    scales: &scales[at / block..],
                    stride,
                }
            }
        })
    }
}

/// `sum16` of an AVX-512 vector: halves added pairwise, in `sum16`'s order.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn sum16_avx512(v: std::arch::x86_64::__m512) -> f32 {
    use std::arch::x86_64::*;
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let s8 = _mm256_add_ps(lo, hi);
    let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
}

/// Expands `$body!(|j, c| load, |pj| ahead)` for the format of `$rows` (a `Rows64`): `load`
/// is values `16c..16c + 16` of row `j` widened to f32 in a vector, `ahead` asks for row
/// `pj`. For the AVX-512 kernels, each loop then compiled for one format.
#[cfg(target_arch = "x86_64")]
macro_rules! with_rows64 {
    ($rows:expr, $body:ident) => {
        // SAFETY (every load): the kernel reads rows `j` below the count `$rows` was made
        // for, whose 64 values (and two scales) are in bounds.
        match $rows {
            Rows64::F32 { x, stride } => $body!(
                |j, c| unsafe { _mm512_loadu_ps(x.as_ptr().add(j * stride + 16 * c)) },
                |pj| crate::cpu::prefetch(&x[pj * stride..pj * stride + 64])
            ),
            Rows64::F16 { x, stride } => $body!(
                |j, c| unsafe {
                    _mm512_cvtph_ps(_mm256_loadu_si256(
                        x.as_ptr().add(j * stride + 16 * c).cast(),
                    ))
                },
                |pj| crate::cpu::prefetch(&x[pj * stride..pj * stride + 64])
            ),
            Rows64::Bf16 { x, stride } => $body!(
                |j, c| unsafe {
                    let h = _mm256_loadu_si256(x.as_ptr().add(j * stride + 16 * c).cast());
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                },
                |pj| crate::cpu::prefetch(&x[pj * stride..pj * stride + 64])
            ),
            Rows64::Q8 { q, scales, stride } => {
                $body!(|j, c| unsafe { q8_chunk(q, scales, j * stride, c) }, |pj| {
                    crate::cpu::prefetch(&q[pj * stride..pj * stride + 64]);
                    crate::cpu::prefetch(&scales[pj * stride / Q8Row::BLOCK..][..1]);
                })
            }
        }
    };
}

/// `sum16_avx512` of four vectors at once, the sums in lanes 0..4: each vector's halves
/// added pairwise in `sum16`'s order, four vectors to a shuffle.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn sum16x4_avx512(v: [std::arch::x86_64::__m512; 4]) -> std::arch::x86_64::__m128 {
    use std::arch::x86_64::*;
    // [a₀..₈ + a₈..₁₆, b₀..₈ + b₈..₁₆], and the same of c and d.
    let ab = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b01_00_01_00>(v[0], v[1]),
        _mm512_shuffle_f32x4::<0b11_10_11_10>(v[0], v[1]),
    );
    let cd = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b01_00_01_00>(v[2], v[3]),
        _mm512_shuffle_f32x4::<0b11_10_11_10>(v[2], v[3]),
    );
    // Each 128-bit lane one vector's s₀..₄ + s₄..₈: lanes a, b, c, d.
    let s4 = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b10_00_10_00>(ab, cd),
        _mm512_shuffle_f32x4::<0b11_01_11_01>(ab, cd),
    );
    // In each lane (t₀ + t₂, t₁ + t₃), then their sum in element 0.
    let s2 = _mm512_add_ps(s4, _mm512_permute_ps::<0b11_10_11_10>(s4));
    let s1 = _mm512_add_ps(s2, _mm512_permute_ps::<0b01_01_01_01>(s2));
    let first = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    _mm512_castps512_ps128(_mm512_permutexvar_ps(first, s1))
}

/// `dots` over 64-value rows with AVX-512 (the same sums in the same order, so the same
/// bits): four rows at a time, each in one vector of sixteen partial sums. f32 rows are
/// asked for `PREFETCH_ROWS` ahead, as `dots`' caller does.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots64(q: &[f32], rows: Rows64, scale: f32, scores: &mut [f32]) {
    use std::arch::x86_64::*;
    let q: &[f32; 64] = q.try_into().unwrap();
    // SAFETY (every load below): `q` is 64 floats; row `j < scores.len()` of `rows` holds
    // 64 values and its two scales (checked when `rows` was made for that many rows).
    let mut qv = [_mm512_setzero_ps(); 4];
    for (c, v) in qv.iter_mut().enumerate() {
        *v = unsafe { _mm512_loadu_ps(q.as_ptr().add(16 * c)) };
    }
    let n = scores.len();
    macro_rules! body {
        (|$j:ident, $c:ident| $load:expr $(, |$pj:ident| $ahead:expr)?) => {{
            let mut j0 = 0;
            // Four rows at a time, their sums reduced together (`sum16x4_avx512`).
            while j0 + 4 <= n {
                $(
                    for r in 0..4 {
                        let $pj = j0 + r + PREFETCH_ROWS;
                        if $pj < n {
                            $ahead;
                        }
                    }
                )?
                let mut acc = [_mm512_setzero_ps(); 4];
                for $c in 0..4 {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let $j = j0 + r;
                        *acc = _mm512_add_ps(*acc, _mm512_mul_ps(qv[$c], $load));
                    }
                }
                let sums = _mm_mul_ps(sum16x4_avx512(acc), _mm_set1_ps(scale));
                _mm_storeu_ps(scores[j0..j0 + 4].as_mut_ptr(), sums);
                j0 += 4;
            }
            for $j in j0..n {
                let mut acc = _mm512_setzero_ps();
                for $c in 0..4 {
                    acc = _mm512_add_ps(acc, _mm512_mul_ps(qv[$c], $load));
                }
                scores[$j] = sum16_avx512(acc) * scale;
            }
        }};
    }
    with_rows64!(rows, body);
}

/// Values `16c..16c + 16` of the int8 row at `at` (a block boundary), widened.
///
/// # Safety
/// The CPU has AVX-512F; the row's 64 values and two scales are in `q` and `scales`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn q8_chunk(q: &[i8], scales: &[f32], at: usize, c: usize) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // SAFETY: the caller's: `at + 16c + 16 ≤ q.len()` and `(at + 16c) / 32 < scales.len()`.
    unsafe {
        let v = _mm_loadu_si128(q.as_ptr().add(at + 16 * c).cast());
        let s = *scales.get_unchecked(at / Q8Row::BLOCK + c / 2);
        _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)),
            _mm512_set1_ps(s),
        )
    }
}

/// `weighted_sum` over 64-value rows with AVX-512 (the same sums in the same order): the
/// 64 sums in four vectors, row after row.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weighted_sum64(p: &[f32], rows: Rows64, o: &mut [f32]) {
    use std::arch::x86_64::*;
    let o: &mut [f32; 64] = o.try_into().unwrap();
    let n = p.len();
    let mut acc = [_mm512_setzero_ps(); 4];
    macro_rules! body {
        (|$j:ident, $c:ident| $load:expr $(, |$pj:ident| $ahead:expr)?) => {{
            for $j in 0..n {
                $(
                    let $pj = $j + PREFETCH_ROWS;
                    if $pj < n {
                        $ahead;
                    }
                )?
                let w = _mm512_set1_ps(p[$j]);
                for $c in 0..4 {
                    acc[$c] = _mm512_add_ps(acc[$c], _mm512_mul_ps(w, $load));
                }
            }
        }};
    }
    // SAFETY (every load): row `j < p.len()` of `rows` is in bounds (as in `dots64`).
    with_rows64!(rows, body);
    for (c, a) in acc.iter().enumerate() {
        // SAFETY: `o` is 64 floats.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(16 * c), *a) };
    }
}

crate::cpu::isa_kernel!(
    /// `attention_heads` compiled for the given ISA (the dot products and the weighted sum
    /// of values over the cache vectorize to its width).
    attention_heads_with => attention_heads(
        packed: bool,
        wide: bool,
        q: &[f32],
        k: KvRef,
        v: KvRef,
        out: &HeadRows,
        dims: AttentionDims,
        r0: usize,
        rn: usize,
        pos0: usize,
        h0: usize,
        nh: usize,
        scratch: &mut Scratch
    )
);

/// `attention` for heads `h0..h0 + nh`, which no other task computes. Many query rows (a
/// prefill) go through GEMMs: scores `Q·Kᵀ`, a causal softmax per row, then `P·V` into a
/// block of rows that is then written to its place; a few rows (decoding) use dot products
/// against the cache.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attention_heads(
    packed: bool,
    wide: bool,
    q: &[f32],
    k: KvRef,
    v: KvRef,
    out: &HeadRows,
    dims: AttentionDims,
    r0: usize,
    rn: usize,
    pos0: usize,
    h0: usize,
    nh: usize,
    scratch: &mut Scratch,
) {
    let AttentionDims {
        heads,
        q_rows,
        kv_rows,
        d,
        scale,
        causal,
        q: lq,
        k: lk,
        v: lv,
        ..
    } = dims;
    // Query row `r0 + i` (position `pos0 + i`) sees keys `0..i + shift + 1`.
    let shift = kv_rows - q_rows + pos0;
    // Keys the last query row may see.
    let keys_max = if causal { rn + shift } else { kv_rows };
    // Keys and values stored as f32 are read in place; a narrow cache's are widened, a
    // head's rows at once for a prefill, a row at a time for a step.
    let f32_kv = k.as_f32().zip(v.as_f32());
    let Scratch {
        scores: s,
        tile,
        kt,
        vp,
        wk,
        wv,
        wrow,
    } = scratch;
    if wrow.len() < WIDE_ROWS * d {
        wrow.resize(WIDE_ROWS * d, 0.0);
    }
    let need = if rn >= 16 {
        QUERY_BLOCK.min(rn) * keys_max
    } else {
        kv_rows
    };
    if s.len() < need {
        s.resize(need, 0.0);
    }
    if tile.len() < QUERY_BLOCK.min(rn) * d {
        tile.resize(QUERY_BLOCK.min(rn) * d, 0.0);
    }
    for b in h0..h0 + nh {
        let qb = &q[lq.start(b, heads)..];
        let (ks, vs) = (lk.start(b, heads), lv.start(b, heads));
        // This head's keys and values with their row and channel strides (a narrow
        // cache's step reads rows through `k` and `v` instead: empty here).
        let (kb, vb, lk, lv): (&[f32], &[f32], HeadLayout, HeadLayout) = match f32_kv {
            Some((k32, v32)) => (&k32[ks..], &v32[vs..], lk, lv),
            None if rn >= 16 => {
                let dense = HeadLayout::dense(1, keys_max, d);
                for (x, l, at, wide) in [(&k, lk, ks, &mut *wk), (&v, lv, vs, &mut *wv)] {
                    if wide.len() < keys_max * d {
                        wide.resize(keys_max * d, 0.0);
                    }
                    for (j, row) in wide[..keys_max * d].chunks_exact_mut(d).enumerate() {
                        let at = at + j * l.row;
                        if let Some(x) = x.as_f32() {
                            row.copy_from_slice(&x[at..at + d]);
                        } else {
                            x.values(at, d, row);
                        }
                    }
                }
                (&wk[..keys_max * d], &wv[..keys_max * d], dense, dense)
            }
            None => (&[][..], &[][..], lk, lv),
        };
        // Rows `b0..` of this head from a block computed contiguously.
        let put = |b0: usize, block: &[f32]| {
            for (r, x) in block.chunks_exact(d).enumerate() {
                // SAFETY: row b0 + r < q_rows of head b < bh, which only this task
                // computes (`attention_runs`); the row is not borrowed elsewhere.
                unsafe { out.row(b, b0 + r) }.copy_from_slice(x);
            }
        };
        if rn >= 16 && packed {
            // The head's keys (as Kᵀ) and values packed into GEMM panels once, then
            // query rows in blocks as below, each block multiplying by the first rows
            // of the packed values.
            {
                crate::gemm::pack_panels(kb, lk.col, lk.row, d, keys_max, kt);
                crate::gemm::pack_panels(vb, lv.row, 1, keys_max, d, vp);
                for b0 in (r0..r0 + rn).step_by(QUERY_BLOCK) {
                    let bn = (r0 + rn - b0).min(QUERY_BLOCK);
                    let keys_b = if causal {
                        b0 - r0 + bn + shift
                    } else {
                        kv_rows
                    };
                    let sc = &mut s[..bn * keys_b];
                    let qr = &qb[b0 * lq.row..];
                    crate::gemm::gemm_panels(scale, qr, lq.row, bn, d, kt, d, keys_b, sc);
                    softmax_block(sc, keys_b, b0 - r0 + shift, causal);
                    let o = &mut tile[..bn * d];
                    crate::gemm::gemm_panels(1.0, sc, keys_b, bn, keys_b, vp, keys_max, d, o);
                    put(b0, o);
                }
            }
            continue;
        }
        if rn >= 16 {
            // Query rows in blocks: each block's scores stay in L2, and a causal block
            // computes only the keys its last row may see (half the work over a prompt).
            for b0 in (r0..r0 + rn).step_by(QUERY_BLOCK) {
                let bn = (r0 + rn - b0).min(QUERY_BLOCK);
                let keys_b = if causal {
                    b0 - r0 + bn + shift
                } else {
                    kv_rows
                };
                let sc = &mut s[..bn * keys_b];
                // Kᵀ as a [d, keys] matrix: element (c, j) is k[j·row + c·col].
                let kt = Layout {
                    row_stride: lk.col as isize,
                    col_stride: lk.row as isize,
                };
                let lqr = Layout {
                    row_stride: lq.row as isize,
                    col_stride: 1,
                };
                matmul_serial(
                    scale,
                    qb,
                    &[b0 * lq.row],
                    lqr,
                    kb,
                    &[0],
                    kt,
                    0.0,
                    sc,
                    bn,
                    d,
                    keys_b,
                );
                softmax_block(sc, keys_b, b0 - r0 + shift, causal);
                let lvr = Layout {
                    row_stride: lv.row as isize,
                    col_stride: 1,
                };
                let o = &mut tile[..bn * d];
                matmul_serial(
                    1.0,
                    sc,
                    &[0],
                    Layout::row_major(keys_b),
                    vb,
                    &[0],
                    lvr,
                    0.0,
                    o,
                    bn,
                    keys_b,
                    d,
                );
                put(b0, o);
            }
            continue;
        }
        for i in r0..r0 + rn {
            let qi = &qb[i * lq.row..][..d];
            let keys = if causal { i - r0 + shift + 1 } else { kv_rows };
            let scores = &mut s[..keys];
            // SAFETY: row i < q_rows of head b < bh, which only this task computes
            // (`attention_runs`); the row is not borrowed elsewhere.
            let o = unsafe { out.row(b, i) };
            let (kr, vr) = (lk.row, lv.row);
            if f32_kv.is_some() && lk.col == 1 {
                // f32 rows are read in place, each asked for `PREFETCH_ROWS` rows ahead.
                prefetch_rows(kb, kr, 0..PREFETCH_ROWS.min(keys), d);
                prefetch_rows(vb, vr, 0..PREFETCH_ROWS.min(keys), d);
            }
            // GPT-2's 64-value heads go through the AVX-512 kernels, which read every cache
            // format in registers.
            let rows64 = if wide && d == 64 && lk.col == 1 {
                Rows64::new(k, ks, kr, keys).zip(Rows64::new(v, vs, vr, keys))
            } else {
                None
            };
            if let Some((kr64, vr64)) = rows64 {
                // SAFETY: `wide`: the CPU has AVX-512F.
                unsafe { dots64(qi, kr64, scale, scores) };
                crate::vmath::softmax_row(scores);
                // SAFETY: as above.
                unsafe { weighted_sum64(scores, vr64, o) };
                continue;
            }
            match (f32_kv, k, v) {
                (Some(_), _, _) if lk.col == 1 => {
                    let ahead = |x: &[f32], stride: usize, j: usize| {
                        if j + PREFETCH_ROWS < keys {
                            prefetch_rows(x, stride, j + PREFETCH_ROWS..j + PREFETCH_ROWS + 1, d);
                        }
                    };
                    dots(
                        qi,
                        |j| &kb[j * kr..][..d],
                        scale,
                        scores,
                        |j| ahead(kb, kr, j),
                    );
                    crate::vmath::softmax_row(scores);
                    weighted_sum(scores, |j| &vb[j * vr..][..d], o, |j| ahead(vb, vr, j));
                }
                (Some(_), _, _) => {
                    // Keys with a channel stride (a transposed copy).
                    for (j, sj) in scores.iter_mut().enumerate() {
                        let kj = &kb[j * kr..];
                        *sj = (0..d).map(|c| qi[c] * kj[c * lk.col]).sum::<f32>() * scale;
                    }
                    crate::vmath::softmax_row(scores);
                    weighted_sum(scores, |j| &vb[j * vr..][..d], o, |_| {});
                }
                (
                    None,
                    KvRef::Q8 {
                        q: kq,
                        scales: ksc,
                        block,
                    },
                    KvRef::Q8 {
                        q: vq, scales: vsc, ..
                    },
                ) if block == Q8Row::BLOCK
                    && [ks, kr, vs, vr].iter().all(|x| x.is_multiple_of(block)) =>
                {
                    // int8 rows widened in registers as they are read.
                    let krow = |j: usize| Q8Row::new(kq, ksc, ks + j * kr, d);
                    let vrow = |j: usize| Q8Row::new(vq, vsc, vs + j * vr, d);
                    dots(qi, krow, scale, scores, |_| {});
                    crate::vmath::softmax_row(scores);
                    weighted_sum(scores, vrow, o, |_| {});
                }
                _ => {
                    // Another narrow cache, widened a stretch of rows at a time.
                    for j0 in (0..keys).step_by(WIDE_ROWS) {
                        let rows = (keys - j0).min(WIDE_ROWS);
                        let w = k.rows(ks + j0 * kr, kr, rows, d, wrow);
                        let part = &mut scores[j0..j0 + rows];
                        dots(qi, |j| &w[j * d..][..d], scale, part, |_| {});
                    }
                    crate::vmath::softmax_row(scores);
                    o.iter_mut().for_each(|x| *x = 0.0);
                    for j0 in (0..keys).step_by(WIDE_ROWS) {
                        let rows = (keys - j0).min(WIDE_ROWS);
                        let w = v.rows(vs + j0 * vr, vr, rows, d, wrow);
                        weighted_sum_into(&scores[j0..j0 + rows], |j| &w[j * d..][..d], o, |_| {});
                    }
                }
            }
        }
    }
}

/// The softmax of each row `r` of a block of scores `keys_b` wide, over the keys it sees
/// (causal: `first + r + 1`, where `first + 1` is what the block's first row sees; else
/// all), the keys it does not see set to weight 0.
#[inline(always)]
fn softmax_block(sc: &mut [f32], keys_b: usize, first: usize, causal: bool) {
    for (r, row) in sc.chunks_exact_mut(keys_b).enumerate() {
        let keys = if causal { first + r + 1 } else { keys_b };
        let (live, dead) = row.split_at_mut(keys);
        crate::vmath::softmax_row(live);
        dead.iter_mut().for_each(|x| *x = 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::rand_vec;

    /// Causal attention in f64, straight from the definition.
    fn attention_f64(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        bh: usize,
        rows: usize,
        d: usize,
        scale: f32,
    ) -> Vec<f32> {
        let mut out = vec![0f32; q.len()];
        for b in 0..bh {
            for i in 0..rows {
                let qi = &q[(b * rows + i) * d..][..d];
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        let kj = &k[(b * rows + j) * d..][..d];
                        qi.iter()
                            .zip(kj)
                            .map(|(&x, &y)| x as f64 * y as f64)
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..d {
                    let o: f64 = (0..=i)
                        .map(|j| e[j] * v[(b * rows + j) * d + c] as f64)
                        .sum();
                    out[(b * rows + i) * d + c] = (o / z) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn attention_on_every_isa_matches_the_definition_for_prefill_and_steps() {
        let (bh, rows, d) = (2, 150, 24);
        let mut seed = 5;
        let q = rand_vec(bh * rows * d, &mut seed);
        let k = rand_vec(bh * rows * d, &mut seed);
        let v = rand_vec(bh * rows * d, &mut seed);
        let want = attention_f64(&q, &k, &v, bh, rows, d, 0.3);
        let dense = HeadLayout::dense(bh, rows, d);
        let dims = AttentionDims {
            bh,
            heads: bh,
            q_rows: rows,
            kv_rows: rows,
            d,
            scale: 0.3,
            causal: true,
            q: dense,
            k: dense,
            v: dense,
            out: dense,
        };
        for &isa in crate::cpu::available() {
            // A 140-row prefill (the GEMM path, three query blocks), then one step at a
            // time (the dot path).
            let mut out = vec![0f32; q.len()];
            for packed in [false, crate::gemm::supported()] {
                let rows_out = HeadRows {
                    ptr: crate::SendPtr(out.as_mut_ptr()),
                    layout: dense,
                    heads: bh,
                    d,
                    _out: std::marker::PhantomData,
                };
                attention_heads_with(
                    isa,
                    packed,
                    isa == crate::cpu::Isa::Avx512,
                    &q,
                    (&k).into(),
                    (&v).into(),
                    &rows_out,
                    dims,
                    0,
                    140,
                    0,
                    0,
                    bh,
                    &mut Scratch::default(),
                );
                for r in 140..rows {
                    attention_heads_with(
                        isa,
                        packed,
                        isa == crate::cpu::Isa::Avx512,
                        &q,
                        (&k).into(),
                        (&v).into(),
                        &rows_out,
                        dims,
                        r,
                        1,
                        r,
                        0,
                        bh,
                        &mut Scratch::default(),
                    );
                }
                for (a, b) in out.iter().zip(&want) {
                    assert!((a - b).abs() <= 1e-5, "{isa:?} {packed}: {a} vs {b}");
                }
            }
        }
    }

    /// A batched step's runs in one `attention_runs` call, each against its own cache (a
    /// prompt's 20 rows, single decoding rows, a run of 3 at a late position), give every
    /// row exactly the bits `attention_at` gives that run alone, at 1 and 2 threads.
    #[test]
    fn attention_runs_equal_each_run_alone() {
        // Enough work (rows × keys × d × heads ≥ 2^16) that 2 threads split it.
        let (bh, rows, d) = (8, 64, 32);
        let dense = HeadLayout::dense(bh, rows, d);
        let dims = AttentionDims {
            bh,
            heads: bh,
            q_rows: rows,
            kv_rows: rows,
            d,
            scale: 0.25,
            causal: true,
            q: dense,
            k: dense,
            v: dense,
            out: dense,
        };
        let mut seed = 23;
        let q = rand_vec(bh * rows * d, &mut seed);
        let caches: Vec<(Vec<f32>, Vec<f32>)> = (0..4)
            .map(|_| {
                let k = rand_vec(bh * rows * d, &mut seed);
                (k, rand_vec(bh * rows * d, &mut seed))
            })
            .collect();
        // (first row in the step, rows, position, cache)
        let runs = [(0, 20, 0, 2), (20, 1, 37, 0), (21, 1, 5, 3), (22, 3, 60, 1)].map(
            |(row, rows, pos, cache)| Run {
                row,
                rows,
                pos,
                cache,
            },
        );
        for threads in [1, 2] {
            crate::set_threads(threads);
            let mut together = vec![f32::NAN; q.len()];
            attention_runs(&q, &mut together, dims, runs.iter().copied(), |c| {
                (KvRef::F32(&caches[c].0), KvRef::F32(&caches[c].1))
            });
            for r in runs {
                let mut alone = vec![f32::NAN; q.len()];
                let (k, v) = (&caches[r.cache].0, &caches[r.cache].1);
                attention_at(&q, k, v, &mut alone, dims, r.row, r.rows, r.pos);
                for b in 0..bh {
                    for i in r.row..r.row + r.rows {
                        let at = (b * rows + i) * d;
                        let (x, y) = (&together[at..at + d], &alone[at..at + d]);
                        assert!(
                            x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{threads} thread(s): head {b} row {i} of run {r:?}"
                        );
                    }
                }
            }
        }
    }

    /// Attention over a narrow cache is attention over an f32 cache of its rounded values,
    /// bit for bit: a prefill (widened a head at a time) and steps (a row at a time), on
    /// every ISA and thread count.
    #[test]
    fn a_narrow_cache_reads_as_its_rounded_values() {
        use crate::kv::{q8_block, KvCache, KvFormat};
        let (bh, rows, d) = (3, 150, 64);
        let mut seed = 31;
        let q = rand_vec(bh * rows * d, &mut seed);
        let k = rand_vec(bh * rows * d, &mut seed);
        let v = rand_vec(bh * rows * d, &mut seed);
        let dims = causal_dims(bh, rows, d);
        let len = bh * rows * d;
        for (layout, strides, shape) in cache_layouts(bh, rows, d) {
            let dims = AttentionDims {
                k: layout,
                v: layout,
                ..dims
            };
            for format in [KvFormat::F16, KvFormat::Bf16, KvFormat::Q8] {
                let (mut kc, mut vc) = (
                    KvCache::new(format, len, q8_block(d)),
                    KvCache::new(format, len, q8_block(d)),
                );
                kc.store(0..len, &k, 0, 0, &strides, &shape);
                vc.store(0..len, &v, 0, 0, &strides, &shape);
                let widen = |c: &KvCache| {
                    let mut x = vec![0f32; len];
                    c.view(0..len).values(0, len, &mut x);
                    x
                };
                let (kr, vr) = (widen(&kc), widen(&vc));
                assert!(kr != k && vr != v, "{format:?} rounds");
                for threads in [1, 2] {
                    crate::set_threads(threads);
                    let (mut narrow, mut wide) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                    // A 140-row prefill, then steps.
                    let mut at = vec![(0, 140)];
                    at.extend((140..rows).map(|i| (i, 1)));
                    for (r0, rn) in at {
                        let (kv, vv) = (kc.view(0..len), vc.view(0..len));
                        attention_kv(&q, kv, vv, &mut narrow, dims, r0, rn, r0);
                        attention_at(&q, &kr, &vr, &mut wide, dims, r0, rn, r0);
                    }
                    assert!(
                        narrow
                            .iter()
                            .zip(&wide)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{format:?} {layout:?}, {threads} thread(s)"
                    );
                }
            }
        }
    }

    /// Causal attention of `rows` rows over `bh` heads of `d`, scale 1/8, every operand
    /// dense.
    fn causal_dims(bh: usize, rows: usize, d: usize) -> AttentionDims {
        let dense = HeadLayout::dense(bh, rows, d);
        AttentionDims {
            bh,
            heads: bh,
            q_rows: rows,
            kv_rows: rows,
            d,
            scale: 0.125,
            causal: true,
            q: dense,
            k: dense,
            v: dense,
            out: dense,
        }
    }

    /// Keys and values `[heads, rows, d]`, and `[rows, heads, d]` (rows apart in the cache):
    /// each layout with the strides and shape `KvCache::store` writes it with.
    fn cache_layouts(
        bh: usize,
        rows: usize,
        d: usize,
    ) -> [(HeadLayout, [isize; 3], [usize; 3]); 2] {
        let side_by_side = HeadLayout {
            offset: 0,
            batch: bh * rows * d,
            head: d,
            row: bh * d,
            col: 1,
        };
        [
            (
                HeadLayout::dense(bh, rows, d),
                [(rows * d) as isize, d as isize, 1],
                [bh, rows, d],
            ),
            (
                side_by_side,
                [(bh * d) as isize, d as isize, 1],
                [rows, bh, d],
            ),
        ]
    }

    /// The AVX-512 decoding kernels (`dots64`, `weighted_sum64`) add the generic code's
    /// sums in its order: steps over 64-value rows give the same bits on every ISA, with
    /// and without the kernels, in every cache format, dense and side by side.
    #[test]
    fn decoding_steps_give_the_same_bits_on_every_isa() {
        use crate::kv::{q8_block, KvCache, KvFormat};
        let (bh, rows, d) = (2, 77, 64);
        let mut seed = 5;
        let q = rand_vec(bh * rows * d, &mut seed);
        let k = rand_vec(bh * rows * d, &mut seed);
        let v = rand_vec(bh * rows * d, &mut seed);
        let len = bh * rows * d;
        let dense = HeadLayout::dense(bh, rows, d);
        for (layout, strides, shape) in cache_layouts(bh, rows, d) {
            let dims = AttentionDims {
                k: layout,
                v: layout,
                ..causal_dims(bh, rows, d)
            };
            for format in KvFormat::ALL {
                let (mut kc, mut vc) = (
                    KvCache::new(format, len, q8_block(d)),
                    KvCache::new(format, len, q8_block(d)),
                );
                kc.store(0..len, &k, 0, 0, &strides, &shape);
                vc.store(0..len, &v, 0, 0, &strides, &shape);
                let mut first: Option<Vec<f32>> = None;
                for &isa in crate::cpu::available() {
                    for wide in [false, isa == crate::cpu::Isa::Avx512] {
                        let mut out = vec![f32::NAN; len];
                        let rows_out = HeadRows {
                            ptr: crate::SendPtr(out.as_mut_ptr()),
                            layout: dense,
                            heads: bh,
                            d,
                            _out: std::marker::PhantomData,
                        };
                        let mut scratch = Scratch::default();
                        for r in 0..rows {
                            let (kv, vv) = (kc.view(0..len), vc.view(0..len));
                            attention_heads_with(
                                isa,
                                false,
                                wide,
                                &q,
                                kv,
                                vv,
                                &rows_out,
                                dims,
                                r,
                                1,
                                r,
                                0,
                                bh,
                                &mut scratch,
                            );
                        }
                        let what = format!("{format:?} {layout:?} {isa:?} kernels {wide}");
                        assert!(out.iter().all(|x| x.is_finite()), "{what}");
                        match &first {
                            None => first = Some(out),
                            Some(f) => assert!(
                                f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
                                "{what}"
                            ),
                        }
                    }
                }
            }
        }
    }

    /// q, k and v read from one `[rows, 3·H·d]` projection (k also from a transposed
    /// copy), the output written as `[rows, H·d]` after an offset: every ISA, the packed
    /// and plain prefill paths, steps, and the threaded split, against the definition.
    #[test]
    fn attention_reads_and_writes_strided_heads() {
        let (batch, heads, rows, d) = (2, 3, 83, 20);
        let (bh, width) = (batch * heads, heads * d);
        let mut seed = 11;
        let qkv = rand_vec(batch * rows * 3 * width, &mut seed);
        // Dense [bh, rows, d] copies for the reference.
        let part = |p: usize| -> Vec<f32> {
            let mut x = vec![0f32; bh * rows * d];
            for b in 0..bh {
                for i in 0..rows {
                    for c in 0..d {
                        let (bb, h) = (b / heads, b % heads);
                        x[(b * rows + i) * d + c] =
                            qkv[(bb * rows + i) * 3 * width + p * width + h * d + c];
                    }
                }
            }
            x
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let want = attention_f64(&q, &k, &v, bh, rows, d, 0.25);
        // k transposed: [bh, d, rows].
        let mut kt = vec![0f32; k.len()];
        for b in 0..bh {
            for i in 0..rows {
                for c in 0..d {
                    kt[(b * d + c) * rows + i] = k[(b * rows + i) * d + c];
                }
            }
        }
        let in_qkv = |p: usize| HeadLayout {
            offset: p * width,
            batch: rows * 3 * width,
            head: d,
            row: 3 * width,
            col: 1,
        };
        let out_at = 7;
        let out_layout = HeadLayout {
            offset: out_at,
            batch: rows * width,
            head: d,
            row: width,
            col: 1,
        };
        let k_transposed = HeadLayout {
            offset: 0,
            batch: heads * d * rows,
            head: d * rows,
            row: 1,
            col: rows,
        };
        let check = |out: &[f32], what: &str| {
            for b in 0..bh {
                for i in 0..rows {
                    for c in 0..d {
                        let (bb, h) = (b / heads, b % heads);
                        let got = out[out_at + (bb * rows + i) * width + h * d + c];
                        let w = want[(b * rows + i) * d + c];
                        assert!(
                            (got - w).abs() <= 1e-5,
                            "{what} b{b} i{i} c{c}: {got} vs {w}"
                        );
                    }
                }
            }
        };
        for (kbuf, klayout) in [(&qkv, in_qkv(1)), (&kt, k_transposed)] {
            let dims = AttentionDims {
                bh,
                heads,
                q_rows: rows,
                kv_rows: rows,
                d,
                scale: 0.25,
                causal: true,
                q: in_qkv(0),
                k: klayout,
                v: in_qkv(2),
                out: out_layout,
            };
            for &isa in crate::cpu::available() {
                for packed in [false, crate::gemm::supported()] {
                    let mut out = vec![f32::NAN; out_at + batch * rows * width];
                    let rows_out = HeadRows {
                        ptr: crate::SendPtr(out.as_mut_ptr()),
                        layout: out_layout,
                        heads,
                        d,
                        _out: std::marker::PhantomData,
                    };
                    attention_heads_with(
                        isa,
                        packed,
                        isa == crate::cpu::Isa::Avx512,
                        &qkv,
                        kbuf.into(),
                        (&qkv).into(),
                        &rows_out,
                        dims,
                        0,
                        70,
                        0,
                        0,
                        bh,
                        &mut Scratch::default(),
                    );
                    for r in 70..rows {
                        attention_heads_with(
                            isa,
                            packed,
                            isa == crate::cpu::Isa::Avx512,
                            &qkv,
                            kbuf.into(),
                            (&qkv).into(),
                            &rows_out,
                            dims,
                            r,
                            1,
                            r,
                            0,
                            bh,
                            &mut Scratch::default(),
                        );
                    }
                    check(&out, &format!("{isa:?} packed {packed} k {klayout:?}"));
                    assert!(
                        out[..out_at].iter().all(|x| x.is_nan()),
                        "wrote before the offset"
                    );
                }
            }
            // The public entry, on two threads (heads split between them).
            crate::set_threads(2);
            let mut out = vec![f32::NAN; out_at + batch * rows * width];
            attention(&qkv, kbuf, &qkv, &mut out, dims, 0, rows);
            crate::set_threads(1);
            check(&out, "threaded");
        }
    }

    #[test]
    fn head_layouts_know_their_extent_and_overlaps() {
        let dense = HeadLayout::dense(3, 5, 4);
        assert_eq!(dense.end(6, 3, 5, 4), 6 * 5 * 4);
        assert!(dense.is_injective(6, 3, 5, 4));
        let rows_of_heads = HeadLayout {
            offset: 2,
            batch: 5 * 12,
            head: 4,
            row: 12,
            col: 1,
        };
        assert_eq!(rows_of_heads.end(6, 3, 5, 4), 2 + 2 * 5 * 12);
        assert!(rows_of_heads.is_injective(6, 3, 5, 4));
        let overlapping = HeadLayout {
            head: 2,
            ..rows_of_heads
        };
        assert!(!overlapping.is_injective(6, 3, 5, 4));
    }
}
