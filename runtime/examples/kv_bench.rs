//! Attention of one decode step against each cache format: GPT-2 124M's 12 layers of 12
//! heads × 64 channels, one query row at position `ctx − 1` per layer, every layer's cache
//! its own memory (66 MB of f32 at context 900, so it streams from DRAM as in a real step).
//! Formats alternate within each repetition; the medians are printed.
//!
//! `cargo run --release -p gpt2rt --example kv_bench [threads] [ctx] [reps]`; `KV_ONLY=q8`
//! (or another format) times that format alone, for a profiler; `KV_ISA=avx2` (or `scalar`)
//! runs the kernels of that ISA.

use gpt2rt::attention::attention_kv_on;
use gpt2rt::cpu::Isa;
use gpt2rt::kernels::{AttentionDims, HeadLayout};
use gpt2rt::kv::{q8_block, KvCache, KvFormat};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let threads = args.first().copied().unwrap_or(2);
    let ctx = args.get(1).copied().unwrap_or(900);
    let reps = args.get(2).copied().unwrap_or(30);
    gpt2rt::set_threads(threads);
    let (layers, heads, d) = (12, 12, 64);
    let len = heads * ctx * d;
    let mut seed = 7u64;
    let mut rand = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    };
    // Queries and output `[ctx, heads·d]`; the step computes the last row.
    let q = rand(ctx * heads * d);
    let dense = HeadLayout::dense(heads, ctx, d);
    let dims = AttentionDims {
        bh: heads,
        heads,
        q_rows: ctx,
        kv_rows: ctx,
        d,
        scale: 0.125,
        causal: true,
        q: HeadLayout {
            offset: 0,
            batch: 0,
            head: d,
            row: heads * d,
            col: 1,
        },
        k: dense,
        v: dense,
        out: HeadLayout {
            offset: 0,
            batch: 0,
            head: d,
            row: heads * d,
            col: 1,
        },
    };
    let strides = [(ctx * d) as isize, d as isize, 1];
    let isa = match std::env::var("KV_ISA").as_deref() {
        Ok("scalar") => Isa::Scalar,
        Ok("avx2") => Isa::Avx2,
        Ok("avx512") | Err(_) => gpt2rt::cpu::detected(),
        Ok(other) => panic!("KV_ISA: scalar, avx2 or avx512, not {other}"),
    };
    let formats: Vec<KvFormat> = match std::env::var("KV_ONLY") {
        Ok(f) => vec![KvFormat::parse(&f).unwrap()],
        Err(_) => KvFormat::ALL.to_vec(),
    };
    // Per format, per layer: (keys, values).
    let caches: Vec<Vec<(KvCache, KvCache)>> = formats
        .iter()
        .map(|&f| {
            (0..layers)
                .map(|_| {
                    let mut k = KvCache::new(f, len, q8_block(d));
                    let mut v = KvCache::new(f, len, q8_block(d));
                    k.store(0..len, &rand(len), 0, 0, &strides, &[heads, ctx, d]);
                    v.store(0..len, &rand(len), 0, 0, &strides, &[heads, ctx, d]);
                    (k, v)
                })
                .collect()
        })
        .collect();
    let mut out = vec![0f32; ctx * heads * d];
    let mut times = vec![Vec::new(); formats.len()];
    for _ in 0..reps {
        for (f, layers) in caches.iter().enumerate() {
            let t = Instant::now();
            for (k, v) in layers {
                attention_kv_on(
                    isa,
                    &q,
                    k.view(0..len),
                    v.view(0..len),
                    &mut out,
                    dims,
                    ctx - 1,
                    1,
                    ctx - 1,
                );
            }
            times[f].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!("attention of one step, {layers} layers x {heads} heads x {d}, context {ctx}, {threads} thread(s), {isa:?}, median of {reps}:");
    for (f, t) in formats.iter().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        let bytes = 2.0 * (layers * len) as f64 * f.bytes_per_value(d);
        let ms = t[t.len() / 2];
        println!(
            "  {:>4}: {ms:.3} ms ({:.1} MB of cache, {:.1} GB/s)",
            f.name(),
            bytes / 1e6,
            bytes / ms / 1e6
        );
    }
}
