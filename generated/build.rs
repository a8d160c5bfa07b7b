//! Compiles the ONNX model into Rust at build time: `GPT2_ONNX` (an absolute path) or the
//! default model in models/, through `gpt2c::Builder`. Writes OUT_DIR/model.rs,
//! the weight object OUT_DIR/gpt2c_weights_<model>_<hash>.o and OUT_DIR/build_info.rs. A bad model fails the build with the compiler's message.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=GPT2_ONNX");
    println!("cargo:rerun-if-env-changed=GPT2C_DISABLE_PASSES");
    println!("cargo:rerun-if-env-changed=GPT2_WEIGHTS");
    println!("cargo:rerun-if-env-changed=GPT2_KV");
    println!("cargo:rerun-if-changed=build.rs");
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let default = manifest.join("../models/gpt2-kjv.onnx");
    let model = gpt2c::model_path::resolve(std::env::var_os("GPT2_ONNX").as_deref(), &default)
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1);
        });
    println!("cargo:rerun-if-changed={}", model.display());
    if let Err(e) = build(&model) {
        eprintln!(
            "error: gpt2c could not compile the model {}:\n{e}",
            model.display()
        );
        if std::env::var_os("GPT2_ONNX").is_none() {
            eprintln!("(set GPT2_ONNX=/absolute/path/to/model.onnx to compile another model)");
        }
        std::process::exit(1);
    }
}

/// `GPT2_WEIGHTS` and `GPT2_KV` (f32 when unset) and `GPT2C_DISABLE_PASSES`
/// (comma-separated), read here and passed to the builder as arguments.
fn build(model: &Path) -> Result<(), String> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let t = std::time::Instant::now();
    let format = std::env::var("GPT2_WEIGHTS").unwrap_or_default();
    let format = gpt2c::codegen::layout::WeightFormat::parse(&format)
        .map_err(|e| format!("GPT2_WEIGHTS: {e}"))?;
    let kv = gpt2c::KvFormat::parse(&std::env::var("GPT2_KV").unwrap_or_default())
        .map_err(|e| format!("GPT2_KV: {e}"))?;
    let mut builder = gpt2c::Builder::new(model)
        .weights(format)
        .kv(kv)
        .module("model");
    for pass in std::env::var("GPT2C_DISABLE_PASSES")
        .unwrap_or_default()
        .split(',')
    {
        if !pass.trim().is_empty() {
            builder = builder.disable(pass.trim());
        }
    }
    let c = builder.compile().map_err(|e| e.to_string())?;
    // The CLI and the text layer drive the model through `gpt2rt::Gpt2Model`, which gpt2c
    // implements for GPT-2 LM heads only; other graphs compile with `gpt2c compile`.
    if c.config.is_none() {
        return Err(
            "the gpt2 crate embeds a GPT-2 LM head; this graph is not one (compile it into \
             your own crate with gpt2c::Builder, or inspect it with `gpt2c inspect`)"
                .into(),
        );
    }
    let model_abs = std::fs::canonicalize(model).map_err(|e| e.to_string())?;
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let checkout = std::fs::canonicalize(manifest.join("..")).map_err(|e| e.to_string())?;
    let info = format!(
        "/// The ONNX file this binary was compiled from.\npub const MODEL_PATH: &str = {:?};\n\
         /// Its sha256.\npub const MODEL_SHA256: &str = {:?};\n\
         /// The generated source.\npub const SOURCE_PATH: &str = {:?};\n\
         /// Lines of generated source.\npub const SOURCE_LINES: usize = {};\n\
         /// The checkout this was built in: `gpt2 info` shows paths inside it relative to it.\n\
         pub const CHECKOUT: &str = {:?};\n",
        model_abs.display().to_string(),
        c.model_sha256,
        out.join("model.rs").display().to_string(),
        c.summary.source_lines,
        checkout.display().to_string()
    );
    std::fs::write(out.join("build_info.rs"), info).map_err(|e| e.to_string())?;
    println!(
        "cargo:warning=gpt2c: compiled {} in {:.1} s: {} lines, {} weight bytes",
        model.display(),
        t.elapsed().as_secs_f64(),
        c.summary.source_lines,
        c.summary.weight_bytes
    );
    Ok(())
}
