//! A short, seeded slice of the mutation fuzzer (`gpt2c_tests::fuzz`; the long runs use the
//! `fuzz` binary): mutated models must be compiled or refused, never panic, hang or ask
//! for a huge allocation.

use gpt2c_tests::fuzz::{self, CappedAlloc};

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

/// The slice CI runs: fixed, so a failure replays with
/// `cargo run --release -p gpt2c-tests --bin fuzz -- --seed 8 --case I`.
const SEED: u64 = 8;
const CASES: u64 = 3000;

#[test]
fn mutated_models_are_compiled_or_refused() {
    let corpus = fuzz::load_corpus(&gpt2c_tests::repo_root());
    assert!(
        corpus.len() > 100,
        "expected the fixtures and per-op models"
    );
    let report = fuzz::run(&corpus, SEED, 0, CASES, fuzz::DEFAULT_BUDGET, |_| {});
    let findings: Vec<String> = report
        .findings
        .iter()
        .map(|f| {
            format!(
                "case {} ({}; {}): {}",
                f.index,
                f.seed_model,
                f.mutations.join("; "),
                f.panic
            )
        })
        .collect();
    assert!(
        findings.is_empty(),
        "{} panics in {} cases of seed {SEED}:\n{}",
        findings.len(),
        report.cases,
        findings.join("\n")
    );
    assert_eq!(report.cases, CASES);
    // The mutations reach past the decoder: some models still compile, and the refusals
    // come from every stage (decoding, external data, import, shape inference).
    assert!(report.accepted > CASES / 20, "{report:?}");
    for stage in [
        "not a valid ONNX model",
        "unusable external data",
        "invalid model",
        "unsupported node",
    ] {
        assert!(
            report.errors.keys().any(|k| k.contains(stage)),
            "no '{stage}' errors in {:?}",
            report.errors
        );
    }
    eprintln!(
        "{} cases in {:.1} s: {} accepted, {} rejected",
        report.cases,
        report.elapsed.as_secs_f64(),
        report.accepted,
        report.rejected
    );
}
