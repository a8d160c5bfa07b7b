//! The standalone example (examples/standalone), built as a user would: its folder copied
//! outside the repository, its path dependencies pointed back at this checkout, then
//! `cargo build`. Its text must equal the `gpt2` CLI's for the same model, prompt and seed,
//! and its normal (non-build) dependencies must hold no compiler crates.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Copies the example to `dst`, with `../../` (the repository, seen from the example)
/// replaced by this checkout's absolute path, and our Cargo.lock, so it builds offline with
/// the dependency versions the workspace was tested with.
fn copy_example(dst: &Path) {
    let src = repo().join("examples/standalone");
    let _ = std::fs::remove_dir_all(dst);
    std::fs::create_dir_all(dst.join("src")).unwrap();
    let root = format!("\"{}/", repo().display());
    for file in ["Cargo.toml", "build.rs", "src/main.rs"] {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        std::fs::write(dst.join(file), text.replace("\"../../", &root)).unwrap();
    }
    std::fs::copy(repo().join("Cargo.lock"), dst.join("Cargo.lock")).unwrap();
}

fn cargo(dir: &Path, target: &Path, args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("cargo runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo {args:?} in {}: {err}",
        dir.display()
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn standalone_example_builds_outside_the_repository_and_matches_the_cli() {
    // The CLI embeds the example's model only in the default build.
    if !gpt2::build_info::MODEL_PATH.ends_with("models/gpt2-kjv.onnx")
        || gpt2::WEIGHT_FORMAT != "f32"
    {
        return;
    }
    let copy = std::env::temp_dir().join(format!("gpt2c-standalone-{}", std::process::id()));
    assert!(
        !copy.starts_with(repo()),
        "the copy must be outside the repository"
    );
    copy_example(&copy);
    // Kept between runs under target/, so only the first run builds the dependencies.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("standalone-example");
    eprintln!(
        "building {} (the first time takes a few minutes)",
        copy.display()
    );
    cargo(&copy, &target, &["build", "--offline", "--quiet"]);
    let exe = target.join("debug/gpt2-standalone");

    for (prompt, seed) in [("And the LORD", "5"), ("", "3")] {
        let ours = Command::new(&exe).args([prompt, seed]).output().unwrap();
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let cli = Command::new(env!("CARGO_BIN_EXE_gpt2"))
            .args(["-n", "48", "--seed", seed, "--threads", "1", prompt])
            .output()
            .unwrap();
        assert!(cli.status.success());
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&cli.stdout),
            "prompt {prompt:?}, seed {seed}"
        );
        assert!(ours.stdout.len() > prompt.len() + 20);
    }

    // Normal dependencies: what the program needs besides build scripts. The tokenizer's
    // serde derives bring proc-macro crates (syn, quote) in as well; `no-proc-macro` leaves
    // what is linked into the binary.
    let tree = |edges: &str| -> Vec<String> {
        let out = cargo(
            &copy,
            &target,
            &["tree", "--offline", "-e", edges, "--prefix", "none"],
        );
        out.lines().map(str::to_string).collect()
    };
    let normal = tree("normal");
    let linked = tree("normal,no-proc-macro");
    eprintln!(
        "cargo tree -e normal: {} lines; -e normal,no-proc-macro: {} lines",
        normal.len(),
        linked.len()
    );
    let has = |lines: &[String], name: &str| {
        lines
            .iter()
            .any(|l| l.split_whitespace().next() == Some(name))
    };
    for runtime in ["gpt2rt", "gpt2text", "matrixmultiply", "tokenizers"] {
        assert!(has(&linked, runtime), "{runtime} missing: {linked:#?}");
    }
    for compiler in ["gpt2c", "prost", "prettyplease", "sha2"] {
        assert!(
            !has(&normal, compiler),
            "{compiler} is a normal dependency: {normal:#?}"
        );
    }
    for macros in ["syn", "quote", "proc-macro2"] {
        assert!(!has(&linked, macros), "{macros} is linked in: {linked:#?}");
    }
    let _ = std::fs::remove_dir_all(&copy);
}
