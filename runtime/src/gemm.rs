//! Packed GEMM for many rows (a prompt's prefill, the full forward): `C = alpha·A·B + beta·C`
//! with `C` `[m, n]` row-major and `A`, `B` at any non-negative strides.
//!
//! The loops follow BLIS: for each block of `NC` columns and `KC` depth, `B` is packed into
//! `NR`-wide panels (zero-padded), which then stay in L2 while every `MR`-row strip of `A`
//! passes over them. `A` is read in place: a strip's `MR × KC` elements stay in L1 across
//! the panels. The `MR × NR` = 8 × 48 micro-kernel keeps 24 AVX-512 accumulators in
//! registers, loading three vectors of `B` and broadcasting eight elements of `A` per step.
//!
//! Threads take disjoint ranges of whole panels, so each packs only its own part of `B` and
//! every element of `C` is summed in the same order whatever the thread count.
//!
//! `linear` multiplies by a weight the compiler stored in these panels already.
//!
//! Only an AVX-512 kernel lives here; elsewhere `matmul` uses matrixmultiply's AVX2/FMA and
//! portable kernels, and `linear` register-blocked strips of rows on AVX2 (`strips`, f32) or
//! a vectorized loop per row (`vmath::panel_row`).
//!
//! The f32/f16 kernel family for Linear and GEMM: on `cpu`, `layout`, `elem` and the shared
//! `linear`; `matmul` and `attention` build on it.

use crate::cpu::{available, detected, Isa};
use crate::elem::{Kind, PanelElem};
// The panel width lives in `layout`; generated code names it `gemm::NR`.
use crate::layout::Layout;
// Shared by every Linear; callers name it `gemm::Activation` (and `kernels::Activation`).
pub use crate::layout::NR;
pub use crate::linear::Activation;
use crate::linear::{for_panel_groups, for_panel_ranges, linear_operands};

/// Rows of the micro-kernel.
pub const MR: usize = 8;
/// Depth of a packed block: an `MR × KC` strip of `A` is 8 KiB.
const KC: usize = 256;
/// Panels per packed block: `KC × NC_PANELS × NR` floats = 384 KiB, half of L2.
const NC_PANELS: usize = 8;

/// Whether this CPU runs the packed kernel.
pub fn supported() -> bool {
    detected() == Isa::Avx512
}

/// `c = alpha · A·B + beta · c` with `A` `[m, k]` at `a[ao + i·la.row_stride + p·la.col_stride]`,
/// `B` `[k, n]` likewise, and `c` `[m, n]` contiguous, on all threads (`crate::threads`).
/// Panics if the CPU lacks AVX-512F (check `supported`) or a matrix does not fit its slice.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    alpha: f32,
    a: &[f32],
    ao: usize,
    la: Layout,
    b: &[f32],
    bo: usize,
    lb: Layout,
    beta: f32,
    c: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    threaded: bool,
) {
    assert!(supported(), "the packed GEMM needs AVX-512F");
    let strides = [la.row_stride, la.col_stride, lb.row_stride, lb.col_stride];
    assert!(strides.iter().all(|&s| s >= 0), "negative strides");
    let (rsa, csa, rsb, csb) = (
        la.row_stride as usize,
        la.col_stride as usize,
        lb.row_stride as usize,
        lb.col_stride as usize,
    );
    assert_eq!(c.len(), m * n, "c is not [m, n]");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        scale(c, beta);
        return;
    }
    // The last element each matrix touches must be inside its slice.
    assert!(
        ao + (m - 1) * rsa + (k - 1) * csa < a.len(),
        "A out of bounds"
    );
    assert!(
        bo + (k - 1) * rsb + (n - 1) * csb < b.len(),
        "B out of bounds"
    );
    let a = Mat {
        data: a,
        off: ao,
        rs: rsa,
        cs: csa,
    };
    let b = Mat {
        data: b,
        off: bo,
        rs: rsb,
        cs: csb,
    };
    let panels = n.div_ceil(NR);
    let t = if threaded { crate::threads() } else { 1 };
    // Enough work per thread to be worth waking it.
    let t = t.min(panels).min((m * n * k / (1 << 20)).max(1));
    let cp = crate::SendPtr(c.as_mut_ptr());
    let b = Source::<f32>::Pack(b);
    let out = Out { beta, bias: None };
    for_panel_ranges(panels, t, |p0, p1| {
        // SAFETY: this task writes only columns `p0·NR .. min(p1·NR, n)` of `c`'s m
        // rows, disjoint from every other task's, and `c` (m·n elements, checked above)
        // stays mutably borrowed until all tasks return.
        unsafe {
            columns(
                alpha,
                &a,
                &b,
                out,
                cp.get(),
                m,
                k,
                n,
                p0 * NR,
                (p1 * NR).min(n),
            )
        }
    });
}

/// `y = act(x·W + bias)` with `x` `[m, k]` and `y` `[m, n]` contiguous and `W` `[k, n]` stored
/// as column panels: `⌈n / NR⌉` panels, each `k × NR` row-major, zero-padded past `n` (the
/// compiler lays out a Linear's weight this way, so it is never packed at run time and
/// each thread streams its own panels front to back). On all threads.
#[allow(clippy::too_many_arguments)]
pub fn linear<E: PanelElem>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[E],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    linear_on(detected(), x, m, k, w, bias, act, y, n)
}

/// `linear` on a chosen ISA (AVX-512: the packed micro-kernel; otherwise a vectorized
/// loop per row, in strips of rows for f32 on AVX2), for tests and benchmarks.
#[allow(clippy::too_many_arguments)]
pub fn linear_on<E: PanelElem>(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[E],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    let panels = n.div_ceil(NR);
    assert_eq!(
        w.len(),
        panels * k * NR,
        "W is not {k} x {n} in {NR}-column panels"
    );
    if !linear_operands(x, m, k, bias, act, y, n) {
        return;
    }
    // Decoding reads every weight once per token: split even small products, since each
    // thread brings its own share of memory bandwidth.
    let t = crate::threads()
        .min(panels)
        .min((m * n * k / (1 << 16)).max(1));
    let yp = crate::SendPtr(y.as_mut_ptr());
    let simd = isa == Isa::Avx512 && supported();
    // AVX2 strips of rows over f32 panels (f16 panels take the portable row, vectorized).
    let strips = E::as_f32(w).filter(|_| isa == Isa::Avx2 && available().contains(&Isa::Avx2));
    for_panel_ranges(panels, t, |p0, p1| {
        let (j0, j1) = (p0 * NR, (p1 * NR).min(n));
        if simd {
            let a = Mat {
                data: x,
                off: 0,
                rs: k,
                cs: 1,
            };
            let out = Out { beta: 0.0, bias };
            // SAFETY: this task writes only columns `j0..j1` of `y`'s m rows, disjoint from
            // every other task's, and `y` (m·n elements, checked above) stays mutably
            // borrowed until all tasks return; `w` holds every panel (checked above).
            unsafe {
                columns(
                    1.0,
                    &a,
                    &Source::Panels(w, k),
                    out,
                    yp.get(),
                    m,
                    k,
                    n,
                    j0,
                    j1,
                )
            }
        } else if let Some(w) = strips {
            // SAFETY: the CPU has AVX2 and FMA (checked above); this task's columns of `y`
            // are its own (as above); `w` holds every panel (checked above).
            unsafe { crate::strips::linear_panels(x, m, k, w, bias, yp.get(), n, p0, p1) }
        } else {
            // Panels in groups that stay in L2 while every row passes over them: a prompt's
            // rows then read each weight from memory once, not once per row (the LM head's
            // 154 MB per row made a 1024-row forward memory-bound). Each column's sum runs
            // over k in the same order whatever the grouping.
            for_panel_groups(p0, p1, k * NR * std::mem::size_of::<E>(), |g0, g1| {
                let (c0, c1) = (g0 * NR, (g1 * NR).min(n));
                let wp = &w[g0 * k * NR..g1 * k * NR];
                let b = bias.map(|b| &b[c0..c1]);
                for r in 0..m {
                    debug_assert!(r < m && c1 <= n && j0 <= c0 && c1 <= j1);
                    // SAFETY: row `r`'s columns `c0..c1` (inside `j0..j1`) are inside `y`
                    // (`r < m`, `c1 ≤ n`) and only this task touches them (as above).
                    let row = unsafe {
                        std::slice::from_raw_parts_mut(yp.get().add(r * n + c0), c1 - c0)
                    };
                    E::panel_row(isa, &x[r * k..(r + 1) * k], wp, b, row);
                }
            });
        }
        // SAFETY: as above: columns `j0..j1` of `y`'s m rows are this task's alone.
        unsafe { act.apply(isa, yp.get(), m, n, j0, j1) }
    });
}

/// Packs `B` `[k, n]` (element (p, j) at `b[p·rs + j·cs]`) into column panels of `k` rows
/// each, as `linear` reads them, reusing `out`'s allocation. For operands used many times
/// per call, such as an attention head's keys and values.
pub fn pack_panels(b: &[f32], rs: usize, cs: usize, k: usize, n: usize, out: &mut Vec<f32>) {
    let len = n.div_ceil(NR) * k * NR;
    if out.len() < len {
        out.resize(len, 0.0);
    }
    if k == 0 || n == 0 {
        return;
    }
    assert!((k - 1) * rs + (n - 1) * cs < b.len(), "B out of bounds");
    let m = Mat {
        data: b,
        off: 0,
        rs,
        cs,
    };
    for (t, panel) in out[..len].chunks_exact_mut(k * NR).enumerate() {
        // One panel is a `k`-deep block of `NR` columns: `pack_b` with the whole depth.
        pack_b(&m, 0, k, t * NR, (n - t * NR).min(NR), panel);
    }
}

/// `c = alpha · A·W` on this thread, `A` `[m, k]` with row stride `lda`, `W` the first `k`
/// rows and `n` columns of panels packed by `pack_panels` with `panel_rows ≥ k` rows, `c`
/// `[m, n]` contiguous. Panics without AVX-512F (check `supported`).
#[allow(clippy::too_many_arguments)]
pub fn gemm_panels(
    alpha: f32,
    a: &[f32],
    lda: usize,
    m: usize,
    k: usize,
    w: &[f32],
    panel_rows: usize,
    n: usize,
    c: &mut [f32],
) {
    assert!(supported(), "the packed GEMM needs AVX-512F");
    assert!(k <= panel_rows && w.len() >= n.div_ceil(NR) * panel_rows * NR);
    assert!(c.len() == m * n, "c is not [m, n]");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    assert!(lda >= k && (m - 1) * lda + k <= a.len(), "A out of bounds");
    let am = Mat {
        data: a,
        off: 0,
        rs: lda,
        cs: 1,
    };
    let out = Out {
        beta: 0.0,
        bias: None,
    };
    // SAFETY: one thread writes all of `c` (m·n elements, checked); `A` and the panels hold
    // every element read (checked above); the CPU has AVX-512F (asserted).
    unsafe {
        columns(
            alpha,
            &am,
            &Source::Panels(w, panel_rows),
            out,
            c.as_mut_ptr(),
            m,
            k,
            n,
            0,
            n,
        )
    }
}

fn scale(c: &mut [f32], beta: f32) {
    if beta == 0.0 {
        c.iter_mut().for_each(|x| *x = 0.0);
    } else if beta != 1.0 {
        c.iter_mut().for_each(|x| *x *= beta);
    }
}

/// A strided matrix view: element (i, j) is `data[off + i·rs + j·cs]`.
struct Mat<'a> {
    data: &'a [f32],
    off: usize,
    rs: usize,
    cs: usize,
}

thread_local! {
    /// Each thread's packed block of `B`, allocated once per thread.
    static PACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Where `columns` finds the panels of `B`.
enum Source<'a, E> {
    /// A strided f32 matrix, packed block by block into a thread-local buffer.
    Pack(Mat<'a>),
    /// Already in panel layout (see `linear`), each panel this many rows (at least K:
    /// a product may use the first rows only).
    Panels(&'a [E], usize),
}

/// How the first depth block writes `C`: `alpha·acc + beta·C (+ bias[j])`; later blocks
/// add to what is there.
#[derive(Clone, Copy)]
struct Out<'a> {
    beta: f32,
    bias: Option<&'a [f32]>,
}

/// What the micro-kernel does with its sums: `C = alpha·acc + beta·C + bias` (`C` not
/// read when `beta` is 0; no bias when null).
#[derive(Clone, Copy)]
struct Epilogue {
    alpha: f32,
    beta: f32,
    bias: *const f32,
}

/// Columns `j0..j1` of `c` (`[m, n]` at `c`), `j0` a multiple of `NR`.
///
/// # Safety
/// `c` points at `m·n` floats of which no other thread accesses columns `j0..j1`; the CPU
/// has AVX-512F; `a` and `b` hold every element of `[m, k]` and `[k, n]` (checked by the
/// callers), a bias `n`.
#[allow(clippy::too_many_arguments)]
unsafe fn columns<E: PanelElem>(
    alpha: f32,
    a: &Mat,
    b: &Source<E>,
    out: Out,
    c: *mut f32,
    m: usize,
    k: usize,
    n: usize,
    j0: usize,
    j1: usize,
) {
    // One tile: rows `i0..i0 + rows` of `A`'s depth block `kb..kb + kc` times panel `t` of
    // the block starting at `base` (panel `t` at `base + t·stride`).
    let tile = |i0: usize,
                kb: usize,
                kc: usize,
                base: *const E,
                base_len: usize,
                stride: usize,
                jb: usize,
                jn: usize,
                t: usize| {
        let rows = (m - i0).min(MR);
        let a0 = a.off + i0 * a.rs + kb * a.cs;
        let cols = (jn - t * NR).min(NR);
        let col = jb + t * NR;
        let first = kb == 0;
        let bias = match out.bias {
            Some(bv) if first => bv[col..].as_ptr(),
            _ => std::ptr::null(),
        };
        let beta = if first { out.beta } else { 1.0 };
        let o = Epilogue { alpha, beta, bias };
        debug_assert!(i0 + rows <= m && col + cols <= j1 && j1 <= n);
        debug_assert!(a0 + (rows - 1) * a.rs + (kc - 1) * a.cs < a.data.len());
        debug_assert!(t * stride + kc * NR <= base_len);
        debug_assert!(out.bias.is_none_or(|bv| col + cols <= bv.len()));
        // SAFETY: rows `i0..i0 + rows` and columns `col..col + cols` are inside `c`
        // (`i0 + rows ≤ m`, `col + cols ≤ j1 ≤ n`) and in this task's columns; the strip of
        // `A` read is `a0 + i·rs + p·cs` for `i < rows`, `p < kc`, inside `a.data` since the
        // caller checked the last element of `A`; panel `t` holds `kc × NR` elements (a packed
        // block, or rows `kb..kb + kc` of a stored panel); a bias has `cols` elements from
        // `col`.
        unsafe {
            let ct = c.add(i0 * n + col);
            let ap = a.data.as_ptr().add(a0);
            let bp = base.add(t * stride);
            micro(rows, kc, ap, a.rs, a.cs, bp, ct, n, cols, o);
        }
    };
    if let (Source::Panels(w, rows), true) = (b, m <= MR) {
        // One strip of rows (a decode step, or a few streams'): nothing to reuse across
        // strips, so walk each stored panel from top to bottom, one sequential read, instead
        // of depth block by depth block across the panels (which jumped between panels every
        // KC rows and read the weights of large models at two thirds of the speed). The
        // arithmetic is the same: each block's sums added to `C` in depth order.
        let (t0, t1) = (j0 / NR, j1.div_ceil(NR));
        let single = |t: usize| {
            let panel = &w[t * rows * NR..];
            for kb in (0..k).step_by(KC) {
                let from = &panel[kb * NR..];
                let kc = (k - kb).min(KC);
                tile(
                    0,
                    kb,
                    kc,
                    from.as_ptr(),
                    from.len(),
                    0,
                    t * NR,
                    j1 - t * NR,
                    0,
                );
            }
        };
        if m > 1 {
            (t0..t1).for_each(single);
            return;
        }
        // One row (a decoding step) reads two whole panels at once, panel i of each half of
        // the range: one core's single stream does not reach the memory's bandwidth on
        // every CPU (see `q8::vnni_columns`). The sums are `tile`'s, bit for bit.
        let pair = |t: usize, u: usize| {
            for kb in (0..k).step_by(KC) {
                let first = kb == 0;
                let side = |t: usize| {
                    let from = &w[t * rows * NR + kb * NR..];
                    debug_assert!(from.len() >= (k - kb).min(KC) * NR);
                    let bias = match out.bias {
                        Some(bv) if first => bv[t * NR..].as_ptr(),
                        _ => std::ptr::null(),
                    };
                    let beta = if first { out.beta } else { 1.0 };
                    // SAFETY: column `t·NR` of row 0 is inside `c` (`(t + 1)·NR ≤ j1 ≤ n`).
                    let ct = unsafe { c.add(t * NR) };
                    (from.as_ptr(), ct, Epilogue { alpha, beta, bias })
                };
                let ((bt, ct, ot), (bu, cu, ou)) = (side(t), side(u));
                debug_assert!(a.off + (k - 1) * a.cs < a.data.len());
                // SAFETY: as for `tile`: row 0's columns of panels `t` and `u` are this
                // task's and inside `c`, each panel holds `kc × NR` elements from depth
                // `kb`, the row's elements `kb..kb + kc` are inside `a.data`, a bias has
                // NR elements from each panel's first column.
                unsafe {
                    kernel_row_pair(
                        (k - kb).min(KC),
                        a.data.as_ptr().add(a.off + kb * a.cs),
                        a.cs,
                        [bt, bu],
                        [ct, cu],
                        [ot, ou],
                    )
                }
            }
        };
        let whole = |t: usize| (t + 1) * NR <= j1;
        let half = (t1 - t0).div_ceil(2);
        for t in t0..t0 + half {
            match t + half {
                u if u < t1 && whole(t) && whole(u) => pair(t, u),
                u if u < t1 => {
                    single(t);
                    single(u);
                }
                _ => single(t),
            }
        }
        return;
    }
    PACKED.with(|buf| {
        let mut buf = buf.borrow_mut();
        if matches!(b, Source::Pack(_)) && buf.len() < KC * NC_PANELS * NR {
            buf.resize(KC * NC_PANELS * NR, 0.0);
        }
        for jb in (j0..j1).step_by(NC_PANELS * NR) {
            let jn = (j1 - jb).min(NC_PANELS * NR);
            for kb in (0..k).step_by(KC) {
                let kc = (k - kb).min(KC);
                // Panel `t` of this block starts at `base + t·stride`, `kc × NR` floats.
                let (base, base_len, stride) = match b {
                    Source::Pack(bm) => {
                        // Only f32 matrices are packed (`sgemm`): the pointer keeps its type.
                        assert!(E::KIND == Kind::F32);
                        pack_b(bm, kb, kc, jb, jn, &mut buf);
                        (buf.as_ptr().cast::<E>(), buf.len(), kc * NR)
                    }
                    Source::Panels(w, rows) => {
                        let from = &w[(jb / NR * rows + kb) * NR..];
                        (from.as_ptr(), from.len(), rows * NR)
                    }
                };
                for i0 in (0..m).step_by(MR) {
                    for t in 0..jn.div_ceil(NR) {
                        tile(i0, kb, kc, base, base_len, stride, jb, jn, t);
                    }
                }
            }
        }
    })
}

/// Packs `B[kb..kb+kc, jb..jb+jn]` as `NR`-wide panels, each `kc × NR` row-major, the
/// columns past `jn` zero.
fn pack_b(b: &Mat, kb: usize, kc: usize, jb: usize, jn: usize, buf: &mut [f32]) {
    for (t, panel) in buf
        .chunks_exact_mut(kc * NR)
        .take(jn.div_ceil(NR))
        .enumerate()
    {
        let c0 = jb + t * NR;
        let w = (jn - t * NR).min(NR);
        if b.cs == 1 {
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                let src = b.off + (kb + p) * b.rs + c0;
                dst[..w].copy_from_slice(&b.data[src..src + w]);
                dst[w..].iter_mut().for_each(|x| *x = 0.0);
            }
        } else {
            // Column-major source (a transposed weight): read each column contiguously.
            for j in 0..NR {
                if j < w {
                    let src = b.off + kb * b.rs + (c0 + j) * b.cs;
                    for p in 0..kc {
                        panel[p * NR + j] = b.data[src + p * b.rs];
                    }
                } else {
                    (0..kc).for_each(|p| panel[p * NR + j] = 0.0);
                }
            }
        }
    }
}

/// Dispatches the micro-kernel on the row count (a const, so its loops unroll).
///
/// # Safety
/// As `kernel`.
#[allow(clippy::too_many_arguments)]
unsafe fn micro<E: PanelElem>(
    rows: usize,
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    bp: *const E,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    o: Epilogue,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded from the caller.
    unsafe {
        // A partial panel (d = 64 is 48 + 16 columns) computes only its live vectors.
        macro_rules! by_rows {
            ($v:literal) => {
                match rows {
                    8 => kernel::<8, $v, E>(kc, a, rsa, csa, bp, c, ldc, cols, o),
                    7 => kernel::<7, $v, E>(kc, a, rsa, csa, bp, c, ldc, cols, o),
                    6 => kernel::<6, $v, E>(kc, a, rsa, csa, bp, c, ldc, cols, o),
                    5 => kernel::<5, $v, E>(kc, a, rsa, csa, bp, c, ldc, cols, o),
                    4 => kernel::<4, $v, E>(kc, a, rsa, csa, bp, c, ldc, cols, o),
                    3 => kernel::<3, $v, E>(kc, a, rsa, csa, bp, c, ldc, cols, o),
                    2 => kernel::<2, $v, E>(kc, a, rsa, csa, bp, c, ldc, cols, o),
                    _ => kernel::<1, $v, E>(kc, a, rsa, csa, bp, c, ldc, cols, o),
                }
            };
        }
        match cols.div_ceil(16) {
            1 => by_rows!(1),
            2 => by_rows!(2),
            _ => by_rows!(3),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the packed GEMM is x86_64-only");
}

/// `C[0..R, 0..cols] = alpha · Σ_p A[i, p] · panel[p, j] + beta · C + bias[j]` (see
/// `Epilogue`), over the panel's first `V` vectors of 16 columns (`cols ≤ 16·V`).
///
/// # Safety
/// The CPU has AVX-512F; `a + i·rsa + p·csa` is readable for `i < R`, `p < kc`; `bp` holds
/// `kc × NR` elements; `c + i·ldc + j` is writable for `i < R`, `j < cols ≤ 16·V ≤ NR`; a
/// non-null bias has `cols` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const R: usize, const V: usize, E: PanelElem>(
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    bp: *const E,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    o: Epilogue,
) {
    use std::arch::x86_64::*;
    debug_assert!(kc > 0 && (1..=NR).contains(&cols));
    debug_assert!(cols <= 16 * V);
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    let mut ar = [a; R];
    for (i, p) in ar.iter_mut().enumerate() {
        // SAFETY: row `i < R` of the strip is readable (caller).
        *p = unsafe { a.add(i * rsa) };
    }
    // One chain of sums per output, in depth order, whatever R is: a row's result is then
    // the same bits in a strip of any height (a batched step's rows are independent).
    for p in 0..kc {
        // SAFETY: `bp` holds `kc × NR` floats and `p < kc`; `ar[i] + p·csa` is element
        // (i, p) of the strip (caller).
        unsafe {
            let b = bp.add(p * NR);
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, w) in bv.iter_mut().enumerate() {
                *w = load16(b.add(16 * v));
            }
            for i in 0..R {
                let x = _mm512_set1_ps(*ar[i].add(p * csa));
                for v in 0..V {
                    acc[i][v] = _mm512_fmadd_ps(x, bv[v], acc[i][v]);
                }
            }
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { store(&acc, c, ldc, cols, o) }
}

/// Sixteen panel elements at `p` widened to f32 (the format is a compile-time constant).
/// Inlined into each kernel, so it is compiled with the kernel's target features.
///
/// # Safety
/// The CPU has AVX-512F (and F16C for f16); 16 elements at `p` are readable.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load16<E: PanelElem>(p: *const E) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // SAFETY: forwarded from the caller.
    unsafe {
        match E::KIND {
            Kind::F32 => _mm512_loadu_ps(p.cast::<f32>()),
            Kind::F16 => _mm512_cvtph_ps(_mm256_loadu_si256(p.cast::<__m256i>())),
        }
    }
}

/// The end of `kernel`: `C = alpha·acc + beta·C + bias` for `R` rows of `cols ≤ 16·V`
/// columns. Inlined into each kernel, so it is compiled with the kernel's target features.
///
/// # Safety
/// The CPU has AVX-512F; `c + i·ldc + j` is writable for `i < R`, `j < cols`; a non-null
/// bias has `cols` elements.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store<const R: usize, const V: usize>(
    acc: &[[std::arch::x86_64::__m512; V]; R],
    c: *mut f32,
    ldc: usize,
    cols: usize,
    o: Epilogue,
) {
    use std::arch::x86_64::*;
    // Lanes of each vector inside `cols`.
    let mut masks = [0; V];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = crate::linear::lane_mask(cols, v);
    }
    let va = _mm512_set1_ps(o.alpha);
    let vb = _mm512_set1_ps(o.beta);
    let mut bias = [_mm512_setzero_ps(); V];
    if !o.bias.is_null() {
        for (v, b) in bias.iter_mut().enumerate() {
            // SAFETY: lanes under the mask are bias elements `16v + l < cols` (caller).
            *b = unsafe { _mm512_maskz_loadu_ps(masks[v], o.bias.add(16 * v)) };
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, &sum) in row.iter().enumerate() {
            if masks[v] == 0 {
                continue;
            }
            // SAFETY: lanes under `masks[v]` are columns `16v + l < cols` of row `i < R`,
            // writable (caller); masked lanes are neither read nor written.
            unsafe {
                let cp = c.add(i * ldc + 16 * v);
                let mut out = _mm512_fmadd_ps(va, sum, bias[v]);
                if o.beta != 0.0 {
                    let old = _mm512_maskz_loadu_ps(masks[v], cp);
                    out = _mm512_fmadd_ps(vb, old, out);
                }
                _mm512_mask_storeu_ps(cp, masks[v], out);
            }
        }
    }
}

/// One row times two whole panels, each exactly as `kernel::<1, 3, E>` computes it (one
/// chain of sums per output, in depth order), the two panels' elements loaded side by side:
/// two streams from memory (see `columns`).
///
/// # Safety
/// As `kernel::<1, 3, E>` for each of the two (`bp[h]`, `c[h]`, `o[h]`), with `cols = NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_row_pair<E: PanelElem>(
    kc: usize,
    a: *const f32,
    csa: usize,
    bp: [*const E; 2],
    c: [*mut f32; 2],
    o: [Epilogue; 2],
) {
    use std::arch::x86_64::*;
    debug_assert!(kc > 0);
    let mut acc = [[[_mm512_setzero_ps(); 3]; 1]; 2];
    for p in 0..kc {
        // SAFETY: each panel holds `kc × NR` elements and `p < kc`; `a + p·csa` is the
        // row's element p (caller).
        unsafe {
            let x = _mm512_set1_ps(*a.add(p * csa));
            for (acc, &bp) in acc.iter_mut().zip(&bp) {
                let b = bp.add(p * NR);
                for (v, acc) in acc[0].iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(x, load16(b.add(16 * v)), *acc);
                }
            }
        }
    }
    for ((acc, &c), &o) in acc.iter().zip(&c).zip(&o) {
        // SAFETY: forwarded from the caller.
        unsafe { store(acc, c, NR, NR, o) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elem::PanelElem;
    use crate::matmul::matmul_reference;
    use crate::test_data::rand_vec;

    #[test]
    fn packed_gemm_matches_the_reference_on_ragged_shapes_and_layouts() {
        if !supported() {
            eprintln!("no AVX-512F here: the packed GEMM is not used, nothing to test");
            return;
        }
        let mut seed = 7;
        for &(m, k, n) in &[
            (1, 1, 1),
            (8, 256, 48),
            (9, 257, 49),
            (17, 300, 100),
            (33, 64, 400),
            (130, 520, 97),
            (64, 768, 800),
        ] {
            for (ta, tb) in [(false, false), (false, true), (true, false)] {
                for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (2.0, -0.5)] {
                    for threaded in [false, true] {
                        let a = rand_vec(m * k + 3, &mut seed);
                        let b = rand_vec(k * n + 5, &mut seed);
                        let c0 = rand_vec(m * n, &mut seed);
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
                        let (mut got, mut want) = (c0.clone(), c0.clone());
                        crate::set_threads(2);
                        sgemm(
                            alpha, &a, 3, la, &b, 5, lb, beta, &mut got, m, k, n, threaded,
                        );
                        matmul_reference(
                            alpha,
                            &a,
                            &[3],
                            la,
                            &b,
                            &[5],
                            lb,
                            beta,
                            &mut want,
                            m,
                            k,
                            n,
                        );
                        let tol = 1e-4 * (k as f32).sqrt() * alpha.abs().max(1.0);
                        for (x, y) in got.iter().zip(&want) {
                            assert!((x - y).abs() <= tol, "{m}x{k}x{n} {ta} {tb}: {x} vs {y}");
                        }
                    }
                }
            }
        }
    }

    /// `W [k, n]` in `linear`'s panel layout.
    fn panels(w: &[f32], k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n.div_ceil(NR) * k * NR];
        for p in 0..k {
            for j in 0..n {
                out[(j / NR) * k * NR + p * NR + j % NR] = w[p * n + j];
            }
        }
        out
    }

    #[test]
    fn linear_over_f16_panels_matches_the_widened_reference() {
        use crate::elem::F16;
        let mut seed = 17;
        for &(m, k, n) in &[(1, 768, 100), (3, 65, 48), (20, 300, 97)] {
            let x = rand_vec(m * k, &mut seed);
            let w = rand_vec(k * n, &mut seed);
            let b = rand_vec(n, &mut seed);
            let wp = panels(&w, k, n);
            // The reference multiplies by the stored values, widened exactly.
            let check = |widened: Vec<f32>, run: &dyn Fn(Isa, &mut [f32])| {
                let mut want = vec![0f32; m * n];
                want.chunks_exact_mut(n).for_each(|r| r.copy_from_slice(&b));
                let ww = unpanel(&widened, k, n);
                matmul_reference(
                    1.0,
                    &x,
                    &[0],
                    Layout::row_major(k),
                    &ww,
                    &[0],
                    Layout::row_major(n),
                    1.0,
                    &mut want,
                    m,
                    k,
                    n,
                );
                for &isa in crate::cpu::available() {
                    let mut got = vec![f32::NAN; m * n];
                    run(isa, &mut got);
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-4 * (k as f32).sqrt(),
                            "{isa:?} {m}x{k}x{n}: {g} vs {w}"
                        );
                    }
                }
            };
            let hf: Vec<F16> = wp.iter().map(|&v| F16::from_f32(v)).collect();
            check(hf.iter().map(|v| v.to_f32()).collect(), &|isa, y| {
                linear_on(isa, &x, m, k, &hf, Some(&b), Activation::Identity, y, n)
            });
        }
    }

    /// `W [k, n]` back from `linear`'s panel layout.
    fn unpanel(p: &[f32], k: usize, n: usize) -> Vec<f32> {
        let mut w = vec![0f32; k * n];
        for q in 0..k {
            for j in 0..n {
                w[q * n + j] = p[(j / NR) * k * NR + q * NR + j % NR];
            }
        }
        w
    }

    #[test]
    fn linear_on_every_isa_matches_the_reference() {
        let mut seed = 11;
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 768, 100),
            (3, 300, 48),
            (9, 64, 97),
            (20, 513, 200),
        ] {
            let x = rand_vec(m * k, &mut seed);
            let w = rand_vec(k * n, &mut seed);
            let b = rand_vec(n, &mut seed);
            let wp = panels(&w, k, n);
            for bias in [None, Some(&b[..])] {
                let mut want = vec![0f32; m * n];
                if let Some(b) = bias {
                    want.chunks_exact_mut(n).for_each(|r| r.copy_from_slice(b));
                }
                let beta = if bias.is_some() { 1.0 } else { 0.0 };
                matmul_reference(
                    1.0,
                    &x,
                    &[0],
                    Layout::row_major(k),
                    &w,
                    &[0],
                    Layout::row_major(n),
                    beta,
                    &mut want,
                    m,
                    k,
                    n,
                );
                for &isa in crate::cpu::available() {
                    for (threads, act) in [(1, Activation::Identity), (2, Activation::Gelu)] {
                        crate::set_threads(threads);
                        let mut got = vec![f32::NAN; m * n];
                        linear_on(isa, &x, m, k, &wp, bias, act, &mut got, n);
                        let tol = 1e-4 * (k as f32).sqrt();
                        for (g, &w) in got.iter().zip(&want) {
                            let w = match act {
                                Activation::Gelu => crate::vmath::gelu(w),
                                Activation::Identity => w,
                            };
                            assert!((g - w).abs() <= tol, "{isa:?} {m}x{k}x{n}: {g} vs {w}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_over_the_first_rows_of_packed_panels_matches_the_reference() {
        if !supported() {
            return;
        }
        let mut seed = 3;
        // Panels of 100 rows (e.g. an attention cache), products over the first k of them.
        let (rows, n) = (100, 70);
        let b = rand_vec(rows * n, &mut seed);
        let mut panels = Vec::new();
        pack_panels(&b, n, 1, rows, n, &mut panels);
        for (m, k, cols) in [(1, 100, 70), (9, 37, 70), (20, 64, 48), (5, 1, 3)] {
            let a = rand_vec(m * k, &mut seed);
            let mut want = vec![0f32; m * cols];
            matmul_reference(
                0.5,
                &a,
                &[0],
                Layout::row_major(k),
                &b,
                &[0],
                Layout::row_major(n),
                0.0,
                &mut want,
                m,
                k,
                cols,
            );
            let mut got = vec![f32::NAN; m * cols];
            gemm_panels(0.5, &a, k, m, k, &panels, rows, cols, &mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4, "{m}x{k}x{cols}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn beta_zero_ignores_stale_nans() {
        if !supported() {
            return;
        }
        let (m, k, n) = (10, 20, 50);
        let a = vec![1.0f32; m * k];
        let b = vec![1.0f32; k * n];
        let mut c = vec![f32::NAN; m * n];
        sgemm(
            1.0,
            &a,
            0,
            Layout::row_major(k),
            &b,
            0,
            Layout::row_major(n),
            0.0,
            &mut c,
            m,
            k,
            n,
            false,
        );
        assert!(c.iter().all(|&x| x == k as f32));
    }
}
