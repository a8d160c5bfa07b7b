//! A weight blob past 2 GB links and runs, as a normal (PIE) and a static (`+crt-static`,
//! static-pie) executable: a small crate outside the repository embeds a 2.1 GB object that
//! `gpt2c::codegen::object` wrote, as generated code does, and reads bytes at both ends and
//! in the middle. 2 GB is where x86-64's 32-bit PC-relative references stop reaching: with
//! the blob among the small sections, or `_end` after it in a static build, the link fails
//! with "relocation out of range".
//!
//! It writes about 6.5 GB to the temporary folder (the object and two executables, removed
//! at the end) and takes a minute or two.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Past 2^31, and not a multiple of anything in particular.
const BLOB_LEN: u64 = (1 << 31) + 123_457;
const SYMBOL: &str = "gpt2c_weights_big_blob_test";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The byte at `i` of the blob: zero but for three marks.
fn marks() -> [(u64, u8); 3] {
    [(0, 7), (BLOB_LEN / 2, 11), (BLOB_LEN - 1, 13)]
}

fn write_object(path: &Path) {
    use gpt2c::codegen::object;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    object::begin(&mut w).unwrap();
    let chunk = vec![0u8; 1 << 24];
    let mut at = 0u64;
    while at < BLOB_LEN {
        let n = (BLOB_LEN - at).min(chunk.len() as u64);
        let mut c = chunk[..n as usize].to_vec();
        for (i, v) in marks() {
            if (at..at + n).contains(&i) {
                c[(i - at) as usize] = v;
            }
        }
        w.write_all(&c).unwrap();
        at += n;
    }
    object::finish(&mut w, object::Machine::X86_64, SYMBOL, BLOB_LEN).unwrap();
    w.flush().unwrap();
    let (script, text) = object::STATIC_END_SCRIPT;
    std::fs::write(path.parent().unwrap().join(script), text).unwrap();
}

fn write_crate(dir: &Path, objects: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"big-blob\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\ngpt2rt = {{ path = \"{}/runtime\" }}\n\n[workspace]\n",
            repo().display()
        ),
    )
    .unwrap();
    std::fs::copy(repo().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::write(
        dir.join("build.rs"),
        format!(
            "fn main() {{ println!(\"cargo:rustc-link-search=native={}\"); }}\n",
            objects.display()
        ),
    )
    .unwrap();
    let checks: String = marks()
        .iter()
        .map(|(i, v)| format!("    assert_eq!(blob[{i}], {v});\n"))
        .collect();
    std::fs::write(
        dir.join("src/main.rs"),
        format!(
            "gpt2rt::embed_weights!(blob, \"{SYMBOL}_addr\", \"{SYMBOL}.o\", {BLOB_LEN}, \
             \"{}/{SYMBOL}.o\");\n\
             fn main() {{\n    let blob = blob();\n    assert_eq!(blob.len(), {BLOB_LEN});\n\
             {checks}    assert_eq!(blob.as_ptr() as usize % 64, 0);\n    \
             println!(\"ok {{}}\", blob.len());\n}}\n",
            objects.display()
        ),
    )
    .unwrap();
}

fn build_and_run(dir: &Path, target: &Path, rustflags: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = "x86_64-unknown-linux-gnu";
    let out = Command::new(cargo)
        .args([
            "build",
            "--offline",
            "--quiet",
            "--release",
            "--target",
            host,
        ])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("RUSTFLAGS", rustflags)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build with RUSTFLAGS={rustflags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = target.join(host).join("release/big-blob");
    let run = Command::new(&exe).output().unwrap();
    assert!(
        run.status.success() && String::from_utf8_lossy(&run.stdout).contains("ok"),
        "{rustflags:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Leave room on the disk for the next build.
    std::fs::remove_dir_all(target.join(host).join("release")).unwrap();
}

#[test]
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
fn a_blob_past_2_gb_links_and_runs_dynamic_and_static() {
    let root = std::env::temp_dir().join(format!("gpt2c-big-blob-{}", std::process::id()));
    let objects = root.join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    eprintln!("writing a {BLOB_LEN}-byte weight object and linking it twice");
    write_object(&objects.join(format!("{SYMBOL}.o")));
    let krate = root.join("crate");
    write_crate(&krate, &objects);
    let target = root.join("target");
    build_and_run(&krate, &target, "");
    build_and_run(&krate, &target, "-C target-feature=+crt-static");
    std::fs::remove_dir_all(&root).unwrap();
}
