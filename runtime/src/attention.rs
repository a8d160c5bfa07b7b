//! Scaled dot-product attention over the KV cache (`kernels::attention`): a few query rows
//! (decoding) by dot products against the cache, many (a prefill) by blocks of GEMMs, on
//! the packed AVX-512 panels (`gemm`) or `matmul`, with `vmath`'s softmax rows. A kernel
//! family above `gemm`, `matmul` and `vmath`, below the `kernels` facade.

use crate::batch::Run;
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

/// Rows of a narrow cache a step widens at once (32 rows of 64 channels: 8 KiB, in L1).
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
    let run = Run {
        row: r0,
        rows: rn,
        pos: pos0,
        cache: 0,
    };
    attention_runs(q, out, dims, std::iter::once(run), |_| (k, v));
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
    let isa = crate::cpu::detected();
    // Prefill multiplies through packed GEMM panels where the packed kernel runs.
    let packed = isa == crate::cpu::Isa::Avx512 && crate::gemm::supported();
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
                        isa, packed, q, k, v, &rows, dims, r0, rn, pos0, h0, nh, sc,
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

/// Dot product with eight independent partial sums, so it vectorizes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

crate::cpu::isa_kernel!(
    /// `attention_heads` compiled for the given ISA (the dot products and the weighted sum
    /// of values over the cache vectorize to its width).
    attention_heads_with => attention_heads(
        packed: bool,
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
            // Rows of f32 keys and values read in place; the first ones asked for now.
            let ahead = f32_kv.is_some() && lk.col == 1;
            if ahead {
                prefetch_rows(kb, lk.row, 0..PREFETCH_ROWS.min(keys), d);
                prefetch_rows(vb, lv.row, 0..PREFETCH_ROWS.min(keys), d);
            }
            if f32_kv.is_none() {
                // A narrow cache, widened a stretch of rows at a time.
                for j0 in (0..keys).step_by(WIDE_ROWS) {
                    let rows = (keys - j0).min(WIDE_ROWS);
                    let kr = k.rows(ks + j0 * lk.row, lk.row, rows, d, wrow);
                    for (sj, kj) in scores[j0..j0 + rows].iter_mut().zip(kr.chunks_exact(d)) {
                        *sj = dot(qi, kj) * scale;
                    }
                }
            } else {
                for (j, sj) in scores.iter_mut().enumerate() {
                    if ahead && j + PREFETCH_ROWS < keys {
                        prefetch_rows(kb, lk.row, j + PREFETCH_ROWS..j + PREFETCH_ROWS + 1, d);
                    }
                    let dot = if lk.col == 1 {
                        dot(qi, &kb[j * lk.row..][..d])
                    } else {
                        let kj = &kb[j * lk.row..];
                        (0..d).map(|c| qi[c] * kj[c * lk.col]).sum()
                    };
                    *sj = dot * scale;
                }
            }
            crate::vmath::softmax_row(scores);
            // SAFETY: row i < q_rows of head b < bh, which only this task computes
            // (`attention_runs`); the row is not borrowed elsewhere.
            let o = unsafe { out.row(b, i) };
            o.iter_mut().for_each(|x| *x = 0.0);
            if f32_kv.is_none() {
                for j0 in (0..keys).step_by(WIDE_ROWS) {
                    let rows = (keys - j0).min(WIDE_ROWS);
                    let vr = v.rows(vs + j0 * lv.row, lv.row, rows, d, wrow);
                    for (&p, vj) in scores[j0..j0 + rows].iter().zip(vr.chunks_exact(d)) {
                        for (x, &vv) in o.iter_mut().zip(vj) {
                            *x += p * vv;
                        }
                    }
                }
                continue;
            }
            for (j, &p) in scores.iter().enumerate() {
                if ahead && j + PREFETCH_ROWS < keys {
                    prefetch_rows(vb, lv.row, j + PREFETCH_ROWS..j + PREFETCH_ROWS + 1, d);
                }
                for (x, &vv) in o.iter_mut().zip(&vb[j * lv.row..][..d]) {
                    *x += p * vv;
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
        let dense = HeadLayout::dense(bh, rows, d);
        let dims = AttentionDims {
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
        };
        let len = bh * rows * d;
        // Keys and values [heads, rows, d], and [rows, heads, d] (rows apart in the cache).
        let side_by_side = HeadLayout {
            offset: 0,
            batch: len,
            head: d,
            row: bh * d,
            col: 1,
        };
        for (layout, strides, shape) in [
            (dense, [(rows * d) as isize, d as isize, 1], [bh, rows, d]),
            (
                side_by_side,
                [(bh * d) as isize, d as isize, 1],
                [rows, bh, d],
            ),
        ] {
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
