//! The KV-cache paths the compiler derives: prefill of a prompt and one-token steps give the
//! logits of the full forward, row for row, and leave the presents equal to the cache.

use gpt2c::ir::Tensor;
use gpt2c_tests::{compare, repo_root, Manifest, MODEL_TOL};
use gpt2rt::io::TensorRef;

fn f32s(t: Option<TensorRef>) -> Vec<f32> {
    match t {
        Some(TensorRef::F32(x)) => x.to_vec(),
        _ => panic!("f32 output"),
    }
}

macro_rules! check_incremental {
    ($m:ident, $dir:literal) => {{
        use gpt2c_tests::compiled::$m as m;
        assert!(m::INCREMENTAL, "{}: {}", $dir, m::SEQUENCE);
        let man = Manifest::read(
            &repo_root()
                .join("tests/fixtures")
                .join($dir)
                .join("manifest.json"),
            None,
        );
        let ctx = m::SEQ_LEN;
        let case = man
            .cases
            .iter()
            .find(|c| c.len == Some(ctx) && c.batch == 1)
            .expect("a full-context case of one sequence");
        let ids = case.inputs[0].tensor.to_vec::<i64>().unwrap();
        let vocab = *m::OUTPUTS[0].shape.last().unwrap();
        let mut full = m::Model::new();
        full.forward(&ids).unwrap();
        let full_logits = f32s(full.output(0));
        let row = |v: &[f32], t: usize| {
            Tensor::from_vec(vec![vocab], v[t * vocab..(t + 1) * vocab].to_vec())
        };
        for prompt in [1, 5, ctx / 2] {
            let mut inc = m::Model::new();
            inc.forward_rows(&ids[..prompt], 0, true).unwrap();
            let mut worst = 0.0f64;
            let l = f32s(inc.output(0));
            worst = worst.max(
                compare(
                    &format!("{} prefill {prompt} logits", $dir),
                    &row(&l, prompt - 1),
                    &row(&full_logits, prompt - 1),
                    MODEL_TOL,
                )
                .unwrap_or_else(|e| panic!("{e}")),
            );
            for t in prompt..ctx {
                inc.forward_rows(&ids[t..t + 1], t, true).unwrap();
                let l = f32s(inc.output(0));
                worst = worst.max(
                    compare(
                        &format!("{} step {t} logits", $dir),
                        &row(&l, t),
                        &row(&full_logits, t),
                        MODEL_TOL,
                    )
                    .unwrap_or_else(|e| panic!("{e}")),
                );
            }
            for k in 1..m::OUTPUTS.len() {
                let shape = m::OUTPUTS[k].shape.to_vec();
                let a = Tensor::from_vec(shape.clone(), f32s(inc.output(k)));
                let b = Tensor::from_vec(shape, f32s(full.output(k)));
                compare(
                    &format!("{} present {k} after steps", $dir),
                    &a,
                    &b,
                    MODEL_TOL,
                )
                .unwrap_or_else(|e| panic!("{e}"));
            }
            eprintln!(
                "{}: prefill {prompt} + {} steps match the full forward (max {worst:.2e})",
                $dir,
                ctx - prompt
            );
        }
        // A prefill of every row (no last-only shortcut) is the full forward.
        let mut inc = m::Model::new();
        inc.forward_rows(&ids[..ctx / 2], 0, false).unwrap();
        inc.forward_rows(&ids[ctx / 2..], ctx / 2, false).unwrap();
        let a = Tensor::from_vec(m::OUTPUTS[0].shape.to_vec(), f32s(inc.output(0)));
        let b = Tensor::from_vec(m::OUTPUTS[0].shape.to_vec(), full_logits.clone());
        compare(&format!("{} two prefills logits", $dir), &a, &b, MODEL_TOL)
            .unwrap_or_else(|e| panic!("{e}"));
        // Rows beyond the sequence are refused.
        assert!(inc.forward_rows(&ids[..2], ctx - 1, true).is_err());
        assert!(inc.forward_rows(&[], 0, true).is_err());
    }};
}

#[test]
fn prefill_and_steps_equal_the_full_forward() {
    check_incremental!(tiny, "tiny");
    check_incremental!(wide, "wide");
    check_incremental!(deep, "deep");
    check_incremental!(static_ctx, "static");
    check_incremental!(matmul_add, "matmul_add");
    // The same network from other exporters.
    check_incremental!(x_pt12_opset17, "x-pt12-opset17");
    check_incremental!(x_hf_eager, "x-hf-eager");
    check_incremental!(x_hf_sdpa, "x-hf-sdpa");
    check_incremental!(x_hf_eager_cache, "x-hf-eager-cache");
    check_incremental!(x_dynamo, "x-dynamo");
    check_incremental!(x_optimum, "x-optimum");
    // Narrow attention caches: steps read the rounded rows the full forward reads.
    check_incremental!(tiny_kv_f16, "tiny");
    check_incremental!(tiny_kv_bf16, "tiny");
    check_incremental!(tiny_kv_q8, "tiny");
    check_incremental!(wide_kv_q8, "wide");
    check_incremental!(x_hf_eager_cache_kv_f16, "x-hf-eager-cache");
}
