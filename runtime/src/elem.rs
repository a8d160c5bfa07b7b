//! Element types a weight panel may be stored in (chosen at compile time, `GPT2_WEIGHTS`):
//! f32 and IEEE half, which `gemm::linear` widens to f32 in registers while streaming
//! (accumulating in f32); bfloat16 (`Bf16`), which the kernels of `bf16` multiply with
//! inputs rounded to bf16; int8 (`Q8`), which the kernels of `q8` multiply as integers; and 4-bit pairs (`Q4`),
//! which the kernels of `q4` unpack and multiply as integers.
//!
//! Plain data above `cpu`, beside `layout`, below every kernel module.

/// The storage formats, for kernels that pick a load at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `f32`.
    F32,
    /// IEEE half precision, `F16`.
    F16,
}

use crate::cpu::Isa;

/// A weight element: what it is, its value as f32, and the portable (non-AVX-512) row of
/// `gemm::linear` over panels of it (`vmath::panel_row`). The impls for f32 and `F16` are in
/// `vmath`, beside the rows they pick.
pub trait PanelElem: Copy + Send + Sync + 'static {
    /// Which format this is.
    const KIND: Kind;
    /// The value, exactly, as f32.
    fn to_f32(self) -> f32;
    /// `out = x·W + bias` over the panels in `w`.
    fn panel_row(isa: Isa, x: &[f32], w: &[Self], bias: Option<&[f32]>, out: &mut [f32]);
    /// The panels as f32, when they are (the AVX2 strips run on f32 only).
    fn as_f32(w: &[Self]) -> Option<&[f32]>;
}

/// bfloat16: the top 16 bits of an f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl Bf16 {
    /// Rounds to nearest, ties to even (NaN stays NaN).
    pub fn from_f32(x: f32) -> Bf16 {
        let b = x.to_bits();
        if x.is_nan() {
            return Bf16(((b >> 16) | 0x40) as u16);
        }
        let round = 0x7fff + ((b >> 16) & 1);
        Bf16((b.wrapping_add(round) >> 16) as u16)
    }
}

impl Bf16 {
    /// The exact f32 value.
    #[inline(always)]
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

/// IEEE 754 binary16.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct F16(pub u16);

impl F16 {
    /// Rounds to nearest, ties to even; overflow becomes infinity, tiny values subnormal.
    pub fn from_f32(x: f32) -> F16 {
        let b = x.to_bits();
        let sign = ((b >> 16) & 0x8000) as u16;
        let exp = ((b >> 23) & 0xff) as i32;
        let man = b & 0x7f_ffff;
        if exp == 0xff {
            return F16(sign | 0x7c00 | if man != 0 { 0x200 } else { 0 });
        }
        let e = exp - 127 + 15;
        if e >= 0x1f {
            return F16(sign | 0x7c00);
        }
        if e <= 0 {
            // Subnormal (or zero): shift the implicit-one mantissa into place, rounding.
            if e < -10 {
                return F16(sign);
            }
            let m = man | 0x80_0000;
            let shift = (14 - e) as u32;
            let half = 1u32 << (shift - 1);
            let rem = m & ((1u32 << shift) - 1);
            let mut v = m >> shift;
            if rem > half || (rem == half && v & 1 == 1) {
                v += 1;
            }
            return F16(sign | v as u16);
        }
        let mut v = ((e as u32) << 10) | (man >> 13);
        let rem = man & 0x1fff;
        if rem > 0x1000 || (rem == 0x1000 && v & 1 == 1) {
            v += 1; // may carry into the exponent, up to infinity: still correct
        }
        F16(sign | v as u16)
    }
}

impl F16 {
    /// The exact f32 value (`PanelElem::to_f32`, whose impl for `F16` is in `vmath`); the
    /// generated code widens tables stored as f16 with it.
    #[inline(always)]
    pub fn widen(self) -> f32 {
        let h = self.0 as u32;
        let sign = (h & 0x8000) << 16;
        let exp = (h >> 10) & 0x1f;
        let man = h & 0x3ff;
        let bits = match exp {
            0 if man == 0 => sign,
            0 => {
                // Subnormal: value man · 2^-24, normalized for f32.
                let v = man as f32 * (1.0 / 16_777_216.0);
                return if sign != 0 { -v } else { v };
            }
            0x1f => sign | 0x7f80_0000 | (man << 13),
            _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
        };
        f32::from_bits(bits)
    }
}

/// An int8 weight in offset binary: the byte is the weight plus 128 (weights are in
/// [−127, 127]); its column's scale, kept beside the panels, gives its value (`q8`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Q8(pub u8);

/// Two 4-bit weights of one column, each plus 8 (weights are in [−8, 7]): the low nibble
/// is a row of one quad, the high nibble the same row of the next; their block's scale,
/// kept beside the panels, gives their values (`q4`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Q4(pub u8);

/// Half-precision values to f32, exactly (`F16::widen`), with F16C's `vcvtph2ps` where the
/// CPU has it.
pub fn widen_f16(src: &[F16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::f16c() {
        // SAFETY: the CPU has F16C and AVX (`cpu::f16c`), all `widen_f16_f16c` is compiled
        // for; the slices have equal lengths (checked above).
        unsafe { widen_f16_f16c(src, dst) };
        return;
    }
    widen_f16_scalar(src, dst);
}

/// The portable `widen_f16`.
pub fn widen_f16_scalar(src: &[F16], dst: &mut [f32]) {
    for (o, x) in dst.iter_mut().zip(src) {
        *o = x.widen();
    }
}

/// `widen_f16` eight values at a time.
///
/// # Safety
/// The CPU has F16C (and AVX); `src` and `dst` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn widen_f16_f16c(src: &[F16], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = src.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        // SAFETY: i + 8 <= n <= len of both slices: an unaligned 16-byte load of eight
        // halves (F16 is a transparent u16) and a 32-byte store of eight f32.
        unsafe {
            let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
    }
    widen_f16_scalar(&src[n..], &mut dst[n..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16c_widens_every_half_as_the_portable_code_does() {
        let all: Vec<F16> = (0..=u16::MAX).map(F16).collect();
        let (mut a, mut b) = (vec![0f32; all.len()], vec![0f32; all.len()]);
        widen_f16(&all, &mut a);
        widen_f16_scalar(&all, &mut b);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{i:#x}: {x} vs {y}"
            );
        }
        // Ragged lengths take the tail path.
        let mut c = vec![0f32; 13];
        widen_f16(&all[1000..1013], &mut c);
        assert_eq!(c, b[1000..1013]);
    }

    #[test]
    fn conversions_round_to_nearest_even_and_round_trip() {
        for x in [
            0.0f32, -0.0, 1.0, -2.5, 0.1, 65504.0, 1e-5, 6e-8, 3e38, -1e-40,
        ] {
            let b = Bf16::from_f32(x).to_f32();
            let tol = (x.abs() * 2f32.powi(-8)).max(f32::MIN_POSITIVE);
            assert!((b - x).abs() <= tol, "bf16 {x} -> {b}");
            let h = F16::from_f32(x).to_f32();
            if x.abs() <= 65504.0 && x.abs() >= 6.1e-5 {
                assert!((h - x).abs() <= x.abs() * 2f32.powi(-11), "f16 {x} -> {h}");
            }
        }
        // Every half value survives f16 -> f32 -> f16.
        for v in 0..=u16::MAX {
            let h = F16(v);
            let f = h.to_f32();
            if !f.is_nan() {
                assert_eq!(F16::from_f32(f), h, "{v:#x} ({f})");
            }
        }
        assert_eq!(F16::from_f32(1e6).to_f32(), f32::INFINITY);
        assert_eq!(Bf16::from_f32(1.0 + 2f32.powi(-8)).to_f32(), 1.0); // tie to even
        assert!(F16::from_f32(f32::NAN).to_f32().is_nan());
    }
}
