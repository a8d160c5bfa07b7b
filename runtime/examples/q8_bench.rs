//! The int8 Linear (`gpt2rt::q8`) on GPT-2 124M's decode shapes (one row through every
//! matrix of a step, LM head included) and on a prefill-sized product, per ISA.
//! `cargo run --release -p gpt2rt --example q8_bench [threads]`
use gpt2rt::elem::Q8;
use gpt2rt::gemv::Isa;
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    gpt2rt::set_threads(threads);
    let nr = gpt2rt::gemm::NR;
    let mut shapes: Vec<(usize, usize)> = (0..12)
        .flat_map(|_| [(768, 2304), (768, 768), (768, 3072), (3072, 768)])
        .collect();
    shapes.push((768, 50257));
    let mats: Vec<Vec<Q8>> = shapes
        .iter()
        .map(|&(k, n)| vec![Q8(130); gpt2rt::q8::panels_len(k, n)])
        .collect();
    let scales = vec![0.01f32; 50257usize.div_ceil(nr) * nr];
    let bytes: usize = mats.iter().map(Vec::len).sum();
    let x: Vec<f32> = (0..3072 * 128)
        .map(|i| (i % 97) as f32 * 0.01 - 0.3)
        .collect();
    let mut y = vec![0f32; 128 * 50257];
    for &isa in gpt2rt::gemv::available() {
        if isa == Isa::Scalar {
            continue;
        }
        let step = |y: &mut [f32], m: usize| {
            for (w, &(k, n)) in mats.iter().zip(&shapes) {
                let sc = &scales[..n.div_ceil(nr) * nr];
                gpt2rt::q8::linear_on(isa, &x[..m * k], m, k, w, sc, None, &mut y[..m * n], n);
            }
        };
        step(&mut y, 1);
        let reps = 20;
        let t = Instant::now();
        for _ in 0..reps {
            step(&mut y, 1);
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "{isa:?} decode step: {:.2} ms, {:.1} GB/s of int8 weights ({} MB)",
            s * 1e3,
            bytes as f64 / s / 1e9,
            bytes / 1_000_000
        );
        let m = 128;
        let t = Instant::now();
        step(&mut y, m);
        let s = t.elapsed().as_secs_f64();
        let flops: f64 = shapes.iter().map(|&(k, n)| 2.0 * (m * k * n) as f64).sum();
        println!(
            "{isa:?} {m} rows: {:.1} ms, {:.0} GOP/s",
            s * 1e3,
            flops / s / 1e9
        );
    }
}
