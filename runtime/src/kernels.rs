//! Kernels: plain functions over slices with explicit sizes. Shapes and strides are
//! compile-time constants in the generated code; these functions only check them in debug
//! builds. Strides are in elements. No kernel allocates: decoding a token allocates nothing.

pub use crate::gemm::Activation;
pub use crate::layout::{Layout, MAX_RANK};
pub use crate::matmul::{linear_unpacked, matmul, matmul_reference};

/// `out[i] = f(a[ia], b[ib])` over a row-major `shape`, where `ia`/`ib` walk `a`/`b` with
/// per-dimension strides (0 on a broadcast dimension). Covers every numpy broadcast. The
/// result may have another type than the operands (a comparison writes 0/1 as i64).
pub fn broadcast<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    a: &[T],
    a_strides: &[usize],
    b: &[T],
    b_strides: &[usize],
    out: &mut [U],
    shape: &[usize],
    f: impl Fn(T, T) -> U + Sync,
) {
    // A large output (a residual add over a prompt) is split over threads along its first
    // dimension longer than 1: each part reads its own sub-slices of `a` and `b`.
    let rank = shape.len();
    let t = crate::threads();
    if t > 1 && out.len() >= 1 << 16 && rank <= MAX_RANK {
        let d = shape.iter().position(|&x| x > 1).unwrap_or(0);
        let inner: usize = shape[d + 1..].iter().product();
        let per = shape[d].div_ceil(t);
        let f = &f;
        crate::for_each_part(out, per * inner, |i, part| {
            let mut sub = [0usize; MAX_RANK];
            sub[..rank].copy_from_slice(shape);
            sub[d] = part.len() / inner;
            let (ia, ib) = (i * per * a_strides[d], i * per * b_strides[d]);
            broadcast_serial(
                &a[ia..],
                a_strides,
                &b[ib..],
                b_strides,
                part,
                &sub[..rank],
                f,
            );
        });
        return;
    }
    broadcast_serial(a, a_strides, b, b_strides, out, shape, f)
}

fn broadcast_serial<T: Copy, U: Copy>(
    a: &[T],
    a_strides: &[usize],
    b: &[T],
    b_strides: &[usize],
    out: &mut [U],
    shape: &[usize],
    f: impl Fn(T, T) -> U,
) {
    let rank = shape.len();
    debug_assert_eq!(out.len(), shape.iter().product::<usize>());
    debug_assert!(a_strides.len() == rank && b_strides.len() == rank);
    if out.is_empty() {
        return;
    }
    if rank == 0 {
        out[0] = f(a[0], b[0]);
        return;
    }
    // The innermost dimension runs as a tight loop; the common stride patterns get their own
    // loop so they vectorize.
    let n = shape[rank - 1];
    let (sa, sb) = (a_strides[rank - 1], b_strides[rank - 1]);
    assert!(rank <= MAX_RANK, "rank {rank} above {MAX_RANK}");
    let mut idx = [0usize; MAX_RANK];
    let (mut oa, mut ob) = (0usize, 0usize);
    for row in out.chunks_exact_mut(n) {
        match (sa, sb) {
            (1, 1) => {
                for ((o, &x), &y) in row.iter_mut().zip(&a[oa..oa + n]).zip(&b[ob..ob + n]) {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in row.iter_mut().zip(&a[oa..oa + n]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in row.iter_mut().zip(&b[ob..ob + n]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = f(a[oa + j * sa], b[ob + j * sb]);
                }
            }
        }
        // Advance the outer multi-index.
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            oa += a_strides[d];
            ob += b_strides[d];
            if idx[d] < shape[d] {
                break;
            }
            oa -= a_strides[d] * shape[d];
            ob -= b_strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// `out[i] = if c[ic] != 0 { x[ix] } else { y[iy] }` over a row-major `shape`, each operand
/// walked with its own strides (0 where it is broadcast): ONNX Where, its condition stored as
/// i64 0/1 like every bool tensor of the generated code.
#[allow(clippy::too_many_arguments)]
pub fn select<T: Copy>(
    c: &[i64],
    c_strides: &[usize],
    x: &[T],
    x_strides: &[usize],
    y: &[T],
    y_strides: &[usize],
    out: &mut [T],
    shape: &[usize],
) {
    let rank = shape.len();
    debug_assert_eq!(out.len(), shape.iter().product::<usize>());
    assert!(rank <= MAX_RANK, "rank {rank} above {MAX_RANK}");
    let mut idx = [0usize; MAX_RANK];
    let (mut oc, mut ox, mut oy) = (0usize, 0usize, 0usize);
    for o in out.iter_mut() {
        *o = if c[oc] != 0 { x[ox] } else { y[oy] };
        for d in (0..rank).rev() {
            idx[d] += 1;
            oc += c_strides[d];
            ox += x_strides[d];
            oy += y_strides[d];
            if idx[d] < shape[d] {
                break;
            }
            oc -= c_strides[d] * shape[d];
            ox -= x_strides[d] * shape[d];
            oy -= y_strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// `out[i] = f(x[i])`: unary ops and casts.
pub fn map<T: Copy, U: Copy>(x: &[T], out: &mut [U], f: impl Fn(T) -> U) {
    debug_assert_eq!(x.len(), out.len());
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// Copies a strided view of `src` into a strided view of `dst`, both walked over `shape`.
/// Transpose, Slice (negative strides walk backwards), Split, Expand (stride 0) and Concat
/// (a sub-view of the output) are all this copy with different strides.
pub fn copy_strided<T: Copy + Send + Sync>(
    src: &[T],
    src_offset: usize,
    src_strides: &[isize],
    dst: &mut [T],
    dst_offset: usize,
    dst_strides: &[isize],
    shape: &[usize],
) {
    let rank = shape.len();
    assert!(rank <= MAX_RANK, "rank {rank} above {MAX_RANK}");
    if shape.contains(&0) {
        return;
    }
    let (lo, hi) = view_bounds(dst_offset, dst_strides, shape);
    assert!(
        lo >= 0 && (hi as usize) < dst.len(),
        "dst view out of bounds"
    );
    let numel: usize = shape.iter().product();
    let dp = crate::SendPtr(dst.as_mut_ptr());
    // A large copy (a head split, k and v into the presents) is split over threads along
    // its first dimension longer than 1, when no two elements of the destination view
    // coincide: then the parts write disjoint elements.
    let t = crate::threads();
    if t > 1 && numel >= 1 << 16 && rank > 0 && injective(dst_strides, shape) {
        let d = shape.iter().position(|&x| x > 1).unwrap_or(0);
        let per = shape[d].div_ceil(t);
        crate::pool::run(shape[d].div_ceil(per), &|i| {
            let first = i * per;
            let mut sub = [0usize; MAX_RANK];
            sub[..rank].copy_from_slice(shape);
            sub[d] = per.min(shape[d] - first);
            let so = src_offset as isize + first as isize * src_strides[d];
            let doff = dst_offset as isize + first as isize * dst_strides[d];
            // SAFETY: the destination view is inside `dst` (asserted above) and injective,
            // so this part's elements (indices `first..first + sub[d]` along `d`) are
            // written by no other part; `dst` stays mutably borrowed until `pool::run`
            // returns after every part.
            unsafe {
                copy_view(
                    src,
                    so as usize,
                    src_strides,
                    dp.get(),
                    doff as usize,
                    dst_strides,
                    &sub[..rank],
                )
            }
        });
        return;
    }
    // SAFETY: the destination view is inside `dst` (asserted above), borrowed mutably here.
    unsafe {
        copy_view(
            src,
            src_offset,
            src_strides,
            dp.get(),
            dst_offset,
            dst_strides,
            shape,
        )
    }
}

/// The smallest and largest element offsets a strided view touches.
fn view_bounds(offset: usize, strides: &[isize], shape: &[usize]) -> (isize, isize) {
    let (mut lo, mut hi) = (offset as isize, offset as isize);
    for (&s, &n) in strides.iter().zip(shape) {
        let span = s * (n as isize - 1);
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    (lo, hi)
}

/// Whether a view with non-negative strides maps distinct indices to distinct elements:
/// taken by increasing stride, each dimension (of extent above 1) steps past everything
/// the smaller ones span.
fn injective(strides: &[isize], shape: &[usize]) -> bool {
    if strides.len() != shape.len() || strides.iter().any(|&s| s < 0) {
        return false;
    }
    let mut dims = [(0usize, 0usize); MAX_RANK];
    let mut k = 0;
    for (&s, &n) in strides.iter().zip(shape) {
        if n > 1 {
            dims[k] = (s as usize, n);
            k += 1;
        }
    }
    dims[..k].sort_unstable();
    // Elements from the first that the smaller dimensions span.
    let mut span = 1;
    for &(s, n) in &dims[..k] {
        if s < span {
            return false;
        }
        span += s * (n - 1);
    }
    true
}

/// The copy itself, on one thread.
///
/// # Safety
/// Every element of the destination view (`dst_offset`, `dst_strides` over `shape`) is
/// inside the allocation at `dst`, and no other thread accesses those elements.
unsafe fn copy_view<T: Copy>(
    src: &[T],
    src_offset: usize,
    src_strides: &[isize],
    dst: *mut T,
    dst_offset: usize,
    dst_strides: &[isize],
    shape: &[usize],
) {
    let rank = shape.len();
    if rank == 0 {
        // SAFETY: the view's one element is inside the allocation (caller).
        unsafe { dst.add(dst_offset).write(src[src_offset]) };
        return;
    }
    let n = shape[rank - 1];
    let (ss, ds) = (src_strides[rank - 1], dst_strides[rank - 1]);
    let mut idx = [0usize; MAX_RANK];
    let (mut so, mut dof) = (src_offset as isize, dst_offset as isize);
    let rows: usize = shape[..rank - 1].iter().product();
    for _ in 0..rows {
        if ss == 1 && ds == 1 {
            let s = &src[so as usize..so as usize + n];
            // SAFETY: elements `dof..dof + n` belong to the destination view (caller); `s`
            // is a shared slice, so it cannot overlap the destination.
            unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), dst.offset(dof), n) };
        } else {
            for j in 0..n as isize {
                let v = src[(so + j * ss) as usize];
                // SAFETY: element `dof + j·ds` belongs to the destination view (caller).
                unsafe { dst.offset(dof + j * ds).write(v) };
            }
        }
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            so += src_strides[d];
            dof += dst_strides[d];
            if idx[d] < shape[d] {
                break;
            }
            so -= src_strides[d] * shape[d] as isize;
            dof -= dst_strides[d] * shape[d] as isize;
            idx[d] = 0;
        }
    }
}

/// Gather along one axis: `data` viewed as `[outer, axis_len, inner]`, `out` as
/// `[outer, indices.len(), inner]`. Negative indices count from the end. An index outside
/// the axis is an error, not a panic: indices can come from user input (token ids).
pub fn gather<T: Copy>(
    data: &[T],
    outer: usize,
    axis_len: usize,
    inner: usize,
    indices: &[i64],
    out: &mut [T],
) -> Result<(), String> {
    debug_assert_eq!(data.len(), outer * axis_len * inner);
    debug_assert_eq!(out.len(), outer * indices.len() * inner);
    let mut at = 0;
    for o in 0..outer {
        for &i in indices {
            let src = (o * axis_len + axis_index(i, axis_len)?) * inner;
            out[at..at + inner].copy_from_slice(&data[src..src + inner]);
            at += inner;
        }
    }
    Ok(())
}

/// `y = act(x·W + bias)` for `m` rows, `W` `[k, n]` in the compiler's column-panel layout
/// (`gemm::linear`), stored as f32 or f16. Each thread applies the activation to the
/// columns it just computed, while they are in cache.
#[allow(clippy::too_many_arguments)]
pub fn linear<E: crate::elem::PanelElem>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[E],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    crate::gemm::linear(x, m, k, w, bias, act, y, n)
}

/// `linear` over bf16 panels of row pairs, inputs rounded to bf16 (`bf16::linear`).
#[allow(clippy::too_many_arguments)]
pub fn linear_bf16(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[crate::elem::Bf16],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    crate::bf16::linear(x, m, k, w, bias, act, y, n)
}

/// `linear` over int8 panels with a scale per column: activations quantized per row,
/// integer products (`q8::linear`).
#[allow(clippy::too_many_arguments)]
pub fn linear_q8(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[crate::elem::Q8],
    scales: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    crate::q8::linear(x, m, k, w, scales, bias, act, y, n)
}

/// Rows of an embedding table `[rows, width]` stored transposed in column panels (as the
/// weight of the tied LM head, see `gemm::linear`): row `r` is element `p·NR + r % NR` of
/// panel `r / NR`, for `p < width`. Negative ids count from the end, as in `gather`.
pub fn gather_panels<E: crate::elem::PanelElem>(
    w: &[E],
    rows: usize,
    width: usize,
    ids: &[i64],
    out: &mut [f32],
) -> Result<(), String> {
    const NR: usize = crate::layout::NR;
    assert_eq!(
        w.len(),
        rows.div_ceil(NR) * width * NR,
        "not {rows} x {width} in panels"
    );
    gather_rows_with(rows, width, ids, out, |r, o| {
        let panel = &w[(r / NR) * width * NR..(r / NR + 1) * width * NR];
        for (p, v) in o.iter_mut().enumerate() {
            *v = panel[p * NR + r % NR].to_f32();
        }
    })
}

/// `gather_panels` over int8 panels (`q8`): row `r` is the LM head's column `r`, times
/// its scale.
pub fn gather_panels_q8(
    w: &[crate::elem::Q8],
    scales: &[f32],
    rows: usize,
    width: usize,
    ids: &[i64],
    out: &mut [f32],
) -> Result<(), String> {
    gather_rows_with(rows, width, ids, out, |r, o| {
        crate::q8::gather_row(w, scales, rows, width, r, o)
    })
}

/// `gather_panels` over bf16 panels of row pairs (`bf16`).
pub fn gather_panels_bf16(
    w: &[crate::elem::Bf16],
    rows: usize,
    width: usize,
    ids: &[i64],
    out: &mut [f32],
) -> Result<(), String> {
    gather_rows_with(rows, width, ids, out, |r, o| {
        crate::bf16::gather_row(w, rows, width, r, o)
    })
}

/// For each id (negative ids count from the end), `row(r, out row)` with `r` checked
/// against the `rows` of the table: an id out of range is an error, not a panic.
fn gather_rows_with(
    rows: usize,
    width: usize,
    ids: &[i64],
    out: &mut [f32],
    row: impl Fn(usize, &mut [f32]),
) -> Result<(), String> {
    assert_eq!(out.len(), ids.len() * width);
    for (&i, o) in ids.iter().zip(out.chunks_exact_mut(width.max(1))) {
        row(axis_index(i, rows)?, o);
    }
    Ok(())
}

/// Index `i` into an axis of `len` (negative indices count from the end), or an error.
fn axis_index(i: i64, len: usize) -> Result<usize, String> {
    let j = if i < 0 { i + len as i64 } else { i };
    if j < 0 || j >= len as i64 {
        return Err(format!("index {i} is out of range for an axis of {len}"));
    }
    Ok(j as usize)
}

/// Mean over the middle axis of `x` viewed as `[outer, n, inner]`.
pub fn mean_axis(x: &[f32], out: &mut [f32], outer: usize, n: usize, inner: usize) {
    debug_assert_eq!(x.len(), outer * n * inner);
    debug_assert_eq!(out.len(), outer * inner);
    for o in 0..outer {
        let dst = &mut out[o * inner..(o + 1) * inner];
        dst.iter_mut().for_each(|d| *d = 0.0);
        for r in 0..n {
            let src = &x[(o * n + r) * inner..(o * n + r + 1) * inner];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
        let inv = 1.0 / n as f32;
        dst.iter_mut().for_each(|d| *d *= inv);
    }
}

/// Softmax over the middle axis of `x` viewed as `[outer, n, inner]`.
pub fn softmax(x: &[f32], out: &mut [f32], outer: usize, n: usize, inner: usize) {
    debug_assert_eq!(x.len(), outer * n * inner);
    debug_assert_eq!(out.len(), x.len());
    for o in 0..outer {
        for i in 0..inner {
            let at = |r: usize| (o * n + r) * inner + i;
            let max = (0..n).map(|r| x[at(r)]).fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for r in 0..n {
                let e = (x[at(r)] - max).exp();
                out[at(r)] = e;
                sum += e;
            }
            let inv = 1.0 / sum;
            for r in 0..n {
                out[at(r)] *= inv;
            }
        }
    }
}

/// Where one operand of `attention` lies in its buffer: channel `c` of row `i` of head `h`
/// of batch `b` is element `offset + b·batch + h·head + i·row + c·col`. Heads may sit side
/// by side in each row: q, k and v read straight from a fused QKV projection `[rows, 3·H·d]`,
/// the output written as `[rows, H·d]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLayout {
    pub offset: usize,
    pub batch: usize,
    pub head: usize,
    pub row: usize,
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
    pub k: HeadLayout,
    pub v: HeadLayout,
    pub out: HeadLayout,
}

/// Query rows per block in attention over many rows (scores of 64 rows × 1024 keys: 256 KiB).
const QUERY_BLOCK: usize = 64;

thread_local! {
    /// Scores, and a block of output rows before they go to their (strided) place.
    static SCORES: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    /// An attention head's keys (as Kᵀ) and values in GEMM panels (prefill on AVX-512).
    static PANELS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
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
    assert!(r0 + rn <= q_rows && q_rows <= kv_rows, "rows out of range");
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
    let isa = crate::cpu::detected();
    // Prefill multiplies through packed GEMM panels where the packed kernel runs.
    let packed = isa == crate::cpu::Isa::Avx512 && crate::gemm::supported();
    let rows = HeadRows {
        ptr: crate::SendPtr(out.as_mut_ptr()),
        layout: lo,
        heads,
        d,
        _out: std::marker::PhantomData,
    };
    // Heads are independent: split them over threads when there is enough work.
    let t = crate::threads().min(bh);
    if t > 1 && rn * kv_rows * d * bh >= (1 << 16) {
        let per = bh.div_ceil(t);
        crate::pool::run(bh.div_ceil(per), &|i| {
            let h0 = i * per;
            let nh = per.min(bh - h0);
            attention_heads_with(isa, packed, q, k, v, &rows, dims, r0, rn, h0, nh)
        });
    } else {
        attention_heads_with(isa, packed, q, k, v, &rows, dims, r0, rn, 0, bh);
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
    /// `b` and `i` are in range of the checked layout, no other task computes head `b`, and
    /// the caller holds no other borrow of this row.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, b: usize, i: usize) -> &mut [f32] {
        let at = self.layout.start(b, self.heads) + i * self.layout.row;
        // SAFETY: in bounds and unshared by the caller's contract and `attention`'s checks.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.get().add(at), self.d) }
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
        k: &[f32],
        v: &[f32],
        out: &HeadRows,
        dims: AttentionDims,
        r0: usize,
        rn: usize,
        h0: usize,
        nh: usize
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
    k: &[f32],
    v: &[f32],
    out: &HeadRows,
    dims: AttentionDims,
    r0: usize,
    rn: usize,
    h0: usize,
    nh: usize,
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
    let shift = kv_rows - q_rows;
    // Keys the last query row may see.
    let keys_max = if causal { r0 + rn + shift } else { kv_rows };
    SCORES.with(|s| {
        let (s, tile) = &mut *s.borrow_mut();
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
            let (qb, kb, vb) = (
                &q[lq.start(b, heads)..],
                &k[lk.start(b, heads)..],
                &v[lv.start(b, heads)..],
            );
            // Rows `b0..` of this head from a block computed contiguously.
            let put = |b0: usize, block: &[f32]| {
                for (r, x) in block.chunks_exact(d).enumerate() {
                    // SAFETY: row b0 + r < q_rows of head b < bh, which only this task
                    // computes; the row is not borrowed elsewhere.
                    unsafe { out.row(b, b0 + r) }.copy_from_slice(x);
                }
            };
            if rn >= 16 && packed {
                // The head's keys (as Kᵀ) and values packed into GEMM panels once, then
                // query rows in blocks as below, each block multiplying by the first rows
                // of the packed values.
                PANELS.with(|p| {
                    let (kt, vp) = &mut *p.borrow_mut();
                    crate::gemm::pack_panels(kb, lk.col, lk.row, d, keys_max, kt);
                    crate::gemm::pack_panels(vb, lv.row, 1, keys_max, d, vp);
                    for b0 in (r0..r0 + rn).step_by(QUERY_BLOCK) {
                        let bn = (r0 + rn - b0).min(QUERY_BLOCK);
                        let keys_b = if causal { b0 + bn + shift } else { kv_rows };
                        let sc = &mut s[..bn * keys_b];
                        let qr = &qb[b0 * lq.row..];
                        crate::gemm::gemm_panels(scale, qr, lq.row, bn, d, kt, d, keys_b, sc);
                        for (r, row) in sc.chunks_exact_mut(keys_b).enumerate() {
                            let keys = if causal { b0 + r + shift + 1 } else { kv_rows };
                            let (live, dead) = row.split_at_mut(keys);
                            crate::vmath::softmax_row(live);
                            dead.iter_mut().for_each(|x| *x = 0.0);
                        }
                        let o = &mut tile[..bn * d];
                        crate::gemm::gemm_panels(1.0, sc, keys_b, bn, keys_b, vp, keys_max, d, o);
                        put(b0, o);
                    }
                });
                continue;
            }
            if rn >= 16 {
                // Query rows in blocks: each block's scores stay in L2, and a causal block
                // computes only the keys its last row may see (half the work over a prompt).
                for b0 in (r0..r0 + rn).step_by(QUERY_BLOCK) {
                    let bn = (r0 + rn - b0).min(QUERY_BLOCK);
                    let keys_b = if causal { b0 + bn + shift } else { kv_rows };
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
                    crate::matmul::matmul_serial(
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
                    for (r, row) in sc.chunks_exact_mut(keys_b).enumerate() {
                        let keys = if causal { b0 + r + shift + 1 } else { kv_rows };
                        let (live, dead) = row.split_at_mut(keys);
                        crate::vmath::softmax_row(live);
                        dead.iter_mut().for_each(|x| *x = 0.0);
                    }
                    let lvr = Layout {
                        row_stride: lv.row as isize,
                        col_stride: 1,
                    };
                    let o = &mut tile[..bn * d];
                    crate::matmul::matmul_serial(
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
                let keys = if causal { i + shift + 1 } else { kv_rows };
                let scores = &mut s[..keys];
                for (j, sj) in scores.iter_mut().enumerate() {
                    let kj = &kb[j * lk.row..];
                    let dot = if lk.col == 1 {
                        dot(qi, &kj[..d])
                    } else {
                        (0..d).map(|c| qi[c] * kj[c * lk.col]).sum()
                    };
                    *sj = dot * scale;
                }
                crate::vmath::softmax_row(scores);
                // SAFETY: row i < q_rows of head b < bh, which only this task computes; the
                // row is not borrowed elsewhere.
                let o = unsafe { out.row(b, i) };
                o.iter_mut().for_each(|x| *x = 0.0);
                for (j, &p) in scores.iter().enumerate() {
                    for (x, &vv) in o.iter_mut().zip(&vb[j * lv.row..][..d]) {
                        *x += p * vv;
                    }
                }
            }
        }
    });
}

/// LayerNorm of each of `rows` rows of `n` elements: `(x − mean) / √(var + eps) · γ + β`.
pub fn layer_norm(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    out: &mut [f32],
    rows: usize,
    n: usize,
    eps: f32,
) {
    debug_assert!(
        x.len() == rows * n && out.len() == x.len() && gamma.len() == n && beta.len() == n
    );
    crate::vmath::layer_norm(&x[..rows * n], gamma, beta, &mut out[..rows * n], eps);
}

/// GPT-2's GELU: `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`.
pub fn gelu(x: f32) -> f32 {
    crate::vmath::gelu(x)
}

/// `out[i] = gelu(x[i])`, vectorized and on all threads.
pub fn gelu_slice(x: &[f32], out: &mut [f32]) {
    crate::vmath::gelu_slice(x, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::rand_vec;

    #[test]
    fn select_picks_by_a_broadcast_condition() {
        // c [2,1] over x [1,3] and y a scalar.
        let mut out = [0.0f32; 6];
        select(
            &[1, 0],
            &[1, 0],
            &[1.0, 2.0, 3.0],
            &[0, 1],
            &[-9.0],
            &[0, 0],
            &mut out,
            &[2, 3],
        );
        assert_eq!(out, [1.0, 2.0, 3.0, -9.0, -9.0, -9.0]);
    }

    #[test]
    fn broadcast_covers_every_stride_pattern() {
        // [2,3] op [3] (row), [2,1] (column), [] (scalar), and a transposed view.
        let a: Vec<f32> = (0..6).map(|x| x as f32).collect();
        let mut out = vec![0.0; 6];
        broadcast(
            &a,
            &[3, 1],
            &[10.0, 20.0, 30.0],
            &[0, 1],
            &mut out,
            &[2, 3],
            |x, y| x + y,
        );
        assert_eq!(out, [10.0, 21.0, 32.0, 13.0, 24.0, 35.0]);
        broadcast(
            &a,
            &[3, 1],
            &[1.0, 2.0],
            &[1, 0],
            &mut out,
            &[2, 3],
            |x, y| x * y,
        );
        assert_eq!(out, [0.0, 1.0, 2.0, 6.0, 8.0, 10.0]);
        broadcast(&[2.0], &[0, 0], &a, &[3, 1], &mut out, &[2, 3], |x, y| {
            x - y
        });
        assert_eq!(out, [2.0, 1.0, 0.0, -1.0, -2.0, -3.0]);
        broadcast(&a, &[1, 2], &a, &[1, 2], &mut out, &[2, 3], |x, y| x + y);
        assert_eq!(out, [0.0, 4.0, 8.0, 2.0, 6.0, 10.0]);
        // Large enough to split over threads: a residual add and a bias row.
        let x: Vec<f32> = (0..300 * 256).map(|i| i as f32).collect();
        let bias: Vec<f32> = (0..256).map(|i| -(i as f32)).collect();
        for (b, bs) in [(&x, [0, 256, 1]), (&bias, [0, 0, 1])] {
            let mut want = vec![0f32; x.len()];
            crate::set_threads(1);
            broadcast(
                &x,
                &[0, 256, 1],
                b,
                &bs,
                &mut want,
                &[1, 300, 256],
                |p, q| p * 2.0 + q,
            );
            crate::set_threads(2);
            let mut got = vec![0f32; x.len()];
            broadcast(
                &x,
                &[0, 256, 1],
                b,
                &bs,
                &mut got,
                &[1, 300, 256],
                |p, q| p * 2.0 + q,
            );
            assert_eq!(got, want);
            assert_eq!(
                want[256 * 7 + 3],
                (256 * 7 + 3) as f32 * 2.0 + b[bs[1] * 7 + 3]
            );
        }
    }

    #[test]
    fn copy_strided_transposes_slices_and_reverses() {
        let a: Vec<i64> = (0..6).collect();
        let mut out = vec![0; 6];
        copy_strided(&a, 0, &[1, 3], &mut out, 0, &[2, 1], &[3, 2]);
        assert_eq!(out, [0, 3, 1, 4, 2, 5]);
        let mut rev = vec![0; 3];
        copy_strided(&a, 5, &[-2], &mut rev, 0, &[1], &[3]);
        assert_eq!(rev, [5, 3, 1]);
    }

    #[test]
    fn threaded_copies_match_one_thread() {
        // A head split [1, 300, 4, 64] -> [1, 4, 300, 64], a reversed slice, a copy into a
        // sub-view, heads into a cache of 1024 rows, and a broadcast into overlapping
        // elements (not injective: stays on one thread).
        let a: Vec<f32> = (0..300 * 256).map(|i| i as f32).collect();
        type Case<'a> = (usize, &'a [isize], &'a [isize], usize, &'a [usize], usize);
        let cases: [Case; 5] = [
            (
                0,
                &[0, 64, 256, 1],
                &[76800, 19200, 64, 1],
                0,
                &[1, 4, 300, 64],
                76800,
            ),
            (76799, &[-256, -1], &[256, 1], 0, &[300, 256], 76800),
            (0, &[256, 1], &[512, 1], 3, &[300, 256], 153_600),
            (
                0,
                &[0, 64, 256, 1],
                &[0, 65536, 64, 1],
                64,
                &[1, 4, 300, 64],
                4 * 65536 + 64,
            ),
            (0, &[256, 1], &[1, 1], 0, &[300, 256], 600),
        ];
        for (so, ss, ds, doff, shape, len) in cases {
            let mut want = vec![0f32; len];
            crate::set_threads(1);
            copy_strided(&a, so, ss, &mut want, doff, ds, shape);
            crate::set_threads(2);
            let mut got = vec![0f32; len];
            copy_strided(&a, so, ss, &mut got, doff, ds, shape);
            assert_eq!(got, want, "{shape:?}");
        }
        assert!(injective(&[76800, 19200, 64, 1], &[1, 4, 300, 64]));
        assert!(injective(&[0, 65536, 64, 1], &[1, 4, 300, 64]));
        assert!(!injective(&[1, 1], &[300, 256]));
        assert!(!injective(&[64, 1], &[4, 65]));
    }

    #[test]
    fn gather_panels_reads_rows_of_a_transposed_panel_table() {
        const NR: usize = crate::layout::NR;
        let (rows, width) = (100usize, 5usize);
        let table: Vec<f32> = (0..rows * width).map(|i| i as f32).collect();
        let mut panels = vec![0f32; rows.div_ceil(NR) * width * NR];
        for r in 0..rows {
            for p in 0..width {
                panels[(r / NR) * width * NR + p * NR + r % NR] = table[r * width + p];
            }
        }
        let ids = [0i64, 47, 48, 99, -1];
        let (mut want, mut got) = (vec![0f32; 25], vec![0f32; 25]);
        gather(&table, 1, rows, width, &ids, &mut want).unwrap();
        gather_panels(&panels, rows, width, &ids, &mut got).unwrap();
        assert_eq!(got, want);
        assert!(gather_panels(&panels, rows, width, &[100], &mut got[..5]).is_err());
        // int8 panels with a scale per row (an LM head stored as q8): row r times scales[r].
        let q: Vec<i8> = (0..width * rows)
            .map(|i| ((i % 255) as i32 - 127) as i8)
            .collect();
        let scales: Vec<f32> = (0..rows.div_ceil(NR) * NR)
            .map(|r| 0.5 + r as f32)
            .collect();
        let wq = crate::q8::pack(&q, width, rows);
        gather_panels_q8(&wq, &scales, rows, width, &ids, &mut got).unwrap();
        for (i, &id) in ids.iter().enumerate() {
            let r = if id < 0 { id + rows as i64 } else { id } as usize;
            for p in 0..width {
                assert_eq!(got[i * width + p], q[p * rows + r] as f32 * scales[r]);
            }
        }
        assert!(gather_panels_q8(&wq, &scales, rows, width, &[-101], &mut got[..5]).is_err());
    }

    #[test]
    fn gather_checks_indices() {
        let t = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = vec![0.0; 4];
        gather(&t, 1, 3, 2, &[2, -3], &mut out).unwrap();
        assert_eq!(out, [5.0, 6.0, 1.0, 2.0]);
        assert!(gather(&t, 1, 3, 2, &[3, 0], &mut out).is_err());
    }

    #[test]
    fn softmax_and_mean() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut out = [0.0; 4];
        softmax(&x, &mut out, 2, 2, 1);
        assert!((out[0] + out[1] - 1.0).abs() < 1e-6 && out[1] > out[0]);
        let mut m = [0.0; 2];
        mean_axis(&x, &mut m, 1, 2, 2);
        assert_eq!(m, [2.0, 3.0]);
    }

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
                attention_heads_with(isa, packed, &q, &k, &v, &rows_out, dims, 0, 140, 0, bh);
                for r in 140..rows {
                    attention_heads_with(isa, packed, &q, &k, &v, &rows_out, dims, r, 1, 0, bh);
                }
                for (a, b) in out.iter().zip(&want) {
                    assert!((a - b).abs() <= 1e-5, "{isa:?} {packed}: {a} vs {b}");
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
                        isa, packed, &qkv, kbuf, &qkv, &rows_out, dims, 0, 70, 0, bh,
                    );
                    for r in 70..rows {
                        attention_heads_with(
                            isa, packed, &qkv, kbuf, &qkv, &rows_out, dims, r, 1, 0, bh,
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
