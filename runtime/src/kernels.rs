//! Kernels: plain functions over slices with explicit sizes. Shapes and strides are
//! compile-time constants in the generated code; these functions only check them in debug
//! builds. Strides are in elements. No kernel allocates: decoding a token allocates nothing.

pub use crate::attention::{attention, AttentionDims, HeadLayout, HeadRows};
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
}
