//! Weight layouts chosen at compile time for the kernels that stream them.
//!
//! A Linear's weight `W [K, N]` is stored as `⌈N / PANEL⌉` column panels, each `K × PANEL`
//! row-major and zero-padded past `N`: `gpt2rt::gemm::linear` reads one panel as a single
//! contiguous stream, whether it multiplies one row (decoding) or many (prefill), and never
//! packs at run time. `PANEL` must equal the runtime's `gemm::NR` (the generated code
//! asserts it at compile time).

use crate::ir::Tensor;

/// Columns per panel.
pub const PANEL: usize = 48;

/// How panel-packed (Linear) weights are stored: `GPT2_WEIGHTS=f32|bf16|f16`. The kernels
/// widen them to f32 in registers; everything else (biases, norms, activations) stays f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    #[default]
    F32,
    Bf16,
    F16,
}

impl WeightFormat {
    pub const NAMES: &'static [&'static str] = &["f32", "bf16", "f16"];

    /// Parses `GPT2_WEIGHTS`.
    pub fn parse(s: &str) -> Result<WeightFormat, String> {
        match s.trim() {
            "" | "f32" => Ok(WeightFormat::F32),
            "bf16" => Ok(WeightFormat::Bf16),
            "f16" => Ok(WeightFormat::F16),
            "q8" => Err("weight format 'q8' is not implemented yet; use f32, bf16 or f16".into()),
            other => Err(format!(
                "unknown weight format '{other}'; expected one of: {}",
                Self::NAMES.join(", ")
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::Bf16 => "bf16",
            WeightFormat::F16 => "f16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            _ => 2,
        }
    }

    /// Little-endian bytes of `values` in this format (round to nearest even).
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            WeightFormat::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            WeightFormat::Bf16 => values
                .iter()
                .flat_map(|&v| bf16_bits(v).to_le_bytes())
                .collect(),
            WeightFormat::F16 => values
                .iter()
                .flat_map(|&v| f16_bits(v).to_le_bytes())
                .collect(),
        }
    }

    /// The value `v` becomes once stored and widened back (for measuring what a format
    /// costs).
    pub fn round_trip(self, v: f32) -> f32 {
        match self {
            WeightFormat::F32 => v,
            WeightFormat::Bf16 => f32::from_bits((bf16_bits(v) as u32) << 16),
            WeightFormat::F16 => f16_value(f16_bits(v)),
        }
    }
}

/// bfloat16 bits of `x`, rounded to nearest even (the runtime's `elem::Bf16::from_f32`).
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// IEEE half bits of `x`, rounded to nearest even (the runtime's `elem::F16::from_f32`).
pub fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1u32 << shift) - 1);
        let mut v = m >> shift;
        if rem > half || (rem == half && v & 1 == 1) {
            v += 1;
        }
        return sign | v as u16;
    }
    let mut v = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && v & 1 == 1) {
        v += 1;
    }
    sign | v as u16
}

/// The f32 value of half bits.
pub fn f16_value(h: u16) -> f32 {
    let h = h as u32;
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let man = (h & 0x3ff) as f32;
    match exp {
        0 => sign * man * 2f32.powi(-24),
        0x1f if man == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        _ => sign * (1.0 + man / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// Elements of `W [k, n]` in panel layout.
pub fn panels_len(k: usize, n: usize) -> usize {
    n.div_ceil(PANEL) * k * PANEL
}

/// `W [k, n]` (f32, row-major) in panel layout, as a 1-D tensor.
pub fn pack_panels(w: &Tensor) -> Tensor {
    let (k, n) = (w.shape()[0], w.shape()[1]);
    let src = w.to_vec::<f32>().expect("an f32 weight");
    let mut out = vec![0f32; panels_len(k, n)];
    for (t, panel) in out.chunks_exact_mut(k * PANEL).enumerate() {
        let c0 = t * PANEL;
        let width = (n - c0).min(PANEL);
        for (p, row) in panel.chunks_exact_mut(PANEL).enumerate() {
            row[..width].copy_from_slice(&src[p * n + c0..p * n + c0 + width]);
        }
    }
    Tensor::from_vec(vec![out.len()], out)
}

/// The transpose of `W [n, k]` (f32, row-major) in panel layout: `Wᵀ [k, n]` as a Linear
/// weight, for a tied embedding table that is also the LM head. Row `r` of `W` (an embedding)
/// is column `r` of `Wᵀ`: panel `r / PANEL`, element `p · PANEL + r % PANEL` for `p < k`.
pub fn pack_panels_of_transpose(w: &Tensor) -> Tensor {
    let (n, k) = (w.shape()[0], w.shape()[1]);
    let src = w.to_vec::<f32>().expect("an f32 weight");
    let mut out = vec![0f32; panels_len(k, n)];
    for (r, row) in src.chunks_exact(k).enumerate() {
        let (panel, j) = (r / PANEL, r % PANEL);
        let base = panel * k * PANEL + j;
        for (p, &v) in row.iter().enumerate() {
            out[base + p * PANEL] = v;
        }
    }
    Tensor::from_vec(vec![out.len()], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_hold_every_element_once_and_pad_with_zeros() {
        let (k, n) = (3, 50);
        let w = Tensor::from_vec(vec![k, n], (0..k * n).map(|i| i as f32 + 1.0).collect());
        let p = pack_panels(&w).to_vec::<f32>().unwrap();
        assert_eq!(p.len(), 2 * k * PANEL);
        for i in 0..k {
            for j in 0..n {
                let at = (j / PANEL) * k * PANEL + i * PANEL + j % PANEL;
                assert_eq!(p[at], (i * n + j) as f32 + 1.0);
            }
        }
        assert_eq!(p.iter().filter(|&&x| x == 0.0).count(), k * (2 * PANEL - n));
        // The transpose of W, packed, is W's transpose packed.
        let wt = Tensor::from_vec(
            vec![n, k],
            (0..n * k)
                .map(|i| ((i % k) * n + i / k) as f32 + 1.0)
                .collect(),
        );
        assert_eq!(pack_panels_of_transpose(&wt).to_vec::<f32>().unwrap(), p);
    }

    #[test]
    fn formats_parse_and_round_to_nearest_even() {
        assert_eq!(WeightFormat::parse("bf16"), Ok(WeightFormat::Bf16));
        assert!(WeightFormat::parse("q8")
            .unwrap_err()
            .contains("not implemented"));
        assert!(WeightFormat::parse("int4")
            .unwrap_err()
            .contains("f32, bf16, f16"));
        for x in [0.0f32, 1.0, -2.5, 0.1, 1e-5, 6e-8, 65504.0] {
            let b = WeightFormat::Bf16.round_trip(x);
            assert!((b - x).abs() <= x.abs() / 256.0, "bf16 {x} -> {b}");
            let h = WeightFormat::F16.round_trip(x);
            assert!((h - x).abs() <= x.abs() / 2048.0 + 6e-8, "f16 {x} -> {h}");
        }
        // Every half value survives f16 -> f32 -> f16.
        for v in 0..=u16::MAX {
            let f = f16_value(v);
            if !f.is_nan() {
                assert_eq!(f16_bits(f), v, "{v:#x}");
            }
        }
        assert_eq!(WeightFormat::F16.encode(&[1.0]), [0x00, 0x3c]);
        assert_eq!(WeightFormat::Bf16.encode(&[1.0]), [0x80, 0x3f]);
    }
}
