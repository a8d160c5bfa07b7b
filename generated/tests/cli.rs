//! The `gpt2` binary as users run it: `logits` against stored onnxruntime outputs of the
//! embedded default model, `info`, and errors for bad input.
//! (Built with GPT2_ONNX set to another model, the reference comparison is skipped.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn gpt2(args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpt2"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "gpt2 panicked: {err}");
    (out.status.success(), out.stdout, err)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn default_model_embedded() -> bool {
    std::env::var_os("GPT2_ONNX").is_none()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gpt2-cli-{}-{name}", std::process::id()))
}

/// The default model's stored onnxruntime references (same manifest format as the fixtures).
const DEFAULT_MANIFEST: &str = "models/gpt2-kjv.json";

#[test]
fn logits_match_onnxruntime() {
    if !default_model_embedded() {
        return;
    }
    let manifest = root().join(DEFAULT_MANIFEST);
    let dir = manifest.parent().unwrap().to_path_buf();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let vocab = json["config"]["vocab"].as_u64().unwrap() as usize;
    let cases = json["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let len = case["len"].as_u64().unwrap() as usize;
        let ids: Vec<i64> = std::fs::read(dir.join(case["inputs"][0]["file"].as_str().unwrap()))
            .unwrap()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let reference = read_f32(&dir.join(case["outputs"][0]["file"].as_str().unwrap()));
        let ids_arg = ids
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let out = tmp(&format!("logits{len}"));
        let (ok, _, err) = gpt2(&[
            "logits",
            "--ids",
            &ids_arg,
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "2",
        ]);
        assert!(ok, "{err}");
        let ours = read_f32(&out);
        assert_eq!(ours.len(), reference.len(), "logits are [L, vocab]");
        let max_ref = reference.iter().fold(0f32, |m, x| m.max(x.abs()));
        let tol = 1e-3 * max_ref.max(1.0);
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= tol, "L={len}: max diff {worst} > {tol}");
        for row in 0..len {
            let argmax = |v: &[f32]| {
                (0..vocab).fold(0, |m, j| {
                    if v[row * vocab + j] > v[row * vocab + m] {
                        j
                    } else {
                        m
                    }
                })
            };
            assert_eq!(argmax(&ours), argmax(&reference), "row {row}");
        }
        std::fs::remove_file(out).ok();
    }
}

#[test]
fn info_describes_the_model() {
    let (ok, out, err) = gpt2(&["info"]);
    assert!(ok, "{err}");
    let out = String::from_utf8(out).unwrap();
    for want in ["config", "weights    f32", "source", "model.rs", "sha256"] {
        assert!(out.contains(want), "missing {want} in:\n{out}");
    }
    if let Some(c) = gpt2::GPT2 {
        assert!(
            out.contains(&format!("vocabulary {}, context {}", c.vocab, c.n_ctx)),
            "{out}"
        );
    }
}

#[test]
fn bad_input_is_refused_cleanly() {
    let out = tmp("bad");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["logits", "--ids", "1,2,99999999", "--out", o],
            "outside the vocabulary",
        ),
        (
            vec!["logits", "--ids", "-1", "--out", o],
            "outside the vocabulary",
        ),
        (vec!["logits", "--ids", "1,x", "--out", o], "invalid value"),
        (vec!["logits", "--ids", "", "--out", o], "invalid value"),
        (vec!["logits", "--ids", "1"], "--out"),
        (
            vec!["logits", "--ids", "1", "--out", "/nonexistent/dir/x.bin"],
            "cannot create",
        ),
        (
            vec!["logits", "--ids", "1", "--out", o, "--threads", "0"],
            "threads",
        ),
        (vec!["--frobnicate"], "unexpected argument"),
    ];
    for (args, want) in cases {
        let (ok, _, err) = gpt2(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: expected '{want}' in: {err}");
    }
    if default_model_embedded() {
        let ctx = gpt2::GPT2.unwrap().n_ctx;
        let too_many = vec!["7"; ctx + 1].join(",");
        let (ok, _, err) = gpt2(&["logits", "--ids", &too_many, "--out", o]);
        assert!(!ok && err.contains(&format!("context is {ctx}")), "{err}");
    }
}

#[test]
fn profile_reports_layers_ops_and_the_total() {
    let (ok, out, err) = gpt2(&[
        "--ids",
        "464,2068,7586",
        "-n",
        "4",
        "--seed",
        "1",
        "--profile",
    ]);
    assert!(ok, "{err}");
    assert!(!out.is_empty());
    for want in [
        "profile:",
        "by layer",
        "layer 0",
        "by op",
        "Linear",
        "Attention",
        "total",
    ] {
        assert!(err.contains(want), "profile report lacks '{want}':\n{err}");
    }
    // Without the flag nothing is reported.
    let (ok, _, err) = gpt2(&["--ids", "464,2068", "-n", "2", "--seed", "1"]);
    assert!(ok && !err.contains("profile:"), "{err}");
}
