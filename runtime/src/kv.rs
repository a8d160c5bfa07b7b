//! The attention cache's storage formats (`GPT2_KV`): the keys and values attention reads
//! on every step, kept as f32 or narrower. A narrow cache is written as the step's rows are
//! computed (`KvCache::store`, rounding each value once) and widened as attention reads it:
//! in registers by a decoding step's kernels where they can (`attention::dots64`), else a
//! stretch of rows at a time into L1 (`KvRef::values`); attention then computes in f32
//! exactly as over an f32 cache of the rounded values. Decoding at long context reads the whole cache
//! every step, so halving or quartering it cuts what a step streams from memory.
//!
//! Storage is indexed like the f32 cache block it mirrors: value `i` of the block is value
//! `i` of the store, so the generated code addresses both with the same buffer ranges.

use crate::elem::{Bf16, F16};
use std::ops::Range;

/// How the attention cache stores its values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvFormat {
    /// f32, exactly the values computed (the default).
    #[default]
    F32,
    /// IEEE half precision, nearest even.
    F16,
    /// bfloat16, nearest even.
    Bf16,
    /// int8 with an f32 scale per block of a head's channels (`q8_block`), rounded as the
    /// int8 kernels round activations (`q8::quantize_block`).
    Q8,
}

impl KvFormat {
    /// Every format, f32 first.
    pub const ALL: [KvFormat; 4] = [KvFormat::F32, KvFormat::F16, KvFormat::Bf16, KvFormat::Q8];

    /// The name `GPT2_KV` and the CLIs use.
    pub fn name(self) -> &'static str {
        match self {
            KvFormat::F32 => "f32",
            KvFormat::F16 => "f16",
            KvFormat::Bf16 => "bf16",
            KvFormat::Q8 => "q8",
        }
    }

    /// A format by name (empty: f32).
    pub fn parse(s: &str) -> Result<KvFormat, String> {
        match s.trim() {
            "" | "f32" => Ok(KvFormat::F32),
            "f16" => Ok(KvFormat::F16),
            "bf16" => Ok(KvFormat::Bf16),
            "q8" => Ok(KvFormat::Q8),
            other => Err(format!(
                "unknown attention-cache format '{other}' (expected f32, f16, bf16 or q8)"
            )),
        }
    }

    /// Bytes a cached value takes, scales included, for heads of `head_dim` channels.
    pub fn bytes_per_value(self, head_dim: usize) -> f64 {
        match self {
            KvFormat::F32 => 4.0,
            KvFormat::F16 | KvFormat::Bf16 => 2.0,
            KvFormat::Q8 => 1.0 + 4.0 / q8_block(head_dim) as f64,
        }
    }
}

/// Values per scale of a q8 cache whose heads have `head_dim` channels: 32 (as ggml's
/// q8_0), or the whole head when 32 does not divide it. A block never straddles two heads
/// or two positions.
pub const fn q8_block(head_dim: usize) -> usize {
    if head_dim.is_multiple_of(32) {
        32
    } else {
        head_dim
    }
}

/// One sequence's attention cache: the model's `CACHE_LEN` values in a `KvFormat`
/// (`Gpt2Model::new_cache` makes one of the right format and size).
#[derive(Clone, Debug, PartialEq)]
pub enum KvCache {
    /// f32 values.
    F32(Vec<f32>),
    /// Half-precision values.
    F16(Vec<F16>),
    /// bfloat16 values.
    Bf16(Vec<Bf16>),
    /// int8 values, `q[i] · scales[i / block]`.
    Q8 {
        /// The values on their block's int8 grid.
        q: Vec<i8>,
        /// One scale per `block` values.
        scales: Vec<f32>,
        /// Values per scale (`q8_block`).
        block: usize,
    },
}

impl KvCache {
    /// A cache of `len` zeros; `block` is the q8 block (`q8_block`), ignored otherwise.
    pub fn new(format: KvFormat, len: usize, block: usize) -> KvCache {
        match format {
            KvFormat::F32 => KvCache::F32(vec![0.0; len]),
            KvFormat::F16 => KvCache::F16(vec![F16(0); len]),
            KvFormat::Bf16 => KvCache::Bf16(vec![Bf16(0); len]),
            KvFormat::Q8 => {
                assert!(
                    block > 0 && len.is_multiple_of(block),
                    "q8 cache of {len} values in blocks of {block}"
                );
                KvCache::Q8 {
                    q: vec![0; len],
                    scales: vec![0.0; len / block],
                    block,
                }
            }
        }
    }

    /// The storage format.
    pub fn format(&self) -> KvFormat {
        match self {
            KvCache::F32(_) => KvFormat::F32,
            KvCache::F16(_) => KvFormat::F16,
            KvCache::Bf16(_) => KvFormat::Bf16,
            KvCache::Q8 { .. } => KvFormat::Q8,
        }
    }

    /// Values held.
    pub fn len(&self) -> usize {
        match self {
            KvCache::F32(v) => v.len(),
            KvCache::F16(v) => v.len(),
            KvCache::Bf16(v) => v.len(),
            KvCache::Q8 { q, .. } => q.len(),
        }
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of storage, scales included.
    pub fn bytes(&self) -> usize {
        match self {
            KvCache::F32(v) => 4 * v.len(),
            KvCache::F16(v) => 2 * v.len(),
            KvCache::Bf16(v) => 2 * v.len(),
            KvCache::Q8 { q, scales, .. } => q.len() + 4 * scales.len(),
        }
    }

    /// Values `range` (a q8 range starts and ends on block boundaries).
    pub fn view(&self, range: Range<usize>) -> KvRef<'_> {
        match self {
            KvCache::F32(v) => KvRef::F32(&v[range]),
            KvCache::F16(v) => KvRef::F16(&v[range]),
            KvCache::Bf16(v) => KvRef::Bf16(&v[range]),
            KvCache::Q8 { q, scales, block } => {
                let b = *block;
                assert!(
                    range.start.is_multiple_of(b) && range.end.is_multiple_of(b),
                    "q8 cache range {range:?} is not on blocks of {b}"
                );
                KvRef::Q8 {
                    q: &q[range.clone()],
                    scales: &scales[range.start / b..range.end / b],
                    block: b,
                }
            }
        }
    }

    /// Writes a strided block of f32 values into values `at` of the cache: element
    /// `(i₀, …, iₙ)` of `shape` is `src[src_offset + Σ i·strides]` and goes to
    /// `at.start + dst_offset + Σ i·strides`, rounded to the format. Source and cache share
    /// the strides (the cache mirrors the f32 buffer the values were computed in). The last
    /// axis must be contiguous (stride 1) and, for q8, whole blocks: each block's scale
    /// comes from its own values alone, so rows written at different times never mix.
    pub fn store(
        &mut self,
        at: Range<usize>,
        src: &[f32],
        src_offset: usize,
        dst_offset: usize,
        strides: &[isize],
        shape: &[usize],
    ) {
        if let KvCache::F32(v) = self {
            let dst = &mut v[at];
            return crate::copy::copy_strided(
                src, src_offset, strides, dst, dst_offset, strides, shape,
            );
        }
        let Some((&n, outer)) = shape.split_last() else {
            return;
        };
        if n == 0 || outer.contains(&0) {
            return;
        }
        assert!(
            strides.len() == shape.len() && strides[shape.len() - 1] == 1,
            "a narrow cache is written along a contiguous last axis"
        );
        assert!(
            shape.len() <= crate::layout::MAX_RANK,
            "rank {} above {}",
            shape.len(),
            crate::layout::MAX_RANK
        );
        // On the stack: a decode step allocates nothing.
        let mut index = [0usize; crate::layout::MAX_RANK];
        let index = &mut index[..outer.len()];
        loop {
            let off: isize = index
                .iter()
                .zip(strides)
                .map(|(&i, &s)| i as isize * s)
                .sum();
            let s0 = (src_offset as isize + off) as usize;
            let d0 = at.start + (dst_offset as isize + off) as usize;
            assert!(d0 + n <= at.end, "cache store out of its range");
            self.store_run(&src[s0..s0 + n], d0);
            // The next index of the outer axes, last fastest.
            let mut axis = outer.len();
            loop {
                if axis == 0 {
                    return;
                }
                axis -= 1;
                index[axis] += 1;
                if index[axis] < outer[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
    }

    /// Rounds `x` into values `at..at + x.len()`.
    fn store_run(&mut self, x: &[f32], at: usize) {
        match self {
            KvCache::F32(v) => v[at..at + x.len()].copy_from_slice(x),
            KvCache::F16(v) => {
                for (o, &x) in v[at..at + x.len()].iter_mut().zip(x) {
                    *o = F16::from_f32(x);
                }
            }
            KvCache::Bf16(v) => {
                for (o, &x) in v[at..at + x.len()].iter_mut().zip(x) {
                    *o = Bf16::from_f32(x);
                }
            }
            KvCache::Q8 { q, scales, block } => {
                let b = *block;
                assert!(
                    at.is_multiple_of(b) && x.len().is_multiple_of(b),
                    "q8 cache rows of {} values at {at} are not whole blocks of {b}",
                    x.len()
                );
                let n = x.len();
                let isa = crate::cpu::detected();
                round_q8_with(
                    isa,
                    x,
                    &mut q[at..at + n],
                    &mut scales[at / b..(at + n) / b],
                    b,
                );
            }
        }
    }
}

crate::cpu::isa_kernel!(
    /// `round_q8` compiled for the ISA (its rounding one `vroundps` per eight values).
    round_q8_with => round_q8(x: &[f32], q: &mut [i8], scales: &mut [f32], block: usize)
);

/// `x` in blocks of `block` onto their int8 grids, as the int8 kernels round activations.
#[inline(always)]
fn round_q8(x: &[f32], q: &mut [i8], scales: &mut [f32], block: usize) {
    for ((xb, qb), s) in x
        .chunks_exact(block)
        .zip(q.chunks_exact_mut(block))
        .zip(scales)
    {
        (*s, _) = crate::q8::quantize_block(xb, qb);
    }
}

/// A stretch of an attention cache as attention reads it.
#[derive(Clone, Copy, Debug)]
pub enum KvRef<'a> {
    /// f32 values (read in place).
    F32(&'a [f32]),
    /// Half-precision values.
    F16(&'a [F16]),
    /// bfloat16 values.
    Bf16(&'a [Bf16]),
    /// int8 values with a scale per `block`.
    Q8 {
        /// The values on their block's grid.
        q: &'a [i8],
        /// One scale per block.
        scales: &'a [f32],
        /// Values per scale.
        block: usize,
    },
}

impl<'a> From<&'a [f32]> for KvRef<'a> {
    fn from(v: &'a [f32]) -> KvRef<'a> {
        KvRef::F32(v)
    }
}

impl<'a> From<&'a Vec<f32>> for KvRef<'a> {
    fn from(v: &'a Vec<f32>) -> KvRef<'a> {
        KvRef::F32(v)
    }
}

impl<'a> KvRef<'a> {
    /// Values held.
    pub fn len(&self) -> usize {
        match self {
            KvRef::F32(v) => v.len(),
            KvRef::F16(v) => v.len(),
            KvRef::Bf16(v) => v.len(),
            KvRef::Q8 { q, .. } => q.len(),
        }
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values themselves when they are f32.
    pub fn as_f32(&self) -> Option<&'a [f32]> {
        match self {
            KvRef::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The alignment a run of `values` needs: the q8 block, else 1.
    pub fn block(&self) -> usize {
        match self {
            KvRef::Q8 { block, .. } => *block,
            _ => 1,
        }
    }

    /// `rows` rows of `n` values, row `r` at `at + r·stride`, as f32 side by side (`r·n`):
    /// widened into `buf` (at least `rows·n` long), in one run when they are contiguous.
    #[inline(always)]
    pub fn rows<'b>(
        &'b self,
        at: usize,
        stride: usize,
        rows: usize,
        n: usize,
        buf: &'b mut [f32],
    ) -> &'b [f32] {
        if stride == n {
            return self.values(at, rows * n, buf);
        }
        for (r, out) in buf[..rows * n].chunks_exact_mut(n).enumerate() {
            if let Some(x) = self.as_f32() {
                out.copy_from_slice(&x[at + r * stride..][..n]);
            } else {
                self.values(at + r * stride, n, out);
            }
        }
        &buf[..rows * n]
    }

    /// Values `at..at + n` as f32: the stored values when they are f32, else widened into
    /// `buf` (at least `n` long). A q8 run starts and ends on block boundaries.
    #[inline(always)]
    pub fn values<'b>(&'b self, at: usize, n: usize, buf: &'b mut [f32]) -> &'b [f32] {
        match *self {
            KvRef::F32(v) => &v[at..at + n],
            KvRef::F16(v) => {
                crate::elem::widen_f16(&v[at..at + n], &mut buf[..n]);
                &buf[..n]
            }
            KvRef::Bf16(v) => {
                for (o, x) in buf[..n].iter_mut().zip(&v[at..at + n]) {
                    *o = x.to_f32();
                }
                &buf[..n]
            }
            KvRef::Q8 { q, scales, block } => {
                debug_assert!(at.is_multiple_of(block) && n.is_multiple_of(block));
                let out = &mut buf[..n];
                for (i, (o, qb)) in out
                    .chunks_exact_mut(block)
                    .zip(q[at..at + n].chunks_exact(block))
                    .enumerate()
                {
                    let s = scales[at / block + i];
                    for (o, &q) in o.iter_mut().zip(qb) {
                        *o = q as f32 * s;
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_round_once_and_views_read_back_the_rounded_values() {
        // [heads 2, rows 4, d 64], rows 1..3 written.
        let (heads, rows, d) = (2, 4, 64);
        let len = heads * rows * d;
        let src: Vec<f32> = (0..len)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let strides = [(rows * d) as isize, d as isize, 1];
        for format in KvFormat::ALL {
            let block = q8_block(d);
            let mut c = KvCache::new(format, len + 128, block);
            assert_eq!(c.format(), format);
            c.store(128..128 + len, &src, d, d, &strides, &[heads, 2, d]);
            let view = c.view(128..128 + len);
            let mut buf = vec![0f32; d];
            for h in 0..heads {
                for r in 0..rows {
                    let at = h * rows * d + r * d;
                    let got = view.values(at, d, &mut buf).to_vec();
                    let x = &src[at..at + d];
                    let want: Vec<f32> = if !(1..3).contains(&r) {
                        vec![0.0; d]
                    } else {
                        match format {
                            KvFormat::F32 => x.to_vec(),
                            KvFormat::F16 => x.iter().map(|&v| F16::from_f32(v).widen()).collect(),
                            KvFormat::Bf16 => {
                                x.iter().map(|&v| Bf16::from_f32(v).to_f32()).collect()
                            }
                            KvFormat::Q8 => {
                                let mut out = Vec::new();
                                for xb in x.chunks(block) {
                                    let mut q = vec![0i8; block];
                                    let (s, _) = crate::q8::quantize_block(xb, &mut q);
                                    out.extend(q.iter().map(|&q| q as f32 * s));
                                }
                                out
                            }
                        }
                    };
                    assert_eq!(got, want, "{format:?} head {h} row {r}");
                    if (1..3).contains(&r) {
                        let err = got
                            .iter()
                            .zip(x)
                            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                        let tol = match format {
                            KvFormat::F32 => 0.0,
                            KvFormat::F16 => 1e-3,
                            KvFormat::Bf16 => 4e-3,
                            KvFormat::Q8 => 0.66 / 127.0,
                        };
                        assert!(err <= tol, "{format:?}: error {err}");
                    }
                }
            }
        }
    }

    #[test]
    fn q8_blocks_are_32_values_or_a_whole_head() {
        assert_eq!(q8_block(64), 32);
        assert_eq!(q8_block(16), 16);
        assert_eq!(q8_block(48), 48);
        assert_eq!(KvFormat::Q8.bytes_per_value(64), 1.125);
        assert_eq!(KvFormat::parse("bf16"), Ok(KvFormat::Bf16));
        assert!(KvFormat::parse("q4").is_err());
    }
}
