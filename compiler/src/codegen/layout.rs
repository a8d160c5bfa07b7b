//! Weight layouts chosen at compile time for the kernels that stream them.
//!
//! A Linear's weight `W [K, N]` is stored as `⌈N / PANEL⌉` column panels, each `K × PANEL`
//! row-major and zero-padded past `N`: `gpt2rt::gemm::linear` reads one panel as a single
//! contiguous stream, whether it multiplies one row (decoding) or many (prefill), and never
//! packs at run time. `PANEL` must equal the runtime's `gemm::NR` (the generated code
//! asserts it at compile time).

use crate::ir::Tensor;

/// Columns per panel: the runtime kernel's width.
pub const PANEL: usize = gpt2rt::gemm::NR;

/// How panel-packed (Linear) weights are stored: `GPT2_WEIGHTS=f32|bf16|f16|q8|q4`. The
/// kernels widen f16 to f32 in registers; bf16 Linears round their input rows to bf16 too,
/// so products are exact (`gpt2rt::bf16`), and q8 and q4 Linears round them to int8 and
/// multiply integers (`gpt2rt::q8`, `gpt2rt::q4`). q4 also stores tables read only by
/// elementwise arithmetic and gathers as f16 (`narrows_tables`). Everything else (biases, norms, the
/// activations between Linears) stays f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    /// f32, as in the model.
    #[default]
    F32,
    /// bfloat16, rounded to nearest even.
    Bf16,
    /// IEEE half precision.
    F16,
    /// int8 with one f32 scale per output column (per output channel), in panels of
    /// four-row quads (`gpt2rt::q8`).
    Q8,
    /// 4-bit, in [−8, 7], with an int8 scale per column and block of `gpt2rt::q4::BLOCK`
    /// rows and an f32 unit per column, two quads of a column per byte lane (`gpt2rt::q4`).
    Q4,
}

/// The little-endian bytes of `values`, `N` per value, in a buffer of exactly that size (a
/// `flat_map(..).collect()` grows by doubling: up to twice the blob of a large matrix).
fn le_bytes<T: Copy, const N: usize>(values: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * N);
    for &v in values {
        out.extend_from_slice(&f(v));
    }
    out
}

impl WeightFormat {
    /// The `GPT2_WEIGHTS` names, in variant order.
    pub const NAMES: &'static [&'static str] = &["f32", "bf16", "f16", "q8", "q4"];

    /// Parses `GPT2_WEIGHTS`.
    pub fn parse(s: &str) -> Result<WeightFormat, String> {
        match s.trim() {
            "" | "f32" => Ok(WeightFormat::F32),
            "bf16" => Ok(WeightFormat::Bf16),
            "f16" => Ok(WeightFormat::F16),
            "q8" => Ok(WeightFormat::Q8),
            "q4" => Ok(WeightFormat::Q4),
            other => Err(format!(
                "unknown weight format '{other}'; expected one of: {}",
                Self::NAMES.join(", ")
            )),
        }
    }

    /// The format's `GPT2_WEIGHTS` name.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::Bf16 => "bf16",
            WeightFormat::F16 => "f16",
            WeightFormat::Q8 => "q8",
            WeightFormat::Q4 => "q4",
        }
    }

    /// Whether this format stores tables (`plan::narrow_table`: constants only elementwise
    /// arithmetic and row gathers read, such as GPT-2's position embeddings) as f16 rather
    /// than f32: q4,
    /// whose point is the smallest binary (on GPT-2 124M the position table is 3.1 MB in
    /// f32, 4% of the q4 binary).
    pub fn narrows_tables(self) -> bool {
        self == WeightFormat::Q4
    }

    /// Bytes per element (a q4 element is a byte of two weights).
    pub fn size(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::Bf16 | WeightFormat::F16 => 2,
            WeightFormat::Q8 | WeightFormat::Q4 => 1,
        }
    }

    /// The scales stored beside `W [k, n]`'s panels: how many, and the Rust type of one
    /// (q8: f32 per panel column; q4: bytes, per panel f32 units and an int8 scale per block
    /// and column). None for formats without scales.
    pub fn scales(self, k: usize, n: usize) -> Option<(usize, &'static str)> {
        match self {
            WeightFormat::Q8 => Some((n.div_ceil(PANEL) * PANEL, "f32")),
            WeightFormat::Q4 => Some((gpt2rt::q4::scales_len(k, n), "u8")),
            _ => None,
        }
    }

    /// Little-endian bytes of panel-packed `values` (`k` rows per panel) in this format
    /// (floats round to nearest even), and the bytes of its scales: for q8 the f32 scale of every panel column, for q4 each
    /// panel's units and block scales (`gpt2rt::q4`), in the order the kernel reads them.
    pub fn encode_panels(self, values: &[f32], k: usize) -> (Vec<u8>, Vec<u8>) {
        match self {
            WeightFormat::F32 => (le_bytes(values, |v| v.to_le_bytes()), vec![]),
            WeightFormat::Bf16 => {
                // Pairs of rows per column (`gpt2rt::bf16`).
                let kp = gpt2rt::bf16::padded_depth(k);
                let mut b = vec![0u16; values.len() / k.max(1) * kp];
                let panels = values
                    .chunks_exact(k * PANEL)
                    .zip(b.chunks_exact_mut(kp * PANEL));
                for (panel, bp) in panels {
                    for p in 0..k {
                        for j in 0..PANEL {
                            bp[gpt2rt::bf16::panel_index(k, p, j)] =
                                bf16_bits(panel[p * PANEL + j]);
                        }
                    }
                }
                (le_bytes(&b, |v| v.to_le_bytes()), vec![])
            }
            WeightFormat::F16 => (le_bytes(values, |v| f16_bits(v).to_le_bytes()), vec![]),
            WeightFormat::Q8 => {
                // Quads of four rows per column, offset by 128 (`gpt2rt::q8`).
                let kp = gpt2rt::q8::padded_depth(k);
                let mut scales = Vec::new();
                let mut q = vec![128u8; values.len() / k.max(1) * kp];
                let panels = values
                    .chunks_exact(k * PANEL)
                    .zip(q.chunks_exact_mut(kp * PANEL));
                for (panel, qp) in panels {
                    for j in 0..PANEL {
                        let scale = q8_scale((0..k).map(|p| panel[p * PANEL + j]));
                        for p in 0..k {
                            let v = q8_value(panel[p * PANEL + j], scale) as i32 + 128;
                            qp[gpt2rt::q8::panel_index(k, p, j)] = v as u8;
                        }
                        scales.extend(scale.to_le_bytes());
                    }
                }
                (q, scales)
            }
            WeightFormat::Q4 => {
                // Two quads of a column per byte lane, blocks of rows with an int8 scale
                // each and a unit per column (`gpt2rt::q4`).
                use gpt2rt::q4::{panel_index, panels_len, scale_index, scales_len, unit_index};
                let panels = values.len() / (k * PANEL).max(1);
                let (pb, ps) = (panels_len(k, PANEL), scales_len(k, PANEL));
                let mut q = vec![0x88u8; panels * pb];
                let mut scales = vec![0u8; panels * ps];
                // Panel by panel, each into its own bytes and scales.
                let encode = |panel: &[f32], q: &mut [u8], scales: &mut [u8]| {
                    let blocks = k.div_ceil(gpt2rt::q4::BLOCK);
                    let (mut col, mut qc, mut sc) =
                        (vec![0f32; k], vec![0i8; k], vec![0i8; blocks]);
                    for j in 0..PANEL {
                        for (p, c) in col.iter_mut().enumerate() {
                            *c = panel[p * PANEL + j];
                        }
                        let u = gpt2rt::q4::quantize_line(&col, &mut qc, &mut sc);
                        let at = unit_index(k, j);
                        scales[at..at + 4].copy_from_slice(&u.to_le_bytes());
                        for (b, &s) in sc.iter().enumerate() {
                            scales[scale_index(k, b, j)] = s as u8;
                        }
                        for (p, &v) in qc.iter().enumerate() {
                            let (at, high) = panel_index(k, p, j);
                            let byte = &mut q[at];
                            let v = (v + 8) as u8;
                            *byte = if high {
                                (*byte & 0x0F) | (v << 4)
                            } else {
                                (*byte & 0xF0) | v
                            };
                        }
                    }
                };
                // The scale search costs about as much as the rest of compiling 124M: the
                // panels are shared out over the cores (the result does not depend on how).
                let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
                let per = panels.div_ceil(threads).max(1);
                if k == 0 {
                    return (q, scales);
                }
                std::thread::scope(|s| {
                    let parts = values
                        .chunks(per * k * PANEL)
                        .zip(q.chunks_mut(per * pb))
                        .zip(scales.chunks_mut(per * ps));
                    for ((v, q), sc) in parts {
                        s.spawn(move || {
                            let blocks = v.chunks_exact(k * PANEL);
                            let outs = q.chunks_exact_mut(pb).zip(sc.chunks_exact_mut(ps));
                            for (panel, (q, sc)) in blocks.zip(outs) {
                                encode(panel, q, sc);
                            }
                        });
                    }
                });
                (q, scales)
            }
        }
    }

    /// `values`, a `[rows, cols]` matrix whose columns (or rows, when `per_row`) are the
    /// stored panel columns, as this format stores them, widened back: what the generated
    /// code computes with.
    pub fn round_trip(self, values: &mut [f32], rows: usize, cols: usize, per_row: bool) {
        match self {
            WeightFormat::F32 => {}
            WeightFormat::Bf16 => values
                .iter_mut()
                .for_each(|v| *v = f32::from_bits((bf16_bits(*v) as u32) << 16)),
            WeightFormat::F16 => values.iter_mut().for_each(|v| *v = f16_value(f16_bits(*v))),
            WeightFormat::Q8 if per_row => {
                for row in values.chunks_exact_mut(cols) {
                    let scale = q8_scale(row.iter().copied());
                    row.iter_mut()
                        .for_each(|v| *v = q8_value(*v, scale) as f32 * scale);
                }
            }
            WeightFormat::Q8 => {
                for j in 0..cols {
                    let scale = q8_scale((0..rows).map(|r| values[r * cols + j]));
                    for r in 0..rows {
                        let v = &mut values[r * cols + j];
                        *v = q8_value(*v, scale) as f32 * scale;
                    }
                }
            }
            WeightFormat::Q4 => {
                // Blocks along the depth: a row of a transposed table, a column otherwise.
                let (lines, depth) = if per_row { (rows, cols) } else { (cols, rows) };
                let at = |l: usize, p: usize| if per_row { l * cols + p } else { p * cols + l };
                let blocks = depth.div_ceil(gpt2rt::q4::BLOCK);
                let (mut v, mut q, mut s) =
                    (vec![0f32; depth], vec![0i8; depth], vec![0i8; blocks]);
                for l in 0..lines {
                    for (p, x) in v.iter_mut().enumerate() {
                        *x = values[at(l, p)];
                    }
                    let u = gpt2rt::q4::quantize_line(&v, &mut q, &mut s);
                    for (p, &qv) in q.iter().enumerate() {
                        let s = s[p / gpt2rt::q4::BLOCK] as i32;
                        values[at(l, p)] = (qv as i32 * s) as f32 * u;
                    }
                }
            }
        }
    }
}

/// The int8 scale of a column: its largest magnitude maps to 127 (1 for an all-zero one).
fn q8_scale(column: impl Iterator<Item = f32>) -> f32 {
    let max = column.fold(0f32, |m, v| m.max(v.abs()));
    if max > 0.0 {
        max / 127.0
    } else {
        1.0
    }
}

/// `v / scale` rounded to the nearest int8 in [-127, 127].
fn q8_value(v: f32, scale: f32) -> i8 {
    (v / scale).round().clamp(-127.0, 127.0) as i8
}

/// bfloat16 bits of `x`, rounded to nearest even (the runtime's conversion).
pub fn bf16_bits(x: f32) -> u16 {
    gpt2rt::elem::Bf16::from_f32(x).0
}

/// IEEE half bits of `x`, rounded to nearest even (the runtime's conversion).
pub fn f16_bits(x: f32) -> u16 {
    gpt2rt::elem::F16::from_f32(x).0
}

/// The f32 value of half bits.
pub fn f16_value(h: u16) -> f32 {
    use gpt2rt::elem::PanelElem;
    gpt2rt::elem::F16(h).to_f32()
}

/// Elements of `W [k, n]` in panel layout.
pub fn panels_len(k: usize, n: usize) -> usize {
    n.div_ceil(PANEL) * k * PANEL
}

impl WeightFormat {
    /// How this format's Linear kernels round their input rows, if they do.
    pub fn input_rounding(self) -> Option<crate::ops::fused::RowRounding> {
        use crate::ops::fused::RowRounding;
        match self {
            WeightFormat::Q8 | WeightFormat::Q4 => Some(RowRounding::Int8 {
                block: gpt2rt::q8::QBLOCK,
            }),
            WeightFormat::Bf16 => Some(RowRounding::Bf16),
            _ => None,
        }
    }

    /// Elements of `W [k, n]` in panels of this format (int8 panels pad the depth to quads).
    pub fn panels_len(self, k: usize, n: usize) -> usize {
        match self {
            WeightFormat::Q8 => gpt2rt::q8::panels_len(k, n),
            WeightFormat::Q4 => gpt2rt::q4::panels_len(k, n),
            WeightFormat::Bf16 => gpt2rt::bf16::panels_len(k, n),
            _ => panels_len(k, n),
        }
    }
}

/// The f32 elements of `w`'s little-endian bytes, read in place (a weight's bytes are
/// usually a slice of the mapped model file: no copy of them is made).
fn f32s(w: &Tensor) -> impl Iterator<Item = f32> + '_ {
    assert_eq!(w.dtype(), crate::ir::DType::F32, "an f32 weight");
    w.bytes()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// `W [k, n]` (f32, row-major) in panel layout.
pub fn pack_panels(w: &Tensor) -> Vec<f32> {
    let (k, n) = (w.shape()[0], w.shape()[1]);
    let mut out = vec![0f32; panels_len(k, n)];
    for (i, v) in f32s(w).enumerate() {
        let (p, c) = (i / n, i % n);
        out[(c / PANEL) * k * PANEL + p * PANEL + c % PANEL] = v;
    }
    out
}

/// The transpose of `W [n, k]` (f32, row-major) in panel layout: `Wᵀ [k, n]` as a Linear
/// weight, for a tied embedding table that is also the LM head. Row `r` of `W` (an embedding)
/// is column `r` of `Wᵀ`: panel `r / PANEL`, element `p · PANEL + r % PANEL` for `p < k`.
pub fn pack_panels_of_transpose(w: &Tensor) -> Vec<f32> {
    let (n, k) = (w.shape()[0], w.shape()[1]);
    let mut out = vec![0f32; panels_len(k, n)];
    for (i, v) in f32s(w).enumerate() {
        let (r, p) = (i / k, i % k);
        out[(r / PANEL) * k * PANEL + r % PANEL + p * PANEL] = v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_hold_every_element_once_and_pad_with_zeros() {
        let (k, n) = (3, 50);
        let w = Tensor::from_vec(vec![k, n], (0..k * n).map(|i| i as f32 + 1.0).collect());
        let p = pack_panels(&w);
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
        assert_eq!(pack_panels_of_transpose(&wt), p);
    }

    #[test]
    fn formats_parse_and_round_to_nearest_even() {
        assert_eq!(WeightFormat::parse("bf16"), Ok(WeightFormat::Bf16));
        assert_eq!(WeightFormat::parse("q8"), Ok(WeightFormat::Q8));
        let unknown = WeightFormat::parse("int4").unwrap_err();
        assert!(unknown.contains("f32, bf16, f16, q8, q4"), "{unknown}");
        for x in [0.0f32, 1.0, -2.5, 0.1, 1e-5, 6e-8, 65504.0] {
            let mut b = [x];
            WeightFormat::Bf16.round_trip(&mut b, 1, 1, false);
            assert!((b[0] - x).abs() <= x.abs() / 256.0, "bf16 {x} -> {}", b[0]);
            let mut h = [x];
            WeightFormat::F16.round_trip(&mut h, 1, 1, false);
            assert!(
                (h[0] - x).abs() <= x.abs() / 2048.0 + 6e-8,
                "f16 {x} -> {}",
                h[0]
            );
        }
        // q8 per column: the largest magnitude is exact, the rest within half a step.
        let mut m = vec![1.0f32, -0.5, 0.25, 2.0, 0.3, -4.0];
        WeightFormat::Q8.round_trip(&mut m, 3, 2, false);
        assert_eq!((m[0], m[5]), (1.0, -4.0));
        assert!((m[1] + 0.5).abs() <= 4.0 / 254.0 && (m[4] - 0.3).abs() <= 1.0 / 254.0);
        // q8 panels: the depth padded to quads of zero weights (byte 128), each column's
        // four rows together, the column's largest magnitude at ±127.
        let mut v = vec![0.0f32; 2 * PANEL];
        (v[1], v[PANEL + 1], v[2]) = (-2.0, 1.0, 3.0); // (p, j): (0, 1), (1, 1), (0, 2)
        let (q, scales) = WeightFormat::Q8.encode_panels(&v, 2);
        let scales: Vec<f32> = scales
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!((q.len(), scales.len()), (4 * PANEL, PANEL));
        assert_eq!((scales[1], scales[2]), (2.0 / 127.0, 3.0 / 127.0));
        assert_eq!(&q[4..8], &[1, 128 + 64, 128, 128]); // column 1: -127, 63.5 -> 64
        assert_eq!(&q[8..12], &[255, 128, 128, 128]);
        assert_eq!(WeightFormat::Q8.panels_len(2, PANEL + 1), 8 * PANEL);
        // Every half value survives f16 -> f32 -> f16.
        for v in 0..=u16::MAX {
            let f = f16_value(v);
            if !f.is_nan() {
                assert_eq!(f16_bits(f), v, "{v:#x}");
            }
        }
        assert_eq!(WeightFormat::F16.encode_panels(&[1.0], 1).0, [0x00, 0x3c]);
        // bf16 panels: the depth padded to pairs, each column's two rows together.
        let b = WeightFormat::Bf16.encode_panels(&[1.0; PANEL], 1).0;
        assert_eq!(
            (b.len(), &b[..6]),
            (4 * PANEL, &[0x80, 0x3f, 0, 0, 0x80, 0x3f][..])
        );
    }

    #[test]
    fn q4_panels_and_round_trip_agree_with_the_runtime() {
        use gpt2rt::q4::{panel_index, scale_index, unit_index, BLOCK};
        let (k, n) = (BLOCK + 5, 3); // a whole block and a short one
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let mut values = vec![0f32; k * PANEL];
        for p in 0..k {
            values[p * PANEL..p * PANEL + n].copy_from_slice(&w[p * n..(p + 1) * n]);
        }
        let (q, scales) = WeightFormat::Q4.encode_panels(&values, k);
        assert_eq!(q.len(), WeightFormat::Q4.panels_len(k, n));
        assert_eq!(scales.len(), WeightFormat::Q4.scales(k, n).unwrap().0);
        // The generated code's weights, unpacked, are the round trip's values.
        let mut rt = w.clone();
        WeightFormat::Q4.round_trip(&mut rt, k, n, false);
        for p in 0..k {
            for j in 0..n {
                let (at, high) = panel_index(k, p, j);
                let nib = if high { q[at] >> 4 } else { q[at] & 15 };
                let s = scales[scale_index(k, p / BLOCK, j)] as i8 as i32;
                let u = gpt2rt::q4::unit(&scales, unit_index(k, j));
                assert_eq!(
                    ((nib as i32 - 8) * s) as f32 * u,
                    rt[p * n + j],
                    "({p}, {j})"
                );
                let step = (s as f32 * u).abs();
                assert!((rt[p * n + j] - w[p * n + j]).abs() <= step / 2.0 * 1.001);
            }
        }
        // Padding rows and columns are zero weights (nibble 8) with zero scales.
        assert_eq!(q[panel_index(k, 2 * BLOCK - 1, 0).0], 0x88);
        assert_eq!(scales[scale_index(k, 0, PANEL - 1)], 0);
        assert_eq!(scales[unit_index(k, PANEL - 1)..][..4], [0; 4]);
        // A transposed table rounds its rows the same way.
        let mut t: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
        WeightFormat::Q4.round_trip(&mut t, n, k, true);
        assert!((0..n * k).all(|i| t[i] == rt[(i % k) * n + i / k]));
        assert_eq!(WeightFormat::parse("q4"), Ok(WeightFormat::Q4));
    }
}
