//! GFLOP/s of the packed AVX-512 GEMM against matrixmultiply on GPT-2's shapes.
//! `cargo run --release -p gpt2rt --example gemm_bench [threads]`
use gpt2rt::gemm::Activation::{Gelu, Identity};
use gpt2rt::kernels::Layout;
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    gpt2rt::set_threads(threads);
    println!(
        "threads {threads}, packed kernel supported: {}",
        gpt2rt::gemm::supported()
    );
    for &(m, k, n) in &[
        (128, 768, 2304),
        (128, 3072, 768),
        (1024, 768, 3072),
        (1024, 768, 50257),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0f32; m * n];
        let la = Layout {
            row_stride: k as isize,
            col_stride: 1,
        };
        let lb = Layout {
            row_stride: n as isize,
            col_stride: 1,
        };
        let flops = 2.0 * (m * k * n) as f64;
        let reps = (2e10 / flops).clamp(1.0, 50.0) as usize;
        let time = |f: &mut dyn FnMut()| {
            f();
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        };
        let ours = time(&mut || {
            gpt2rt::gemm::sgemm(1.0, &a, 0, la, &b, 0, lb, 0.0, &mut c, m, k, n, true)
        });
        let nr = gpt2rt::gemm::NR;
        let panels = vec![0.01f32; n.div_ceil(nr) * k * nr];
        let lin = time(&mut || gpt2rt::gemm::linear(&a, m, k, &panels, None, Identity, &mut c, n));
        println!(
            "{m:5}x{k:5}x{n:6}: linear (stored panels) {:7.2} ms {:6.1} GFLOP/s",
            lin * 1e3,
            flops / lin / 1e9
        );
        // The MLP's c_fc: GELU fused into the Linear, or a pass of its own after it.
        let fused = time(&mut || gpt2rt::gemm::linear(&a, m, k, &panels, None, Gelu, &mut c, n));
        let mut g = vec![0f32; m * n];
        let apart = time(&mut || {
            gpt2rt::gemm::linear(&a, m, k, &panels, None, Identity, &mut c, n);
            gpt2rt::kernels::gelu_slice(&c, &mut g);
        });
        println!(
            "{m:5}x{k:5}x{n:6}: linear + GELU fused {:7.2} ms, then GELU apart {:7.2} ms",
            fused * 1e3,
            apart * 1e3
        );
        let mm = time(&mut || {
            let rows = m.div_ceil(threads);
            gpt2rt::for_each_part(&mut c, rows * n, |i, part| unsafe {
                matrixmultiply::sgemm(
                    part.len() / n,
                    k,
                    n,
                    1.0,
                    a.as_ptr().add(i * rows * k),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    part.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
        println!(
            "{m:5}x{k:5}x{n:6}: packed {:7.2} ms {:6.1} GFLOP/s | matrixmultiply {:7.2} ms {:6.1} GFLOP/s",
            ours * 1e3, flops / ours / 1e9, mm * 1e3, flops / mm / 1e9
        );
    }
}
