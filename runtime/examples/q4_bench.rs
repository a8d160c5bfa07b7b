//! The 4-bit Linear (`gpt2rt::q4`) on one GPT-2 124M decode step (one row through every
//! matrix of a step, LM head included), per ISA and thread count: "cold" streams every
//! matrix from memory once (what decoding does), "hot" runs one 768 × 768 matrix (300 KB,
//! in L2) as often as a step has weights, so the time is the kernel's arithmetic alone.
//! Beside them, a plain read of the same bytes on the same threads: the memory floor.
//! `cargo run --release -p gpt2rt --example q4_bench [reps] [threads] [isa]` (by default 20
//! repetitions, 1 and 2 threads, every ISA this CPU has; `isa` is `scalar`, `avx2` or
//! `avx512`).
use gpt2rt::elem::Q4;
use gpt2rt::gemm::Activation::Identity;
use gpt2rt::gemv::Isa;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reps: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(20);
    let thread_counts: Vec<usize> = match args.get(1).and_then(|s| s.parse().ok()) {
        Some(t) => vec![t],
        None => vec![1, 2],
    };
    let isas: Vec<Isa> = gpt2rt::gemv::available()
        .iter()
        .copied()
        .filter(|i| {
            args.get(2)
                .is_none_or(|a| format!("{i:?}").eq_ignore_ascii_case(a))
        })
        .collect();
    let mut shapes: Vec<(usize, usize)> = (0..12)
        .flat_map(|_| [(768, 2304), (768, 768), (768, 3072), (3072, 768)])
        .collect();
    shapes.push((768, 50257));
    let weight = |k: usize, n: usize| -> (Vec<Q4>, Vec<u8>) {
        let w = (0..gpt2rt::q4::panels_len(k, n))
            .map(|i| Q4((i.wrapping_mul(2654435761) >> 7) as u8))
            .collect();
        let mut s: Vec<u8> = (0..gpt2rt::q4::scales_len(k, n))
            .map(|i| 100 + (i % 13) as u8)
            .collect();
        for j in 0..n {
            let at = gpt2rt::q4::unit_index(k, j);
            s[at..at + 4].copy_from_slice(&(1e-4f32 + (j % 7) as f32 * 1e-5).to_le_bytes());
        }
        (w, s)
    };
    let cold: Vec<(Vec<Q4>, Vec<u8>)> = shapes.iter().map(|&(k, n)| weight(k, n)).collect();
    let bytes: usize = cold.iter().map(|(w, s)| w.len() + s.len()).sum();
    let hot = weight(768, 768);
    let hot_uses = bytes / (hot.0.len() + hot.1.len());
    let x: Vec<f32> = (0..3072).map(|i| (i % 97) as f32 * 0.01 - 0.3).collect();
    let mut y = vec![0f32; 50257];
    // Fastest of `reps`: the machine's noise only ever adds time.
    let fastest = |f: &mut dyn FnMut()| {
        f();
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    println!(
        "one decode step: {} matrices, {:.1} MB of 4-bit weights and scales; fastest of {reps}",
        shapes.len(),
        bytes as f64 / 1e6
    );
    for &threads in &thread_counts {
        gpt2rt::set_threads(threads);
        // The same bytes, each thread its share of every matrix.
        let floor = fastest(&mut || {
            let sum = cold
                .iter()
                .fold(0, |t, (w, _)| t ^ gpt2rt::weights::read_through(w));
            std::hint::black_box(sum);
        });
        println!(
            "{threads} thread(s): plain read {:6.2} ms ({:5.1} GB/s)",
            floor * 1e3,
            bytes as f64 / floor / 1e9
        );
        for &isa in &isas {
            let c = fastest(&mut || {
                for (&(k, n), (w, s)) in shapes.iter().zip(&cold) {
                    let y = &mut y[..n];
                    gpt2rt::q4::linear_on(isa, &x[..k], 1, k, w, s, None, Identity, y, n);
                }
            });
            let h = fastest(&mut || {
                for _ in 0..hot_uses {
                    let (w, s) = &hot;
                    let y = &mut y[..768];
                    gpt2rt::q4::linear_on(isa, &x[..768], 1, 768, w, s, None, Identity, y, 768);
                }
            });
            // The hot loop again, split in halves run by plain threads (each product on
            // one thread): how much the second core adds without the pool's dispatch.
            let split = fastest(&mut || {
                gpt2rt::set_threads(1);
                std::thread::scope(|sc| {
                    for i in 0..threads {
                        let (hot, x) = (&hot, &x);
                        sc.spawn(move || {
                            let mut y = vec![0f32; 768];
                            for _ in (i..hot_uses).step_by(threads) {
                                let (w, s) = hot;
                                gpt2rt::q4::linear_on(
                                    isa,
                                    &x[..768],
                                    1,
                                    768,
                                    w,
                                    s,
                                    None,
                                    Identity,
                                    &mut y,
                                    768,
                                );
                            }
                        });
                    }
                });
                gpt2rt::set_threads(threads);
            });
            println!(
                "{threads} thread(s) {isa:?}: hot on plain threads {:6.2} ms",
                split * 1e3
            );
            println!(
                "{threads} thread(s) {isa:?}: cold {:6.2} ms ({:5.1} GB/s), hot {:6.2} ms ({:5.1} GB/s)",
                c * 1e3,
                bytes as f64 / c / 1e9,
                h * 1e3,
                bytes as f64 / h / 1e9
            );
        }
    }
}
