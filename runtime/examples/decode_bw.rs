//! Memory bandwidth of one GPT-2 decode step's matrix-vector products against a plain
//! streaming read of the same bytes. `cargo run --release -p gpt2rt --example decode_bw
//! [threads [width layers [q8]]]`: 124M by default (768 12); medium 1024 24, large 1280 36,
//! XL 1600 48. With `q8`, the int8 step (`q8::linear`, LM head included) and a plain read of
//! its bytes alternate 20 times: the best of each and the median of the pairs' ratios (the
//! machine's bandwidth swings from one second to the next).
use gpt2rt::elem::Q8;
use gpt2rt::gemm::Activation::Identity;
use std::time::Instant;

mod decode_shapes;

/// The int8 decode step against a plain read of its bytes, alternated.
fn q8_against_read(threads: usize, d: usize, mut shapes: Vec<(usize, usize)>) {
    shapes.push((d, 50257));
    let nr = gpt2rt::gemm::NR;
    let mats: Vec<Vec<Q8>> = shapes
        .iter()
        .map(|&(k, n)| vec![Q8(130); gpt2rt::q8::panels_len(k, n)])
        .collect();
    let scales = vec![0.01f32; 50257usize.div_ceil(nr) * nr];
    let x: Vec<f32> = (0..4 * d).map(|i| (i % 97) as f32 * 0.01 - 0.3).collect();
    let mut y = vec![0f32; 50257];
    let bytes: usize = mats.iter().map(Vec::len).sum();
    let mut step = || {
        for (w, &(k, n)) in mats.iter().zip(&shapes) {
            let sc = &scales[..n.div_ceil(nr) * nr];
            gpt2rt::q8::linear(&x[..k], 1, k, w, sc, None, Identity, &mut y[..n], n);
        }
    };
    // Each thread its share of every matrix, as the step splits it.
    let read = || {
        mats.iter()
            .fold(0, |t, m| t ^ gpt2rt::weights::read_through(m))
    };
    step();
    std::hint::black_box(read());
    let (mut steps, mut reads, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        step();
        let s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::hint::black_box(read());
        let r = t.elapsed().as_secs_f64();
        steps.push(s);
        reads.push(r);
        ratios.push(s / r);
    }
    for v in [&mut steps, &mut reads, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    let gbs = |s: f64| bytes as f64 / s / 1e9;
    println!(
        "{threads} threads, {:.0} MB of int8 weights: q8 step best {:.2} ms ({:.1} GB/s), plain read best {:.2} ms ({:.1} GB/s): {:.2}x; the 20 pairs' ratios median {:.2}x ({:.2}x to {:.2}x)",
        bytes as f64 / 1e6,
        steps[0] * 1e3,
        gbs(steps[0]),
        reads[0] * 1e3,
        gbs(reads[0]),
        steps[0] / reads[0],
        ratios[10],
        ratios[0],
        ratios[19]
    );
}

fn main() {
    let (threads, d, shapes) = decode_shapes::from_args();
    if std::env::args().nth(4).as_deref() == Some("q8") {
        return q8_against_read(threads, d, shapes);
    }
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
        mats.iter()
            .map(|m| &m[..])
            .chain([&head[..]])
            .fold(0, |t, m| t ^ gpt2rt::weights::read_through(m))
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
