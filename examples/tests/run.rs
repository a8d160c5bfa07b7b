//! Runs the examples: the two-model binary and the `cargo run --example` programs.

use gpt2_examples::{kjv_f32, kjv_q8};
use gpt2text::{GenerateOptions, Generator, Gpt2Tokenizer, Runner, SamplerConfig};
use std::path::PathBuf;
use std::process::Command;

fn run(program: PathBuf, args: &[&str]) -> String {
    let out = Command::new(&program)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?}: {err}",
        program.display()
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `cargo test` builds the examples next to the test binary: target/<profile>/examples.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn two_models_run_side_by_side_in_one_process() {
    let out = run(
        PathBuf::from(env!("CARGO_BIN_EXE_two-models")),
        &["And God said", "16"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    // Each model alone, in this process, gives the same continuation as in the binary.
    let tokenizer = Gpt2Tokenizer::new().unwrap();
    let ids = tokenizer.encode("And God said").unwrap();
    let options = GenerateOptions {
        max_tokens: 16,
        sampling: SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        },
        ..GenerateOptions::default()
    };
    let mut f32_runner = Runner::new(kjv_f32::Model::new());
    let alone = Generator::new(&mut f32_runner, &tokenizer, &ids, &options)
        .unwrap()
        .collect_text()
        .unwrap();
    assert_eq!(
        lines[0],
        format!(
            "f32 ({} weight bytes): And God said{alone}",
            kjv_f32::WEIGHT_BYTES
        )
    );
    assert!(lines[1].starts_with(&format!(
        "q8  ({} weight bytes): And God said",
        kjv_q8::WEIGHT_BYTES
    )));
    const { assert!(kjv_q8::WEIGHT_BYTES < kjv_f32::WEIGHT_BYTES / 3) };
    // q8 stays close to f32: within the q8 bound of tests/tests/formats.rs, 5% of the
    // largest logit.
    let scale = f32_runner
        .next_logits(&ids)
        .unwrap()
        .iter()
        .fold(1f32, |m, x| m.max(x.abs()));
    let diff: f32 = lines[2]
        .split("= ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no difference in {:?}", lines[2]));
    assert!(
        diff > 0.0 && diff < 0.05 * scale,
        "{} (scale {scale})",
        lines[2]
    );
}

#[test]
fn next_tokens_example_lists_five_probabilities() {
    let out = run(example("next_tokens"), &["And God said"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    let probs: Vec<f64> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{out}");
    assert!(
        probs[0] > 0.0 && probs.iter().sum::<f64>() <= 1.0 + 1e-9,
        "{out}"
    );
}

#[test]
fn perplexity_example_scores_both_formats() {
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("perplexity-example.txt");
    std::fs::write(
        &file,
        "In the beginning God created the heaven and the earth.\n",
    )
    .unwrap();
    let out = run(example("perplexity"), &[file.to_str().unwrap()]);
    let ppl: Vec<f64> = out
        .lines()
        .skip(1)
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ppl.len(), 2, "{out}");
    // A verse of the model's training text: far below the 50257 of a uniform guess (31 in
    // f32); q8 within 10% of f32.
    assert!(ppl[0] > 1.0 && ppl[0] < 100.0, "{out}");
    assert!((ppl[1] / ppl[0] - 1.0).abs() < 0.1, "{out}");
    // A missing file is an error, not a panic.
    let status = Command::new(example("perplexity"))
        .arg("/nonexistent/file")
        .output()
        .unwrap();
    assert!(!status.status.success());
    assert!(String::from_utf8_lossy(&status.stderr).contains("cannot read"));
}
