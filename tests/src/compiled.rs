//! The committed fixtures, compiled by gpt2c in build.rs.

macro_rules! compiled {
    ($($name:ident),*) => {
        $(gpt2rt::include_model!($name);)*
    };
}

compiled!(
    tied,
    tiny,
    tiny_bf16,
    tiny_f16,
    tiny_q8,
    tiny_q4,
    tiny_kv_f16,
    tiny_kv_bf16,
    tiny_kv_q8,
    wide_kv_q8,
    wide_q8_kv_q8,
    x_hf_eager_cache_kv_f16,
    tiny_q4_gather,
    wide,
    deep,
    static_ctx,
    matmul_add,
    tiny_external,
    x_pt12_opset17,
    x_hf_eager,
    x_hf_sdpa,
    x_hf_eager_cache,
    x_dynamo,
    x_optimum,
    x_hf_eager_noattn,
    x_dynamo_noattn
);

/// A full forward of one compiled fixture: every output as f32 vectors.
pub type Runner = fn(&[i64]) -> Vec<Vec<f32>>;

/// The `Runner` of compiled fixture `$m` (a module of `compiled`).
#[macro_export]
macro_rules! fixture_runner {
    ($m:ident) => {{
        fn run(ids: &[i64]) -> Vec<Vec<f32>> {
            use $crate::compiled::$m as m;
            let mut model = m::Model::new();
            model.forward(ids).expect("forward");
            (0..m::OUTPUTS.len())
                .map(|i| match model.output(i).expect("output") {
                    gpt2rt::io::TensorRef::F32(x) => x.to_vec(),
                    gpt2rt::io::TensorRef::I64(_) => panic!("i64 output"),
                })
                .collect()
        }
        run as $crate::compiled::Runner
    }};
}
