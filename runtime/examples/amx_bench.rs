//! The Linears of GPT-2 124M (every matrix of a forward pass, LM head included) over m rows
//! in bf16 and q8, with AMX tiles and without, alternated: what the tile kernels gain for
//! prompts (m = 128), the full forward (m = 1024) and batched steps (m = 1 to 16).
//! `cargo run --release -p gpt2rt --example amx_bench [threads] [rounds] [m ...]`
use gpt2rt::elem::{Bf16, Q8};
use gpt2rt::gemm::Activation::Identity;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut ms: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    if ms.is_empty() {
        ms = vec![1, 8, 16, 128, 1024];
    }
    gpt2rt::set_threads(threads);
    if !gpt2rt::amx::supported() {
        println!("this CPU (or OS) has no AMX tiles: nothing to compare");
        return;
    }
    let nr = gpt2rt::gemm::NR;
    let mut shapes: Vec<(usize, usize)> = (0..12)
        .flat_map(|_| [(768, 2304), (768, 768), (768, 3072), (3072, 768)])
        .collect();
    shapes.push((768, 50257));
    let q8: Vec<Vec<Q8>> = shapes
        .iter()
        .map(|&(k, n)| {
            (0..gpt2rt::q8::panels_len(k, n))
                .map(|i| Q8((i * 7 % 255) as u8 + 1))
                .collect()
        })
        .collect();
    let bf16: Vec<Vec<Bf16>> = shapes
        .iter()
        .map(|&(k, n)| {
            (0..gpt2rt::bf16::panels_len(k, n))
                .map(|i| Bf16::from_f32((i % 89) as f32 * 0.01 - 0.4))
                .collect()
        })
        .collect();
    let scales = vec![0.01f32; 50257usize.div_ceil(nr) * nr];
    let mmax = *ms.iter().max().unwrap();
    let x: Vec<f32> = (0..3072 * mmax)
        .map(|i| (i % 97) as f32 * 0.01 - 0.3)
        .collect();
    let mut y = vec![0f32; mmax * 50257];
    let flops: f64 = shapes.iter().map(|&(k, n)| 2.0 * (k * n) as f64).sum();
    println!(
        "{} thread(s), best of {rounds} alternated rounds, all {} Linears of a 124M pass",
        threads,
        shapes.len()
    );
    for &m in &ms {
        for format in ["bf16", "q8"] {
            let pass = |y: &mut [f32]| {
                for (i, &(k, n)) in shapes.iter().enumerate() {
                    let (x, y) = (&x[..m * k], &mut y[..m * n]);
                    if format == "q8" {
                        let sc = &scales[..n.div_ceil(nr) * nr];
                        gpt2rt::q8::linear(x, m, k, &q8[i], sc, None, Identity, y, n)
                    } else {
                        gpt2rt::bf16::linear(x, m, k, &bf16[i], None, Identity, y, n)
                    }
                }
            };
            let mut best = [f64::MAX; 2];
            for _ in 0..rounds {
                for (on, best) in [true, false].into_iter().zip(best.iter_mut()) {
                    gpt2rt::amx::set_enabled(on);
                    let t = Instant::now();
                    pass(&mut y);
                    *best = best.min(t.elapsed().as_secs_f64());
                }
            }
            println!(
                "{format:>4} m={m:<5} AMX {:9.2} ms ({:6.0} GFLOP/s)   vector {:9.2} ms ({:6.0} GFLOP/s)   AMX gain {:.2}x",
                best[0] * 1e3,
                flops * m as f64 / best[0] / 1e9,
                best[1] * 1e3,
                flops * m as f64 / best[1] / 1e9,
                best[1] / best[0]
            );
        }
    }
    gpt2rt::amx::set_enabled(true);
}
