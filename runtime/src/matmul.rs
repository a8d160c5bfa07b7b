//! f32 matrix products by shape and CPU (`kernels::matmul`): the packed AVX-512 GEMM
//! (`gemm`) for many rows, the matrix-vector kernels (`gemv`) for one or a few rows, and
//! matrixmultiply's blocked kernels otherwise; plus a Linear over a weight not stored in
//! panels, and the f64 reference the tests compare against. Above the f32 GEMM families
//! (`gemm`, `gemv`), below `attention` and the `kernels` facade.

use crate::layout::Layout;
use crate::linear::Activation;

/// Batched `c[b] = alpha · a[b] · b[b] + beta · c[b]` with `a[b]` `[m, k]` starting at
/// `a_offsets[b]`, `b[b]` `[k, n]` at `b_offsets[b]`, and `c[b]` contiguous `[m, n]` at
/// `b * m * n`. Broadcast batches repeat offsets; transposes are swapped strides.
/// Runs on the packed AVX-512 GEMM (`gemm`), matrix-vector kernels (`gemv`) or
/// matrixmultiply's blocked kernels, by shape and CPU.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    alpha: f32,
    a: &[f32],
    a_offsets: &[usize],
    la: Layout,
    b: &[f32],
    b_offsets: &[usize],
    lb: Layout,
    beta: f32,
    c: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    // Many rows on an AVX-512 CPU: our packed kernel, which splits columns over threads.
    if a_offsets.len() == 1 && m > crate::gemv::SMALL_M && crate::gemm::supported() {
        let (ao, bo) = (a_offsets[0], b_offsets[0]);
        crate::gemm::sgemm(alpha, a, ao, la, b, bo, lb, beta, c, m, k, n, true);
        return;
    }
    // Otherwise large single matrices split their rows over threads. Each row's sums run
    // in the same order whatever the split, so results do not depend on the thread count.
    let t = crate::threads();
    if t > 1 && a_offsets.len() == 1 && m >= 32 && m * k * n >= (1 << 22) && la.row_stride >= 0 {
        let rows = m.div_ceil(t).div_ceil(16) * 16;
        crate::for_each_part(c, rows * n, |i, part| {
            let ao = a_offsets[0] + i * rows * la.row_stride as usize;
            matmul_serial(
                alpha,
                a,
                &[ao],
                la,
                b,
                b_offsets,
                lb,
                beta,
                part,
                part.len() / n,
                k,
                n,
            )
        });
        return;
    }
    matmul_serial(alpha, a, a_offsets, la, b, b_offsets, lb, beta, c, m, k, n)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_serial(
    alpha: f32,
    a: &[f32],
    a_offsets: &[usize],
    la: Layout,
    b: &[f32],
    b_offsets: &[usize],
    lb: Layout,
    beta: f32,
    c: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    assert_eq!(a_offsets.len(), b_offsets.len());
    assert_eq!(c.len(), a_offsets.len() * m * n);
    let extent = |off: usize, l: Layout, rows: usize, cols: usize| {
        // Largest element index the matrix touches (strides are non-negative here).
        off + (rows.saturating_sub(1)) * l.row_stride as usize
            + (cols.saturating_sub(1)) * l.col_stride as usize
    };
    for (bi, (&ao, &bo)) in a_offsets.iter().zip(b_offsets).enumerate() {
        let cb = &mut c[bi * m * n..(bi + 1) * m * n];
        // One row against a row-major matrix (decoding): stream the weights once.
        if m == 1
            && lb.col_stride == 1
            && lb.row_stride >= n as isize
            && la.col_stride == 1
            && k > 0
        {
            let x = &a[ao..ao + k];
            let rows = &b[bo..bo + (k - 1) * lb.row_stride as usize + n];
            crate::gemv::gemv(alpha, x, rows, lb.row_stride as usize, beta, cb);
            continue;
        }
        // A few rows (a short prompt) against a row-major matrix: stream the weights once.
        if (2..=crate::gemv::SMALL_M).contains(&m)
            && lb.col_stride == 1
            && lb.row_stride >= n as isize
            && la.col_stride == 1
            && la.row_stride >= k as isize
            && k > 0
        {
            let lda = la.row_stride as usize;
            let x = &a[ao..ao + (m - 1) * lda + k];
            let rows = &b[bo..bo + (k - 1) * lb.row_stride as usize + n];
            crate::gemv::gemm_small(alpha, x, lda, k, rows, lb.row_stride as usize, beta, cb, n);
            continue;
        }
        // One row against a matrix stored transposed (a tied embedding as the LM head).
        if m == 1
            && lb.row_stride == 1
            && lb.col_stride >= k as isize
            && la.col_stride == 1
            && k > 0
            && n > 0
        {
            let x = &a[ao..ao + k];
            let rows = &b[bo..bo + (n - 1) * lb.col_stride as usize + k];
            crate::gemv::gemv_t(alpha, x, rows, lb.col_stride as usize, beta, cb);
            continue;
        }
        if m == 0 || n == 0 {
            continue;
        }
        if k == 0 {
            cb.iter_mut().for_each(|x| *x *= beta);
            continue;
        }
        assert!(
            la.row_stride >= 0 && la.col_stride >= 0 && lb.row_stride >= 0 && lb.col_stride >= 0
        );
        if m > crate::gemv::SMALL_M && crate::gemm::supported() {
            crate::gemm::sgemm(alpha, a, ao, la, b, bo, lb, beta, cb, m, k, n, false);
            continue;
        }
        assert!(extent(ao, la, m, k) < a.len() && extent(bo, lb, k, n) < b.len());
        // SAFETY: the asserts above prove every element sgemm reads, `a[ao + i·rsa + p·csa]`
        // for i < m, p < k (and likewise for b), is inside `a` and `b`; `cb` is exactly
        // m·n contiguous elements, written with row stride n and column stride 1. `cb` is a
        // unique borrow, so it does not alias `a` or `b`.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha,
                a.as_ptr().add(ao),
                la.row_stride,
                la.col_stride,
                b.as_ptr().add(bo),
                lb.row_stride,
                lb.col_stride,
                beta,
                cb.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }
}

/// `y = act(x·W + bias)` for `m` rows, `W` `[k, n]` at layout `lb` (a weight something
/// other than a Linear also reads, so it is not stored in panels: row-major, or a tied
/// transpose).
#[allow(clippy::too_many_arguments)]
pub fn linear_unpacked(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    lb: Layout,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    let beta = match bias {
        Some(b) => {
            y.chunks_exact_mut(n.max(1))
                .for_each(|row| row.copy_from_slice(b));
            1.0
        }
        None => 0.0,
    };
    let la = Layout::row_major(k);
    matmul(1.0, x, &[0], la, w, &[0], lb, beta, y, m, k, n);
    act.apply_to(crate::cpu::detected(), y);
}

/// The scalar twin of `matmul` (f64 accumulation), for tests.
#[allow(clippy::too_many_arguments)]
pub fn matmul_reference(
    alpha: f32,
    a: &[f32],
    a_offsets: &[usize],
    la: Layout,
    b: &[f32],
    b_offsets: &[usize],
    lb: Layout,
    beta: f32,
    c: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    for (bi, (&ao, &bo)) in a_offsets.iter().zip(b_offsets).enumerate() {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    let x = a[ao + i * la.row_stride as usize + p * la.col_stride as usize];
                    let y = b[bo + p * lb.row_stride as usize + j * lb.col_stride as usize];
                    s += x as f64 * y as f64;
                }
                let o = &mut c[bi * m * n + i * n + j];
                *o = alpha * s as f32 + if beta == 0.0 { 0.0 } else { beta * *o };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::rand_vec;

    #[test]
    fn matmul_matches_scalar_twin_on_ragged_sizes_and_layouts() {
        let mut seed = 7;
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 31, 9),
            (64, 33, 65),
            (1, 300, 129),
            (70, 1, 3),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let batch = 3;
                let a = rand_vec(batch * m * k + 5, &mut seed);
                let b = rand_vec(k * n + 3, &mut seed);
                let la = if ta {
                    Layout::col_major(m)
                } else {
                    Layout::row_major(k)
                };
                let lb = if tb {
                    Layout::col_major(k)
                } else {
                    Layout::row_major(n)
                };
                let a_off: Vec<usize> = (0..batch).map(|i| i * m * k + 1).collect();
                let b_off = vec![2; batch]; // b broadcast over the batch
                let c0 = rand_vec(batch * m * n, &mut seed);
                let (mut c1, mut c2) = (c0.clone(), c0.clone());
                matmul(0.5, &a, &a_off, la, &b, &b_off, lb, 2.0, &mut c1, m, k, n);
                matmul_reference(0.5, &a, &a_off, la, &b, &b_off, lb, 2.0, &mut c2, m, k, n);
                for (x, y) in c1.iter().zip(&c2) {
                    assert!(
                        (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                        "{m}x{k}x{n} {ta} {tb}: {x} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn threaded_and_small_m_paths_match_the_scalar_twin() {
        let mut seed = 11;
        crate::set_threads(2);
        for &(m, k, n) in &[
            (1, 700, 3000),
            (2, 64, 5000),
            (8, 300, 4100),
            (16, 129, 2049),
            (40, 256, 700),
        ] {
            let a = rand_vec(m * k, &mut seed);
            let b = rand_vec(k * n, &mut seed);
            let c0 = rand_vec(m * n, &mut seed);
            let la = Layout::row_major(k);
            for lb in [Layout::row_major(n), Layout::col_major(k)] {
                let (mut c1, mut c2) = (c0.clone(), c0.clone());
                matmul(1.0, &a, &[0], la, &b, &[0], lb, 1.0, &mut c1, m, k, n);
                matmul_reference(1.0, &a, &[0], la, &b, &[0], lb, 1.0, &mut c2, m, k, n);
                for (x, y) in c1.iter().zip(&c2) {
                    assert!(
                        (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                        "{m}x{k}x{n} {lb:?}: {x} vs {y}"
                    );
                }
            }
        }
        crate::set_threads(1);
    }
}
