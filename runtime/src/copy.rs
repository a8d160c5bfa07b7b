//! Data movement (`kernels::{copy_strided, gather, gather_panels}`): strided copies
//! (Transpose, Slice, Split, Expand, Concat) and gathers of rows by index, from plain tables
//! or from tables stored in f32 or f16 column panels (the int8 and bf16 formats gather
//! through `q8` and `bf16`, composed in `kernels`). Above `layout` and `elem`, below the
//! `kernels` facade.

use crate::layout::MAX_RANK;

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
    gather_with(
        data,
        outer,
        axis_len,
        inner,
        indices,
        out,
        <[T]>::copy_from_slice,
    )
}

/// The walk of `gather`, `put(row, source)` moving each row.
fn gather_with<S, D>(
    data: &[S],
    outer: usize,
    axis_len: usize,
    inner: usize,
    indices: &[i64],
    out: &mut [D],
    put: impl Fn(&mut [D], &[S]),
) -> Result<(), String> {
    debug_assert_eq!(data.len(), outer * axis_len * inner);
    debug_assert_eq!(out.len(), outer * indices.len() * inner);
    let mut at = 0;
    for o in 0..outer {
        for &i in indices {
            let src = (o * axis_len + axis_index(i, axis_len)?) * inner;
            put(&mut out[at..at + inner], &data[src..src + inner]);
            at += inner;
        }
    }
    Ok(())
}

/// `gather` from a table stored as f16 (`elem::F16`), widened to f32 exactly.
pub fn gather_f16(
    data: &[crate::elem::F16],
    outer: usize,
    axis_len: usize,
    inner: usize,
    indices: &[i64],
    out: &mut [f32],
) -> Result<(), String> {
    gather_with(data, outer, axis_len, inner, indices, out, |y, h| {
        crate::elem::widen_f16(h, y)
    })
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

/// For each id (negative ids count from the end), `row(r, out row)` with `r` checked
/// against the `rows` of the table: an id out of range is an error, not a panic.
pub(crate) fn gather_rows_with(
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn gather_checks_indices() {
        let t = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = vec![0.0; 4];
        gather(&t, 1, 3, 2, &[2, -3], &mut out).unwrap();
        assert_eq!(out, [5.0, 6.0, 1.0, 2.0]);
        assert!(gather(&t, 1, 3, 2, &[3, 0], &mut out).is_err());
    }

    #[test]
    fn gather_f16_widens_exactly_what_gather_copies() {
        use crate::elem::F16;
        // Two outer blocks of a [2, 3, 2] table: normal, subnormal, zero, negative values.
        let v = [
            1.0f32, -2.5, 6e-8, 0.0, -0.0, 65504.0, 0.1, 3.0, -1e-3, 7.0, 0.5, -6.1e-5,
        ];
        let h: Vec<F16> = v.iter().map(|&x| F16::from_f32(x)).collect();
        let ids = [2, -3, 1];
        let mut want = vec![F16(0); 2 * 3 * 2];
        gather(&h, 2, 3, 2, &ids, &mut want).unwrap();
        let mut got = vec![f32::NAN; 2 * 3 * 2];
        gather_f16(&h, 2, 3, 2, &ids, &mut got).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.to_bits(), w.widen().to_bits());
            assert_eq!(F16::from_f32(*g), *w);
        }
        assert_eq!(got[..4], [-0.0, 65504.0, 1.0, -2.5]);
        assert!(got[0].is_sign_negative() && got[11] == 7.0);
        assert!(gather_f16(&h, 2, 3, 2, &[-4], &mut got[..4]).is_err());
    }
}
