//! Elementwise kernels over strided operands (`kernels::{broadcast, select, map}`): binary
//! ops under numpy broadcasting, ONNX Where, and unary ops and casts. Generic over the
//! element type; above `layout`, below the `kernels` facade.

use crate::layout::MAX_RANK;

/// `out[i] = f(a[ia], b[ib])` over a row-major `shape`, where `ia`/`ib` walk `a`/`b` with
/// per-dimension strides (0 on a broadcast dimension). Covers every numpy broadcast. The
/// result may have another type than the operands (a comparison writes 0/1 as i64), and
/// the operands may differ (an f32 activation plus a table stored as `F16`, widened by `f`).
pub fn broadcast<T: Copy + Send + Sync, V: Copy + Send + Sync, U: Copy + Send + Sync>(
    a: &[T],
    a_strides: &[usize],
    b: &[V],
    b_strides: &[usize],
    out: &mut [U],
    shape: &[usize],
    f: impl Fn(T, V) -> U + Sync,
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

fn broadcast_serial<T: Copy, V: Copy, U: Copy>(
    a: &[T],
    a_strides: &[usize],
    b: &[V],
    b_strides: &[usize],
    out: &mut [U],
    shape: &[usize],
    f: impl Fn(T, V) -> U,
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
}
