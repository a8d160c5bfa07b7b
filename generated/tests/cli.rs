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

/// `logits` with `--ids` given B times is the batch `[B, 1, L]`: its file holds `[B, L, vocab]`,
/// which is each row's own `logits` file, one after the other, byte for byte. Rows of
/// different lengths are refused before anything is written.
#[test]
fn logits_of_a_batch_are_its_rows_one_after_the_other() {
    // Ids below 512: in the vocabulary of any model GPT2_ONNX may embed.
    let rows = ["464,208,75,11", "154,99,13,198", "1,2,3,4"];
    let file = |name: &str, rows: &[&str]| {
        let out = tmp(name);
        let mut args = vec!["logits"];
        for r in rows {
            args.extend(["--ids", r]);
        }
        args.extend(["--out", out.to_str().unwrap()]);
        let (ok, _, err) = gpt2(&args);
        assert!(ok, "{args:?}: {err}");
        let bytes = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).ok();
        bytes
    };
    let alone: Vec<Vec<u8>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| file(&format!("row{i}"), &[r]))
        .collect();
    let vocab = *gpt2::OUTPUTS[0].shape.last().unwrap();
    assert_eq!(alone[0].len(), 4 * vocab * 4, "one --ids: [L, vocab]");
    assert_ne!(alone[0], alone[1]);
    for b in [2, 3] {
        let batch = file(&format!("batch{b}"), &rows[..b]);
        assert_eq!(batch.len(), b * 4 * vocab * 4, "[B, L, vocab] for B = {b}");
        assert!(
            batch == alone[..b].concat(),
            "B = {b}: the batch's logits are not its rows' own logits one after the other"
        );
    }

    let out = tmp("ragged");
    let (code, err) = gpt2_status(&[
        "logits",
        "--ids",
        "1,2,3",
        "--ids",
        "4,5,6",
        "--ids",
        "7,8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the same number of ids in every --ids") && err.contains("got 3, 3, 2"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written for a refused batch");
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

/// Runs `gpt2` with `args` and stdin closed: (exit code, stderr). A panic fails the test.
fn gpt2_status(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpt2"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("panicked") && out.status.code() != Some(101),
        "gpt2 {args:?} panicked: {err}"
    );
    (out.status.code(), err)
}

/// Every way to call `gpt2` wrongly, with the words its error must contain. Usage errors
/// (clap) exit 2, refused input exits 1; none panics.
#[test]
fn every_bad_input_gets_its_error() {
    let out = tmp("bad");
    let o = out.to_str().unwrap();
    let dir = std::env::temp_dir();
    let d = dir.to_str().unwrap();
    let empty = tmp("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let e = empty.to_str().unwrap();
    let mut cases: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    let mut case = |args: &[&str], want: &[&str]| {
        cases.push((
            args.iter().map(|s| s.to_string()).collect(),
            want.iter().map(|s| s.to_string()).collect(),
        ))
    };
    let vocab = gpt2::GPT2.map(|c| c.vocab);

    // Token ids: outside the vocabulary, not numbers, empty.
    if let Some(v) = vocab {
        let range = format!("outside the vocabulary [0, {v})");
        let big = v.to_string();
        case(
            &["logits", "--ids", "1,2,99999999", "--out", o],
            &["token id 99999999 at position 2", &range],
        );
        case(
            &["logits", "--ids", &big, "--out", o],
            &[&format!("token id {v} at position 0"), &range],
        );
        case(
            &["logits", "--ids", "-1", "--out", o],
            &["token id -1", &range],
        );
        case(&["--ids", "5,-3"], &["token id -3 at position 1", &range]);
        case(
            &["generate", "--ids", "1,99999999", "-n", "1"],
            &["token id 99999999", &range],
        );
        // More ids than the context.
        let ctx = gpt2::GPT2.unwrap().n_ctx;
        let too_many = vec!["7"; ctx + 1].join(",");
        case(
            &["logits", "--ids", &too_many, "--out", o],
            &[&format!(
                "{} ids given; the model's context is {ctx}",
                ctx + 1
            )],
        );
        // A batch: each row is checked, and named.
        case(
            &["logits", "--ids", "1,2", "--ids", "3,99999999", "--out", o],
            &["--ids #2: token id 99999999 at position 1", &range],
        );
        case(
            &["logits", "--ids", &too_many, "--ids", &too_many, "--out", o],
            &[&format!(
                "{} ids given per --ids; the model's context is {ctx}",
                ctx + 1
            )],
        );
    }
    case(
        &["logits", "--ids", "1,2,3", "--ids", "4,5", "--out", o],
        &[
            "the same number of ids in every --ids",
            "[B, 1, L]",
            "got 3, 2",
        ],
    );
    case(
        &["logits", "--ids", "1,x", "--out", o],
        &["invalid value 'x' for '--ids"],
    );
    case(
        &["logits", "--ids", "", "--out", o],
        &["invalid value '' for '--ids", "empty string"],
    );
    case(
        &["logits", "--ids", "--out", o],
        &["a value is required for '--ids"],
    );
    case(&["--ids", ""], &["invalid value '' for '--ids"]);
    case(
        &["generate", "--ids", "1", "hello"],
        &["invalid value 'hello' for '--ids"],
    );
    case(&["hi", "--ids", "5"], &["cannot be used with"]);

    // logits: required flags, files that cannot be written.
    case(&["logits", "--ids", "1"], &["required", "--out"]);
    case(&["logits", "--out", o], &["required", "--ids"]);
    case(
        &["logits", "--ids", "1", "--out", "/nonexistent/dir/x.bin"],
        &["cannot create /nonexistent/dir/x.bin"],
    );
    case(
        &["logits", "--ids", "1", "--out", d],
        &[&format!("cannot create {d}")],
    );

    // score: files that are not there or not files.
    if vocab == Some(50257) {
        case(
            &["score", "/nonexistent/file.txt"],
            &["cannot read /nonexistent/file.txt"],
        );
        case(&["score", d], &[&format!("cannot read {d}")]);
        case(&["score", e], &["the text is empty"]);
        case(&["score", "-"], &["the text is empty"]);
    }
    case(&["score"], &["required", "<FILE>"]);

    // Sampling and run options out of range.
    case(
        &["hi", "--temperature", "-1"],
        &["invalid value '-1' for '--temperature", ">= 0"],
    );
    case(
        &["hi", "--temperature", "nan"],
        &["invalid value 'nan' for '--temperature"],
    );
    case(
        &["hi", "--temperature", "1e39"],
        &["invalid value '1e39' for '--temperature"],
    );
    case(
        &["hi", "--top-p", "0"],
        &["invalid value '0' for '--top-p", "(0, 1]"],
    );
    case(&["hi", "--top-p", "1.5"], &["(0, 1]"]);
    case(&["hi", "--top-p", "nan"], &["(0, 1]"]);
    case(&["hi", "--top-k", "-3"], &["unexpected argument '-3'"]);
    case(
        &["hi", "--top-k", "many"],
        &["invalid value 'many' for '--top-k"],
    );
    case(&["hi", "-n", "x"], &["invalid value 'x' for '--max-tokens"]);
    case(&["hi", "--seed", "-1"], &["unexpected argument '-1'"]);
    case(&["hi", "--seed", "x"], &["invalid value 'x' for '--seed"]);
    for t in ["0", "2000", "x"] {
        case(
            &["hi", "--threads", t],
            &[&format!("invalid value '{t}' for '--threads")],
        );
        case(
            &["logits", "--ids", "1", "--out", o, "--threads", t],
            &[&format!("invalid value '{t}' for '--threads")],
        );
    }
    case(&["bench", "--prompt-len", "0"], &["need 1 <= --prompt-len"]);
    case(
        &[
            "bench",
            "--prompt-len",
            "18446744073709551615",
            "--gen",
            "1",
        ],
        &["need 1 <= --prompt-len", "the context"],
    );
    case(
        &[
            "bench",
            "--prompt-len",
            "1",
            "--gen",
            "18446744073709551615",
        ],
        &["the context"],
    );
    case(
        &["bench", "--runs", "x"],
        &["invalid value 'x' for '--runs"],
    );
    case(
        &["bench", "--rounds", "0"],
        &["invalid value '0' for '--rounds"],
    );

    // Unknown flags, anywhere.
    case(&["--frobnicate"], &["unexpected argument '--frobnicate'"]);
    case(&["hi", "--bogus"], &["unexpected argument '--bogus'"]);
    case(&["info", "--frob"], &["unexpected argument '--frob'"]);
    case(
        &["logits", "--ids", "1", "--out", o, "--frob"],
        &["unexpected argument '--frob'"],
    );
    case(&["score", e, "--frob"], &["unexpected argument '--frob'"]);

    let mut failures = Vec::new();
    for (args, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = gpt2_status(&args);
        if matches!(code, Some(0) | None) {
            failures.push(format!("{args:?}: exit {code:?}, expected an error"));
            continue;
        }
        for w in want {
            if !err.contains(w.as_str()) {
                failures.push(format!("{args:?}: missing '{w}' in: {err}"));
            }
        }
        // Refused input is one line; usage errors are clap's.
        if code == Some(1) && err.trim_end().lines().count() != 1 {
            failures.push(format!("{args:?}: expected one line, got: {err}"));
        }
    }
    std::fs::remove_file(&empty).ok();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
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
    // bench profiles its full-forward runs.
    let args = [
        "bench",
        "--prompt-len",
        "4",
        "--gen",
        "2",
        "--runs",
        "1",
        "--profile",
    ];
    let (ok, out, err) = gpt2(&args);
    assert!(ok, "{err}");
    assert!(
        err.contains("full forward, 1 run(s)") && err.contains("by op"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out).contains("\"full_forward_s\""));
    // Rounds alternate one stream and several, and read the weights after each.
    let args = [
        "bench",
        "--prompt-len",
        "3",
        "--gen",
        "2",
        "--runs",
        "0",
        "--streams",
        "2",
        "--rounds",
        "3",
    ];
    let (ok, out, err) = gpt2(&args);
    assert!(ok, "{err}");
    let out = String::from_utf8_lossy(&out);
    for want in [
        "\"rounds\":3",
        "\"streams_gain_median\":",
        "\"weights_read_best_s\":",
        "\"decode_over_read_median\":",
    ] {
        assert!(out.contains(want), "bench --rounds lacks {want}:\n{out}");
    }
}
