//! Memory bandwidth of one GPT-2 decode step's matrix-vector products against a plain
//! streaming read of the same bytes. `cargo run --release -p gpt2rt --example decode_bw
//! [threads [width layers]]`: 124M by default (768 12); medium 1024 24, large 1280 36, XL
//! 1600 48.
use gpt2rt::gemm::Activation::Identity;
use std::time::Instant;

mod decode_shapes;

fn main() {
    let (threads, d, shapes) = decode_shapes::from_args();
    let mats: Vec<Vec<f32>> = shapes.iter().map(|&(k, n)| vec![0.5f32; k * n]).collect();
    let head = vec![0.25f32; 50257 * d];
    let bytes = (mats.iter().map(Vec::len).sum::<usize>() + head.len()) * 4;
    let x = vec![1.0f32; 4 * d];
    let mut y = vec![0f32; 50257];
    // The same matrices in `gemm::linear`'s column-panel layout (contents do not matter).
    let nr = gpt2rt::gemm::NR;
    let panels: Vec<Vec<f32>> = shapes
        .iter()
        .map(|&(k, n)| vec![0.5f32; n.div_ceil(nr) * k * nr])
        .collect();
    let step_panels = |y: &mut [f32]| {
        for (m, &(k, n)) in panels.iter().zip(&shapes) {
            gpt2rt::gemm::linear(&x[..k], 1, k, m, None, Identity, &mut y[..n], n);
        }
        gpt2rt::gemv::gemv_t(1.0, &x[..d], &head, d, 0.0, y);
    };
    let step = |y: &mut [f32]| {
        for (m, &(k, n)) in mats.iter().zip(&shapes) {
            gpt2rt::gemv::gemv(1.0, &x[..k], m, n, 0.0, &mut y[..n]);
        }
        gpt2rt::gemv::gemv_t(1.0, &x[..d], &head, d, 0.0, y);
    };
    let read = || {
        let mut total = 0f32;
        for m in mats.iter().map(|m| &m[..]).chain([&head[..]]) {
            let chunk = m.len().div_ceil(threads);
            let mut sums = vec![0f32; threads];
            gpt2rt::for_each_part(&mut sums, 1, |i, s| {
                let part = &m[i * chunk..((i + 1) * chunk).min(m.len())];
                let mut acc = [0f32; 16];
                for c in part.chunks_exact(16) {
                    for j in 0..16 {
                        acc[j] += c[j];
                    }
                }
                s[0] = acc.iter().sum();
            });
            total += sums.iter().sum::<f32>();
        }
        total
    };
    for _ in 0..2 {
        step(&mut y);
        std::hint::black_box(read());
    }
    let reps = 20;
    let t = Instant::now();
    for _ in 0..reps {
        step(&mut y);
    }
    let gemv = t.elapsed().as_secs_f64() / reps as f64;
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(read());
    }
    let plain = t.elapsed().as_secs_f64() / reps as f64;
    step_panels(&mut y);
    let t = Instant::now();
    for _ in 0..reps {
        step_panels(&mut y);
    }
    let pan = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{threads} threads, {:.0} MB: gemv step {:.2} ms ({:.1} GB/s); panel step {:.2} ms ({:.1} GB/s); plain read {:.2} ms ({:.1} GB/s)",
        bytes as f64 / 1e6,
        gemv * 1e3,
        bytes as f64 / gemv / 1e9,
        pan * 1e3,
        bytes as f64 / pan / 1e9,
        plain * 1e3,
        bytes as f64 / plain / 1e9
    );
}
