//! Vectorized elementwise math for the non-GEMM parts of a forward pass: GELU, softmax rows
//! and LayerNorm rows. libm's `tanhf`/`expf` are scalar calls, and over a 1024-token forward
//! GELU alone evaluates 38 M of them; here `exp` is a branch-free range reduction and
//! polynomial, written so the loops vectorize when compiled for AVX-512 or AVX2+FMA (chosen
//! at run time, like the GEMV). The scalar build of the same source is the fallback and the
//! twin the SIMD builds are tested against.
//!
//! Also here: means and softmaxes over a middle axis, and the portable row of a Linear over
//! f32 or f16 panels (`panel_row`, with the `PanelElem` impls that pick it). The lowest
//! kernel family, on `cpu`, `layout` and `elem`: `linear` and `attention` build on it.

#[cfg(test)]
use crate::cpu::available;
use crate::cpu::{detected, isa_kernel, Isa};
use crate::elem::{Kind, PanelElem, F16};

/// `e^x` to about 2 ulp for x in [-87, 88] (clamped outside: the result stays finite and
/// non-zero, which the callers rely on).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n · LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding then subtracting 1.5 · 2^23 rounds to the nearest integer without a call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    // The integer n sits in t's low mantissa bits: read it there, since a float-to-int `as`
    // (saturating) would not vectorize.
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r for |r| ≤ ln2/2: Taylor to degree 7 (truncation error below 2^-26).
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n by building the exponent field (n in [-126, 127] after the clamp).
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    p * scale
}

/// The error function to 3e-7, relative below 0.8 (a Taylor polynomial) and absolute above
/// (Abramowitz and Stegun 7.1.26, 1.5e-7 before f32 rounding), with this file's `exp`. Exact
/// GELU (`0.5·x·(1 + erf(x/√2))`) in graphs that write it with Erf.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4;
    let p = p * t - 1.453_152_1;
    let p = p * t + 1.421_413_7;
    let p = p * t - 0.284_496_74;
    let p = p * t + 0.254_829_6;
    let far = 1.0 - p * t * exp(-a * a);
    // 2/√π · Σ (−1)ⁿ x²ⁿ⁺¹ / (n!(2n+1)), n ≤ 8: the next term is below 3e-9 at 0.8.
    let z = a * a;
    let q = 1.0 / 685_440.0;
    let q = q * z - 1.0 / 75_600.0;
    let q = q * z + 1.0 / 9360.0;
    let q = q * z - 1.0 / 1320.0;
    let q = q * z + 1.0 / 216.0;
    let q = q * z - 1.0 / 42.0;
    let q = q * z + 1.0 / 10.0;
    let q = q * z - 1.0 / 3.0;
    let q = q * z + 1.0;
    let near = std::f32::consts::FRAC_2_SQRT_PI * a * q;
    (if a < 0.8 { near } else { far }).copysign(x)
}

/// GPT-2's tanh-GELU, `0.5·x·(1 + tanh(u))` with `u = √(2/π)(x + 0.044715x³)`, computed
/// as `x / (1 + e^(−2u))` (the same function, one exp and no cancellation).
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    let u = 0.797_884_6 * (x + 0.044715 * x * x * x);
    x / (1.0 + exp(-2.0 * u))
}

#[inline(always)]
fn gelu_body(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = gelu(v);
    }
}

#[inline(always)]
fn gelu_in_place_body(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu(*v);
    }
}

isa_kernel!(
    /// `x[i] = gelu(x[i])` on one thread with the given ISA.
    gelu_in_place => gelu_in_place_body(x: &mut [f32])
);

isa_kernel!(
    /// `out[i] = gelu(x[i])` on one thread with the given ISA.
    gelu_with => gelu_body(x: &[f32], out: &mut [f32])
);

/// `out[i] = gelu(x[i])`, on all threads for long slices.
pub fn gelu_slice(x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    let isa = detected();
    let t = crate::threads();
    if t <= 1 || x.len() < 1 << 15 {
        return gelu_with(isa, x, out);
    }
    let chunk = x.len().div_ceil(t).div_ceil(16) * 16;
    crate::for_each_part(out, chunk, |i, part| {
        let n = part.len();
        gelu_with(isa, &x[i * chunk..i * chunk + n], part)
    });
}

/// Sum with sixteen independent partial sums, so it vectorizes.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Maximum with sixteen independent partial maxima.
#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for i in 0..16 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

#[inline(always)]
fn softmax_body(row: &mut [f32]) {
    let m = max(row);
    for v in row.iter_mut() {
        *v = exp(*v - m);
    }
    let inv = 1.0 / sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

isa_kernel!(
    /// Softmax of one row in place, with the given ISA.
    softmax_row_with => softmax_body(row: &mut [f32])
);

/// Softmax of one row in place.
pub fn softmax_row(row: &mut [f32]) {
    softmax_row_with(detected(), row)
}

#[inline(always)]
fn layer_norm_body(x: &[f32], gamma: &[f32], beta: &[f32], out: &mut [f32], eps: f32) {
    let n = gamma.len();
    for (xr, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let mean = sum(xr) / n as f32;
        let mut acc = [0f32; 16];
        let chunks = xr.chunks_exact(16);
        let tail: f32 = chunks
            .remainder()
            .iter()
            .map(|&v| (v - mean) * (v - mean))
            .sum();
        for c in chunks {
            for i in 0..16 {
                acc[i] += (c[i] - mean) * (c[i] - mean);
            }
        }
        let var = (acc.iter().sum::<f32>() + tail) / n as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, &v), &g), &b) in o.iter_mut().zip(xr).zip(gamma).zip(beta) {
            *o = (v - mean) * inv * g + b;
        }
    }
}

isa_kernel!(
    /// LayerNorm of whole rows of `x` (`gamma.len()` wide) with the given ISA.
    layer_norm_with => layer_norm_body(x: &[f32], gamma: &[f32], beta: &[f32], out: &mut [f32], eps: f32)
);

/// LayerNorm of each `n`-wide row, rows split over threads when there are many.
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], out: &mut [f32], eps: f32) {
    let n = gamma.len();
    assert!(n > 0 && beta.len() == n && x.len() == out.len() && x.len().is_multiple_of(n));
    let isa = detected();
    let rows = x.len() / n;
    let t = crate::threads();
    if t <= 1 || x.len() < 1 << 15 {
        return layer_norm_with(isa, x, gamma, beta, out, eps);
    }
    let chunk = rows.div_ceil(t) * n;
    crate::for_each_part(out, chunk, |i, part| {
        let len = part.len();
        layer_norm_with(isa, &x[i * chunk..i * chunk + len], gamma, beta, part, eps)
    });
}

#[inline(always)]
fn panel_row_body<E: crate::elem::PanelElem>(
    x: &[f32],
    w: &[E],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    const NR: usize = crate::layout::NR;
    let k = x.len();
    for (t, panel) in w.chunks_exact(k * NR).enumerate() {
        let mut acc = [0f32; NR];
        for (&xv, wr) in x.iter().zip(panel.chunks_exact(NR)) {
            for j in 0..NR {
                acc[j] += xv * wr[j].to_f32();
            }
        }
        let end = ((t + 1) * NR).min(out.len());
        let o = &mut out[t * NR..end];
        for (j, v) in o.iter_mut().enumerate() {
            *v = acc[j] + bias.map_or(0.0, |b| b[t * NR + j]);
        }
    }
}

isa_kernel!(
    /// One row of `gemm::linear` without AVX-512: `out = x·W + bias` over the column panels
    /// in `w` (`out` holds their columns, the last panel possibly partial).
    panel_row => panel_row_body(x: &[f32], w: &[f32], bias: Option<&[f32]>, out: &mut [f32])
);
isa_kernel!(
    /// `panel_row` over half-precision panels.
    panel_row_f16 => panel_row_body(x: &[f32], w: &[F16], bias: Option<&[f32]>, out: &mut [f32])
);

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

// The element types' portable rows, beside the kernels they pick (`elem` sits below the
// kernels, so its trait is implemented here).
impl PanelElem for f32 {
    const KIND: Kind = Kind::F32;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    fn panel_row(isa: Isa, x: &[f32], w: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        panel_row(isa, x, w, bias, out)
    }
    fn as_f32(w: &[f32]) -> Option<&[f32]> {
        Some(w)
    }
}

impl PanelElem for F16 {
    const KIND: Kind = Kind::F16;
    fn panel_row(isa: Isa, x: &[f32], w: &[F16], bias: Option<&[f32]>, out: &mut [f32]) {
        panel_row_f16(isa, x, w, bias, out)
    }
    fn as_f32(_: &[F16]) -> Option<&[f32]> {
        None
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.widen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<f32> {
        let mut v: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.01).collect();
        v.extend([
            -200.0, -100.0, -87.5, -30.0, 0.0, 1e-6, -1e-6, 30.0, 88.5, 100.0, 1e4, -1e4,
        ]);
        v
    }

    #[test]
    fn exp_and_gelu_match_libm() {
        for x in values() {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            if (-87.0..=88.0).contains(&x) {
                assert!(
                    (got - want).abs() <= 3e-7 * want,
                    "exp({x}) = {got}, libm {want}"
                );
            } else {
                assert!(got.is_finite() && got > 0.0, "exp({x}) = {got}");
            }
            let xd = x as f64;
            let want = 0.5 * xd * (1.0 + (0.797_884_560_8 * (xd + 0.044715 * xd * xd * xd)).tanh());
            let got = gelu(x) as f64;
            assert!(
                (got - want).abs() <= 1e-6 * xd.abs().max(1.0),
                "gelu({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn every_isa_matches_the_scalar_twin() {
        let x = values();
        let (g, b): (Vec<f32>, Vec<f32>) = (0..x.len())
            .map(|i| (1.0 + i as f32 * 1e-3, i as f32 * -1e-3))
            .unzip();
        let mut want = vec![0f32; x.len()];
        gelu_with(Isa::Scalar, &x, &mut want);
        let mut want_sm = x.clone();
        softmax_row_with(Isa::Scalar, &mut want_sm[..1000]);
        let mut want_ln = vec![0f32; x.len()];
        layer_norm_with(
            Isa::Scalar,
            &x[..4000],
            &g[..1000],
            &b[..1000],
            &mut want_ln[..4000],
            1e-5,
        );
        for &isa in available() {
            let mut got = vec![0f32; x.len()];
            gelu_with(isa, &x, &mut got);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "{isa:?} gelu {a} vs {b}"
                );
            }
            let mut sm = x.clone();
            softmax_row_with(isa, &mut sm[..1000]);
            for (a, b) in sm.iter().zip(&want_sm) {
                assert!((a - b).abs() <= 1e-6, "{isa:?} softmax {a} vs {b}");
            }
            let mut ln = vec![0f32; x.len()];
            layer_norm_with(
                isa,
                &x[..4000],
                &g[..1000],
                &b[..1000],
                &mut ln[..4000],
                1e-5,
            );
            for (a, b) in ln.iter().zip(&want_ln) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{isa:?} layer_norm {a} vs {b}"
                );
            }
        }
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
    #[test]
    fn threaded_slices_match_one_thread() {
        let x: Vec<f32> = (0..100_003)
            .map(|i| ((i * 37) % 1000) as f32 * 0.01 - 5.0)
            .collect();
        let g = vec![1.5f32; 769];
        let b = vec![0.25f32; 769];
        let xs = &x[..769 * 130];
        crate::set_threads(1);
        let (mut one, mut ln1) = (vec![0f32; x.len()], vec![0f32; xs.len()]);
        gelu_slice(&x, &mut one);
        layer_norm(xs, &g, &b, &mut ln1, 1e-5);
        crate::set_threads(2);
        let (mut two, mut ln2) = (vec![0f32; x.len()], vec![0f32; xs.len()]);
        gelu_slice(&x, &mut two);
        layer_norm(xs, &g, &b, &mut ln2, 1e-5);
        assert_eq!(one, two);
        assert_eq!(ln1, ln2);
    }
}

#[cfg(test)]
mod erf_tests {
    /// erf by its Taylor series in f64 (converges fast for |x| ≤ 3).
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_its_bound() {
        for i in -3000..=3000 {
            let x = i as f32 / 1000.0;
            let want = erf_series(x as f64);
            let d = (super::erf(x) as f64 - want).abs();
            // Relative below 0.8 (where the polynomial runs), absolute above.
            let bound = if x.abs() < 0.8 {
                3e-7 * want.abs() + 1e-12
            } else {
                3e-7
            };
            assert!(d < bound, "erf({x}) off by {d}");
        }
        assert_eq!(super::erf(10.0), 1.0);
        assert_eq!(super::erf(-10.0), -1.0);
    }
}
