//! The int8 and bf16 Linears (`gpt2rt::q8`, `gpt2rt::bf16`) and the f32 one over stored
//! panels (`gemm::linear`) on GPT-2 124M's decode shapes (one row through every matrix of a
//! step, LM head included) and on 128 rows (a prompt), per ISA.
//! `cargo run --release -p gpt2rt --example formats_bench [threads [width layers [formats]]]`:
//! 124M by default (768 12; XL is 1600 48), formats `q8,bf16,f32` by default.
use gpt2rt::elem::{Bf16, Q8};
use gpt2rt::gemm::Activation::Identity;
use gpt2rt::gemv::Isa;
use std::time::Instant;

mod decode_shapes;

fn main() {
    let (_, d, mut shapes) = decode_shapes::from_args();
    let nr = gpt2rt::gemm::NR;
    shapes.push((d, 50257));
    let formats = std::env::args().nth(4).unwrap_or("q8,bf16,f32".into());
    // Only the formats asked for are allocated (XL's f32 matrices alone are 6.2 GB).
    let want = |f: &str| formats.split(',').any(|g| g == f);
    let mats: Vec<Vec<Q8>> = shapes
        .iter()
        .filter(|_| want("q8"))
        .map(|&(k, n)| vec![Q8(130); gpt2rt::q8::panels_len(k, n)])
        .collect();
    let scales = vec![0.01f32; 50257usize.div_ceil(nr) * nr];
    let x: Vec<f32> = (0..4 * d * 128)
        .map(|i| (i % 97) as f32 * 0.01 - 0.3)
        .collect();
    let mut y = vec![0f32; 128 * 50257];
    let bf: Vec<Vec<Bf16>> = shapes
        .iter()
        .filter(|_| want("bf16"))
        .map(|&(k, n)| vec![Bf16(0x3f00); gpt2rt::bf16::panels_len(k, n)])
        .collect();
    let f: Vec<Vec<f32>> = shapes
        .iter()
        .filter(|_| want("f32"))
        .map(|&(k, n)| vec![0.5f32; n.div_ceil(nr) * k * nr])
        .collect();
    let flops = |m: usize| -> f64 { shapes.iter().map(|&(k, n)| 2.0 * (m * k * n) as f64).sum() };
    for &isa in gpt2rt::gemv::available() {
        if isa == Isa::Scalar {
            continue;
        }
        for format in formats.split(',') {
            let step = |y: &mut [f32], m: usize| {
                for (i, &(k, n)) in shapes.iter().enumerate() {
                    let (x, y) = (&x[..m * k], &mut y[..m * n]);
                    match format {
                        "q8" => {
                            let sc = &scales[..n.div_ceil(nr) * nr];
                            gpt2rt::q8::linear_on(isa, x, m, k, &mats[i], sc, None, Identity, y, n)
                        }
                        "bf16" => {
                            gpt2rt::bf16::linear_on(isa, x, m, k, &bf[i], None, Identity, y, n)
                        }
                        _ => gpt2rt::gemm::linear_on(isa, x, m, k, &f[i], None, Identity, y, n),
                    }
                }
            };
            let bytes: usize = shapes.iter().map(|&(k, n)| k * n).sum::<usize>()
                * match format {
                    "q8" => 1,
                    "bf16" => 2,
                    _ => 4,
                };
            step(&mut y, 1);
            let reps = 10;
            let t = Instant::now();
            for _ in 0..reps {
                step(&mut y, 1);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            let m = 128;
            let t = Instant::now();
            step(&mut y, m);
            let sm = t.elapsed().as_secs_f64();
            println!(
                "{isa:?} {format:>4}: decode step {:.2} ms ({:.1} GB/s of {} MB); {m} rows {:.1} ms ({:.0} GOP/s)",
                s * 1e3,
                bytes as f64 / s / 1e9,
                bytes / 1_000_000,
                sm * 1e3,
                flops(m) / sm / 1e9
            );
        }
    }
}
