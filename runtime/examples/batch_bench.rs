//! The Linears of one batched decode step of GPT-2 124M (every matrix of a step, LM head
//! included) for m = 1, 2, 4, 8, 16, 32 and 128 rows, in f32 and q8 on the detected ISA: how much more
//! m streams cost than one (attention and the small ops are not included).
//! `cargo run --release -p gpt2rt --example batch_bench [threads] [reps]`
use gpt2rt::elem::Q8;
use gpt2rt::gemm::Activation::Identity;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    gpt2rt::set_threads(threads);
    let isa = gpt2rt::gemv::detected();
    let nr = gpt2rt::gemm::NR;
    // `hot`: one 768 × 768 matrix (2.4 MB, in cache) 124 times, for the kernels' speed
    // without the memory stream.
    let hot = args.next().is_some_and(|a| a == "hot");
    let mut shapes: Vec<(usize, usize)> = (0..12)
        .flat_map(|_| [(768, 2304), (768, 768), (768, 3072), (3072, 768)])
        .collect();
    shapes.push((768, 50257));
    if hot {
        shapes = vec![(768, 768)];
    }
    let uses = if hot { 210 } else { 1 };
    let q8: Vec<Vec<Q8>> = shapes
        .iter()
        .map(|&(k, n)| {
            (0..gpt2rt::q8::panels_len(k, n))
                .map(|i| Q8((i * 7 % 255) as u8 + 1))
                .collect()
        })
        .collect();
    let f32s: Vec<Vec<f32>> = shapes
        .iter()
        .map(|&(k, n)| {
            (0..n.div_ceil(nr) * k * nr)
                .map(|i| (i % 89) as f32 * 0.01 - 0.4)
                .collect()
        })
        .collect();
    let scales = vec![0.01f32; 50257usize.div_ceil(nr) * nr];
    let x: Vec<f32> = (0..3072 * 128)
        .map(|i| (i % 97) as f32 * 0.01 - 0.3)
        .collect();
    let mut y = vec![0f32; 128 * 50257];
    println!("{isa:?}, {threads} thread(s), fastest of {reps}");
    // q8 twice where the CPU has AMX tiles: with them (the default) and without.
    let formats: &[&str] = if gpt2rt::amx::supported() {
        &["f32", "q8", "q8 (no AMX)"]
    } else {
        &["f32", "q8"]
    };
    for &format in formats {
        gpt2rt::amx::set_enabled(format != "q8 (no AMX)");
        let step = |y: &mut [f32], m: usize| {
            for (i, &(k, n)) in shapes.iter().enumerate().cycle().take(shapes.len() * uses) {
                let (x, y) = (&x[..m * k], &mut y[..m * n]);
                if format.starts_with("q8") {
                    let sc = &scales[..n.div_ceil(nr) * nr];
                    gpt2rt::q8::linear_on(isa, x, m, k, &q8[i], sc, None, Identity, y, n)
                } else {
                    gpt2rt::gemm::linear_on(isa, x, m, k, &f32s[i], None, Identity, y, n)
                }
            }
        };
        let mut one = 0.0;
        for m in [1, 2, 4, 8, 16, 32, 128] {
            step(&mut y, m);
            let mut times: Vec<f64> = (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    step(&mut y, m);
                    t.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            // The fastest run: the machine's noise only ever adds time.
            let s = times[0];
            if m == 1 {
                one = s;
            }
            println!(
                "{format:>4} m={m:<2} {:7.2} ms per step, {:6.1} rows/s, {:.2}x one row's throughput",
                s * 1e3,
                m as f64 / s,
                m as f64 * one / s
            );
        }
    }
}
