//! Compiles every committed fixture with gpt2c into OUT_DIR/<name>/, so one build of this
//! crate tests the generated code of all of them (see src/compiled.rs).

use std::path::PathBuf;

/// Fixtures compiled for the generated-code tests (directory names under tests/fixtures).
const FIXTURES: &[&str] = &["tiny", "wide", "deep", "static", "matmul_add"];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=build.rs");
    for name in FIXTURES {
        let model = root.join("fixtures").join(name).join("model.onnx");
        println!("cargo:rerun-if-changed={}", model.display());
        let dir = out.join(name);
        let weights = gpt2c::codegen::WeightsPath::OutDir(format!("{name}/weights.bin"));
        if let Err(e) = gpt2c::driver::compile(&model, &dir, weights) {
            eprintln!("error: gpt2c failed on fixture {name}: {e}");
            std::process::exit(1);
        }
    }
}
