//! Generated code against the reference interpreter and onnxruntime: every fixture, every
//! stored length (L = 1, a middle length, the full context), logits and every present.
//!
//! The generated code is specialized to the full context; a prompt of L tokens is padded
//! after its end, and rows 0..L are compared (GPT-2 is causal, so the padding cannot reach
//! them; the interpreter comparison at the full length checks the padded rows too).
//!
//! It is also specialized to B = 1: a batch case (B sequences, `[B, 1, L]` or `[B, L]`) runs
//! each entry alone, and each output's entries are concatenated along its batch axis (where
//! onnxruntime's output has B and the compiled output 1) before the comparison with
//! onnxruntime's output for the whole batch.

use gpt2c::ir::Tensor;
use gpt2c_tests::{compare, concat_entries, SpecializedFixture, MODEL_TOL};

use gpt2c_tests::compiled::Runner;

/// (fixture directory, runner, output shapes) of compiled fixture `$m`.
macro_rules! runner {
    ($m:ident, $dir:literal) => {{
        ($dir, gpt2c_tests::fixture_runner!($m), shapes!($m))
    }};
}

macro_rules! shapes {
    ($m:ident) => {
        gpt2c_tests::compiled::$m::OUTPUTS
            .iter()
            .map(|t| t.shape.to_vec())
            .collect::<Vec<_>>()
    };
}

/// Rows `0..len` along axis `axis` of a row-major tensor.
fn take_rows(data: &[f32], shape: &[usize], axis: usize, len: usize) -> Tensor {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut v = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let base = o * shape[axis] * inner;
        v.extend_from_slice(&data[base..base + len * inner]);
    }
    let mut s = shape.to_vec();
    s[axis] = len;
    Tensor::from_vec(s, v)
}

fn check(dir: &str, run: Runner, out_shapes: Vec<Vec<usize>>) {
    let fx = SpecializedFixture::load(dir);
    for (i, case) in fx.manifest.cases.iter().enumerate() {
        // The compiled code runs unpadded sequences (its attention_mask is all ones).
        if case.name.contains("pad") {
            continue;
        }
        let name = &case.name;
        let mut worst = 0.0f64;
        // Rows 0..L of each output, per batch entry.
        let mut parts: Vec<Vec<Tensor>> = vec![Vec::new(); case.outputs.len()];
        let mut len = 0;
        for b in 0..case.batch {
            let (padded, l) = fx.padded(i, b);
            len = l;
            let ours = run(&padded);

            // Against the interpreter, on the same padded input: every row.
            let interp = fx.interpret(&fx.specialized, &padded);
            for (k, (o, r)) in ours.iter().zip(&interp).enumerate() {
                let t = Tensor::from_vec(out_shapes[k].clone(), o.clone());
                let what = format!(
                    "{dir} {name} entry {b} output {k} vs interpreter{}",
                    if k == 0 { " (logits)" } else { "" }
                );
                worst =
                    worst.max(compare(&what, &t, r, MODEL_TOL).unwrap_or_else(|e| panic!("{e}")));
            }

            // The real length: the sequence is the second-to-last axis of the logits
            // ([1,1,L,V] or [1,L,V]) and of each present ([2,1,H,L,D] or [1,H,L,D]).
            for (k, part) in parts.iter_mut().enumerate() {
                let axis = out_shapes[k].len() - 2;
                part.push(take_rows(&ours[k], &out_shapes[k], axis, len));
            }
        }

        // Against onnxruntime, the entries side by side as the batch ran there.
        let mut worst_ort = 0.0f64;
        for (k, (r, entries)) in case.outputs.iter().zip(parts).enumerate() {
            let what = format!(
                "{dir} {name} {} vs onnxruntime{}",
                r.name,
                if k == 0 { " (logits)" } else { "" }
            );
            let t = concat_entries(&what, entries, &r.tensor).unwrap_or_else(|e| panic!("{e}"));
            worst_ort = worst_ort
                .max(compare(&what, &t, &r.tensor, MODEL_TOL).unwrap_or_else(|e| panic!("{e}")));
        }
        eprintln!(
            "{dir} {name} (B={} L={len}): generated code matches the interpreter (max {worst:.2e}) and onnxruntime (max {worst_ort:.2e})",
            case.batch
        );
    }
}

#[test]
fn generated_code_matches_interpreter_and_onnxruntime() {
    let all: Vec<(&str, Runner, Vec<Vec<usize>>)> = vec![
        runner!(tiny, "tiny"),
        runner!(wide, "wide"),
        runner!(deep, "deep"),
        runner!(static_ctx, "static"),
        runner!(matmul_add, "matmul_add"),
        runner!(tiny_external, "tiny-external"),
        // The same network from other exporters.
        runner!(x_pt12_opset17, "x-pt12-opset17"),
        runner!(x_hf_eager, "x-hf-eager"),
        runner!(x_hf_sdpa, "x-hf-sdpa"),
        runner!(x_hf_eager_cache, "x-hf-eager-cache"),
        runner!(x_dynamo, "x-dynamo"),
        runner!(x_optimum, "x-optimum"),
        // Without fuse-attention: masks as generated code (bools as i64, Where as select).
        runner!(x_hf_eager_noattn, "x-hf-eager"),
        runner!(x_dynamo_noattn, "x-dynamo"),
    ];
    for (dir, run, shapes) in all {
        check(dir, run, shapes);
    }
}
