//! Narrow weight formats (`GPT2_WEIGHTS=bf16|f16|q8|q4`): the generated code must compute exactly
//! the model whose matrices are rounded to the format (the interpreter on that model, at
//! the f32 tolerance), and stay close to the f32 model's onnxruntime outputs (a tolerance
//! and top-1 agreement that suit the format).
//!
//! bf16, q8 and q4 also round each Linear's input (to bf16, to int8 steps), and rounding is
//! discontinuous: an activation within float noise of a rounding tie may go either way in
//! the generated code and in the interpreter, and that one step then carries through the
//! later layers. Such ties do occur in the fixture runs, so these three are held to the
//! rounded model at a tolerance of their own (`flip_tol`); their kernels are checked bit for
//! bit against their references in `gpt2rt::bf16`'s, `gpt2rt::q8`'s and `gpt2rt::q4`'s tests.

use gpt2c::codegen::layout::WeightFormat;
use gpt2c::ir::Tensor;
use gpt2c::KvFormat;
use gpt2c_tests::{compare, repo_root, Manifest, SpecializedFixture, MODEL_TOL};

use gpt2c_tests::compiled::Runner;
use gpt2c_tests::fixture_runner as runner;

/// Relative tolerance against the rounded model: f32's where inputs are not rounded. Where
/// they are, activations rounded the other way at ties moved the tiny fixture's logits by
/// up to 1.0e-2 of their largest magnitude with q8 (L = 1) and 3.5e-3 with bf16 (L = 13);
/// the cases without such a tie match to 2e-7.
fn flip_tol(format: WeightFormat) -> f64 {
    match format {
        WeightFormat::Q8 => 2e-2,
        WeightFormat::Q4 => Q4_TOL,
        WeightFormat::Bf16 => 1e-2,
        _ => MODEL_TOL,
    }
}

/// q4 against the rounded model: its Linears round their inputs exactly as q8's do, so an
/// activation at a rounding tie may flip the same way; q8's allowance. (Measured: at most
/// 4.8e-7 of the largest logit in every case, no flip.)
const Q4_TOL: f64 = 2e-2;

/// q4 against onnxruntime's f32 logits, relative to max(1, max |ref|), and the share of
/// rows whose argmax agrees. 4 bits are coarse on the tiny fixture's random weights (no
/// structure for the logits to stand out on): measured 0.29 at most (L = 64) and 176/247
/// rows (71%) with q4_0's block scales, 190/247 (77%) with least-squares f16 scales per
/// 32 rows, 0.18 and 198/247 (80%) with int8 scales per 16 rows (`gpt2rt::q4::quantize_line`).
/// What q4 costs on a trained model is `gpt2c accuracy`'s table in README.md.
const Q4_F32_TOL: f64 = 0.3;
const Q4_AGREE: f64 = 0.75;

/// (generated module, its format, its WEIGHT_FORMAT, max |logit − ORT| relative to
/// max(1, max |ref|), minimum share of rows whose argmax agrees with ORT).
fn cases() -> Vec<(Runner, WeightFormat, &'static str, f64, f64)> {
    use gpt2c_tests::compiled::{tiny_bf16, tiny_f16, tiny_q4, tiny_q4_gather, tiny_q8};
    vec![
        (
            runner!(tiny_bf16),
            WeightFormat::Bf16,
            tiny_bf16::WEIGHT_FORMAT,
            2e-2,
            0.9,
        ),
        (
            runner!(tiny_f16),
            WeightFormat::F16,
            tiny_f16::WEIGHT_FORMAT,
            3e-3,
            0.95,
        ),
        (
            runner!(tiny_q8),
            WeightFormat::Q8,
            tiny_q8::WEIGHT_FORMAT,
            5e-2,
            0.9,
        ),
        (
            runner!(tiny_q4),
            WeightFormat::Q4,
            tiny_q4::WEIGHT_FORMAT,
            Q4_F32_TOL,
            Q4_AGREE,
        ),
        // The position rows gathered at run time from the f16 table rather than folded.
        (
            runner!(tiny_q4_gather),
            WeightFormat::Q4,
            tiny_q4_gather::WEIGHT_FORMAT,
            Q4_F32_TOL,
            Q4_AGREE,
        ),
    ]
}

#[test]
fn narrow_formats_compute_the_rounded_model_and_stay_close_to_f32() {
    let fx = SpecializedFixture::load("tiny");
    let vocab = fx.vocab;
    for (run, format, stored, tol, agree_min) in cases() {
        assert_eq!(stored, format.name());
        let narrowed = gpt2c::codegen::narrowed(&fx.specialized, format);
        let (mut rows, mut agree, mut farthest) = (0usize, 0usize, 0f64);
        for (i, case) in fx.manifest.cases.iter().enumerate() {
            // A batch case runs entry by entry (the code is specialized to B = 1); its
            // logits rows 0..len side by side are onnxruntime's [B, 1, L, V].
            let mut logits = Vec::new();
            let mut len = 0;
            for b in 0..case.batch {
                let (padded, l) = fx.padded(i, b);
                len = l;
                let ours = run(&padded);
                // Exactly the rounded model: the interpreter at the f32 tolerance.
                let interp = fx.interpret(&narrowed, &padded);
                let exact = flip_tol(format);
                for (k, (o, r)) in ours.iter().zip(&interp).enumerate() {
                    let t = Tensor::from_vec(r.shape().to_vec(), o.clone());
                    let what = format!(
                        "tiny {} {} entry {b} output {k} vs the rounded model",
                        format.name(),
                        case.name
                    );
                    compare(&what, &t, r, exact).unwrap_or_else(|e| panic!("{e}"));
                }
                logits.extend_from_slice(&ours[0][..len * vocab]);
            }
            // Close to the f32 model (onnxruntime), rows 0..len of the logits.
            let reference = case.outputs[0].tensor.to_vec::<f32>().unwrap();
            assert_eq!(logits.len(), reference.len(), "{}", case.name);
            let scale = reference.iter().fold(1f32, |a, &x| a.max(x.abs()));
            let worst = logits
                .iter()
                .zip(&reference)
                .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
            farthest = farthest.max((worst / scale) as f64);
            assert!(
                (worst / scale) as f64 <= tol,
                "tiny {} {} (L={len}): max |logit - onnxruntime| {worst} above {tol} x {scale}",
                format.name(),
                case.name
            );
            for r in 0..reference.len() / vocab {
                let row = |v: &[f32]| gpt2text::sampling::argmax(&v[r * vocab..(r + 1) * vocab]);
                rows += 1;
                agree += usize::from(row(&logits) == row(&reference));
            }
        }
        let share = agree as f64 / rows as f64;
        eprintln!(
            "tiny {}: top-1 agreement with f32 {agree}/{rows}, max |logit - onnxruntime| {farthest:.3} of the largest",
            format.name()
        );
        assert!(
            share >= agree_min,
            "{}: top-1 agreement {share:.3}",
            format.name()
        );
    }
}

#[test]
fn accuracy_report_measures_the_rounding() {
    let m = Manifest::read(&repo_root().join("tests/fixtures/tiny/manifest.json"), None);
    let graph = gpt2c::onnx::load_graph(&m.model).unwrap();
    let same = gpt2c::accuracy::measure(&graph, WeightFormat::F32, KvFormat::F32, 2, 8).unwrap();
    assert_eq!(
        (same.positions, same.top1_agree, same.max_abs_diff),
        (16, 16, 0.0)
    );
    let bf16 = gpt2c::accuracy::measure(&graph, WeightFormat::Bf16, KvFormat::F32, 2, 8).unwrap();
    let f16 = gpt2c::accuracy::measure(&graph, WeightFormat::F16, KvFormat::F32, 2, 8).unwrap();
    let q8 = gpt2c::accuracy::measure(&graph, WeightFormat::Q8, KvFormat::F32, 2, 8).unwrap();
    assert!(q8.max_abs_diff > bf16.max_abs_diff, "{q8} vs {bf16}");
    let q4 = gpt2c::accuracy::measure(&graph, WeightFormat::Q4, KvFormat::F32, 2, 8).unwrap();
    assert!(q4.max_abs_diff > q8.max_abs_diff, "{q4} vs {q8}");
    assert!(q4.to_string().contains("blocks of 16 weights"), "{q4}");
    // Rounding changes the logits, bf16 (8 bits of mantissa) more than f16 (11).
    assert!(bf16.max_abs_diff > f16.max_abs_diff && f16.max_abs_diff > 0.0);
    assert!(
        bf16.max_abs_diff < 0.05 * bf16.max_abs_logit.max(1.0),
        "{bf16}"
    );
    assert!(bf16.to_string().contains("top-1 agreement"));
}

/// Narrow attention caches (`GPT2_KV=f16|bf16|q8`): the generated code computes the model
/// whose attention reads its keys and values rounded to the format (`codegen::kv_rounded`;
/// the presents stay the f32 values), and stays close to the f32 model.
#[test]
fn narrow_caches_compute_the_rounded_model() {
    use gpt2c_tests::compiled::{
        tiny_kv_bf16, tiny_kv_f16, tiny_kv_q8, wide_kv_q8, wide_q8_kv_q8, x_hf_eager_cache_kv_f16,
    };
    // (fixture, generated module, its weights, its cache, stored KV_FORMAT, tolerance
    // against onnxruntime relative to max(1, max |ref|))
    let cases: Vec<(&str, Runner, WeightFormat, KvFormat, KvFormat, f64)> = vec![
        (
            "tiny",
            runner!(tiny_kv_f16),
            WeightFormat::F32,
            KvFormat::F16,
            tiny_kv_f16::KV_FORMAT,
            3e-3,
        ),
        (
            "tiny",
            runner!(tiny_kv_bf16),
            WeightFormat::F32,
            KvFormat::Bf16,
            tiny_kv_bf16::KV_FORMAT,
            2e-2,
        ),
        (
            "tiny",
            runner!(tiny_kv_q8),
            WeightFormat::F32,
            KvFormat::Q8,
            tiny_kv_q8::KV_FORMAT,
            5e-2,
        ),
        (
            "wide",
            runner!(wide_kv_q8),
            WeightFormat::F32,
            KvFormat::Q8,
            wide_kv_q8::KV_FORMAT,
            5e-2,
        ),
        (
            "wide",
            runner!(wide_q8_kv_q8),
            WeightFormat::Q8,
            KvFormat::Q8,
            wide_q8_kv_q8::KV_FORMAT,
            1e-1,
        ),
        (
            "x-hf-eager-cache",
            runner!(x_hf_eager_cache_kv_f16),
            WeightFormat::F32,
            KvFormat::F16,
            x_hf_eager_cache_kv_f16::KV_FORMAT,
            3e-3,
        ),
    ];
    for (fixture, run, weights, kv, stored, tol) in cases {
        assert_eq!(stored, kv);
        let fx = SpecializedFixture::load(fixture);
        let rounded =
            gpt2c::codegen::kv_rounded(&gpt2c::codegen::narrowed(&fx.specialized, weights), kv);
        let plain = gpt2c::codegen::narrowed(&fx.specialized, weights);
        // Largest |logit| difference from the rounded model and from the unrounded one.
        let (mut to_rounded, mut to_unrounded) = (0f64, 0f64);
        for (i, case) in fx.manifest.cases.iter().enumerate() {
            for b in 0..case.batch {
                let (padded, len) = fx.padded(i, b);
                let ours = run(&padded);
                let want = fx.interpret(&rounded, &padded);
                let unrounded = fx.interpret(&plain, &padded);
                for (k, (o, r)) in ours.iter().zip(&want).enumerate() {
                    let t = Tensor::from_vec(r.shape().to_vec(), o.clone());
                    let what = format!(
                        "{fixture} {} weights, {} cache, {} entry {b} output {k} vs the rounded model",
                        weights.name(),
                        kv.name(),
                        case.name
                    );
                    compare(&what, &t, r, flip_tol(weights)).unwrap_or_else(|e| panic!("{e}"));
                }
                // Nearer the rounded model than the unrounded one (below).
                let (a, u) = (
                    &want[0].to_vec::<f32>().unwrap(),
                    &unrounded[0].to_vec::<f32>().unwrap(),
                );
                let n = len * fx.vocab;
                let diff = |x: &[f32], y: &[f32]| {
                    x[..n]
                        .iter()
                        .zip(&y[..n])
                        .fold(0f64, |m, (p, q)| m.max((p - q).abs() as f64))
                };
                to_rounded = to_rounded.max(diff(&ours[0], a));
                to_unrounded = to_unrounded.max(diff(&ours[0], u));
                // Close to the f32 model (onnxruntime).
                let reference = case.outputs[0].tensor.to_vec::<f32>().unwrap();
                let reference = &reference[b * n..(b + 1) * n];
                let scale = reference.iter().fold(1f32, |a, &x| a.max(x.abs())) as f64;
                let worst = ours[0][..n]
                    .iter()
                    .zip(reference)
                    .fold(0f64, |a, (x, y)| a.max((x - y).abs() as f64));
                assert!(
                    worst / scale <= tol,
                    "{fixture} {} cache {} (L={len}): max |logit - onnxruntime| {worst} above {tol} x {scale}",
                    kv.name(),
                    case.name
                );
            }
        }
        eprintln!(
            "{fixture} {} weights, {} cache: max |logit difference| {to_rounded:.2e} from the \
             rounded model, {to_unrounded:.2e} from the unrounded one",
            weights.name(),
            kv.name()
        );
        // The cache really is rounded, as the reference rounds it: the generated code is far
        // nearer the rounded model than the unrounded one (a cache left in f32, or rounded
        // differently, fails this).
        assert!(
            to_rounded * 4.0 < to_unrounded,
            "{fixture} {}: {to_rounded:.2e} from the rounded model vs {to_unrounded:.2e} from the unrounded",
            kv.name()
        );
    }
}

#[test]
fn accuracy_report_measures_the_cache_rounding() {
    let m = Manifest::read(&repo_root().join("tests/fixtures/tiny/manifest.json"), None);
    let graph = gpt2c::onnx::load_graph(&m.model).unwrap();
    let f16 = gpt2c::accuracy::measure(&graph, WeightFormat::F32, KvFormat::F16, 2, 8).unwrap();
    let bf16 = gpt2c::accuracy::measure(&graph, WeightFormat::F32, KvFormat::Bf16, 2, 8).unwrap();
    let q8 = gpt2c::accuracy::measure(&graph, WeightFormat::F32, KvFormat::Q8, 2, 8).unwrap();
    assert!(
        f16.max_abs_diff > 0.0 && bf16.max_abs_diff > f16.max_abs_diff,
        "{bf16} vs {f16}"
    );
    assert!(q8.max_abs_diff > 0.0, "{q8}");
    assert!(q8.to_string().contains("q8 attention cache"), "{q8}");
}

/// q4 stores the position table (the constant the exporter's position Gather folds to) as
/// f16, and the rounded model holds exactly the values the generated code reads: the q4
/// comparison above has a tolerance of its own, wide enough to hide a table rounded in one
/// and not the other, so the values themselves are checked here.
#[test]
fn q4_tables_are_the_rounded_models_f16_values() {
    use gpt2c_tests::compiled::{tiny_q4, tiny_q4_gather, tiny_q8};
    let name = "/transformer/wpe/Gather_output_0";
    assert_eq!(tiny_q4::F16_TABLES, [name]);
    assert!(tiny_q8::F16_TABLES.is_empty());
    // With a small folding budget the table itself is stored, and gathered from.
    assert_eq!(tiny_q4_gather::F16_TABLES, ["transformer.wpe.weight"]);
    let table: Vec<f32> = tiny_q4_gather::Weights::new()
        .wpe_weight
        .iter()
        .map(|h| h.widen())
        .collect();
    let fx = SpecializedFixture::load("tiny");
    let value = |g: &gpt2c::ir::Graph| {
        let v = g.values.iter().find(|v| v.name == name).expect(name);
        v.konst
            .as_ref()
            .expect("a constant")
            .to_vec::<f32>()
            .unwrap()
    };
    let f32s = value(&fx.specialized);
    let rounded = value(&gpt2c::codegen::narrowed(&fx.specialized, WeightFormat::Q4));
    let stored: Vec<f32> = tiny_q4::Weights::new()
        .wpe_gather
        .iter()
        .map(|h| h.widen())
        .collect();
    assert_eq!(stored.len(), f32s.len());
    assert_eq!(stored, rounded);
    assert_eq!(table, rounded);
    let mut changed = 0;
    for (&s, &x) in stored.iter().zip(&f32s) {
        assert!((s - x).abs() <= x.abs() / 2048.0, "{x} stored as {s}");
        changed += usize::from(s != x);
    }
    assert!(changed > f32s.len() / 2, "{changed} of {}", f32s.len());
    // q8 keeps it f32.
    assert_eq!(
        value(&gpt2c::codegen::narrowed(&fx.specialized, WeightFormat::Q8)),
        f32s
    );
}
