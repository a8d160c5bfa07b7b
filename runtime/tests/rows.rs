//! A Linear's rows do not depend on each other: row r of an m-row product is bit for bit
//! the product of row r alone, in every weight format, on every ISA this CPU has, at 1 and 2
//! threads. Batched steps stack the rows of several sequences, so this is what makes a
//! sequence's text independent of what else is in the batch.

use gpt2rt::cpu::{available, Isa};
use gpt2rt::elem::F16;
use gpt2rt::layout::NR;
use gpt2rt::linear::Activation;

fn rand_vec(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A Linear in one format: `linear(isa, x, m, y)`.
type Linear<'a> = &'a dyn Fn(Isa, &[f32], usize, &mut [f32]);

/// Runs `linear` for every m up to 11 and checks each row against m = 1.
fn check(name: &str, k: usize, n: usize, linear: Linear) {
    let mut seed = 3;
    let x = rand_vec(11 * k, &mut seed);
    for &isa in available() {
        for threads in [1, 2] {
            gpt2rt::set_threads(threads);
            let alone: Vec<Vec<f32>> = (0..11)
                .map(|r| {
                    let mut y = vec![f32::NAN; n];
                    linear(isa, &x[r * k..(r + 1) * k], 1, &mut y);
                    y
                })
                .collect();
            for m in 2..=11 {
                let mut y = vec![f32::NAN; m * n];
                linear(isa, &x[..m * k], m, &mut y);
                for (r, want) in alone.iter().take(m).enumerate() {
                    let got = &y[r * n..(r + 1) * n];
                    assert!(
                        got.iter()
                            .zip(want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{name} {isa:?} {threads} thread(s): row {r} of {m} differs from alone"
                    );
                }
            }
        }
    }
}

#[test]
fn linear_rows_are_independent_in_every_format() {
    for &(k, n) in &[(64usize, 100usize), (130, 48), (768, 200), (33, 7)] {
        let mut seed = 9;
        let w = rand_vec(n.div_ceil(NR) * k * NR, &mut seed);
        let b = rand_vec(n, &mut seed);
        check("f32", k, n, &|isa, x, m, y| {
            gpt2rt::gemm::linear_on(isa, x, m, k, &w, Some(&b), Activation::Gelu, y, n)
        });
        let h: Vec<F16> = w.iter().map(|&v| F16::from_f32(v)).collect();
        check("f16", k, n, &|isa, x, m, y| {
            gpt2rt::gemm::linear_on(isa, x, m, k, &h, Some(&b), Activation::Identity, y, n)
        });
        let wk: Vec<f32> = rand_vec(k * n, &mut seed);
        let bf = gpt2rt::bf16::pack(&wk, k, n);
        check("bf16", k, n, &|isa, x, m, y| {
            gpt2rt::bf16::linear_on(isa, x, m, k, &bf, Some(&b), Activation::Identity, y, n)
        });
        let q: Vec<i8> = wk.iter().map(|v| (v * 127.0).round() as i8).collect();
        let qp = gpt2rt::q8::pack(&q, k, n);
        let scales: Vec<f32> = (0..n.div_ceil(NR) * NR)
            .map(|j| 0.01 + 0.001 * (j % 7) as f32)
            .collect();
        check("q8", k, n, &|isa, x, m, y| {
            gpt2rt::q8::linear_on(isa, x, m, k, &qp, &scales, Some(&b), Activation::Gelu, y, n)
        });
    }
}
