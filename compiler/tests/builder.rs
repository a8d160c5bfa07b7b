//! `gpt2c::Builder`, the build-script API: explicit options, files named by module, errors
//! that name the model file.

use gpt2c::codegen::layout::WeightFormat;
use gpt2c::Builder;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
        .join("model.onnx")
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpt2c-builder-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn writes_the_module_and_its_weights_where_asked() {
    let dir = temp("ok");
    let c = Builder::new(fixture("tiny"))
        .weights(WeightFormat::Q8)
        .disable("fuse-gelu")
        .module("tiny_q8")
        .out_dir(&dir)
        .cargo_metadata(false)
        .compile()
        .unwrap();
    assert_eq!(c.config.unwrap().n_layer, 2);
    let source = std::fs::read_to_string(dir.join("tiny_q8.rs")).unwrap();
    assert_eq!(c.summary.weights_file.parent(), Some(dir.as_path()));
    let name = c
        .summary
        .weights_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("gpt2c_weights_") && name.ends_with(".o"),
        "{name}"
    );
    let object = std::fs::read(&c.summary.weights_file).unwrap();
    assert!(object.len() > 64 + c.summary.weight_bytes);
    assert_eq!(&object[..4], b"\x7fELF");
    // Outside OUT_DIR the weights are found by absolute path; the options are in the header.
    let abs = std::path::absolute(&c.summary.weights_file).unwrap();
    assert!(source.contains(&abs.display().to_string()));
    assert!(source.contains("q8 weights"));
    assert!(source.contains("passes disabled: fuse-gelu"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_options_and_models_are_errors_that_name_them() {
    let dir = temp("bad");
    let b = || {
        Builder::new(fixture("tiny"))
            .out_dir(&dir)
            .cargo_metadata(false)
    };
    let e = b().module("Not-A-Name").compile().unwrap_err().to_string();
    assert!(
        e.contains("'Not-A-Name' is not a snake_case identifier"),
        "{e}"
    );
    let e = b()
        .disable("fuse-everything")
        .compile()
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown pass 'fuse-everything'"), "{e}");
    let e = Builder::new("/nonexistent/m.onnx")
        .out_dir(&dir)
        .cargo_metadata(false)
        .compile()
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/m.onnx"), "{e}");
    // A file that is not ONNX: the message names the file.
    let junk = dir.join("junk.onnx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&junk, b"not a model").unwrap();
    let e = Builder::new(&junk)
        .out_dir(&dir)
        .cargo_metadata(false)
        .compile()
        .unwrap_err()
        .to_string();
    assert!(e.contains(&junk.display().to_string()), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_module_keeps_only_its_newest_weight_object() {
    let dir = temp("stale");
    let build = |format, module: &str| {
        Builder::new(fixture("tiny"))
            .weights(format)
            .module(module)
            .out_dir(&dir)
            .cargo_metadata(false)
            .compile()
            .unwrap()
            .summary
            .weights_file
    };
    let q8 = build(WeightFormat::Q8, "a");
    let other = build(WeightFormat::Bf16, "b");
    let f32 = build(WeightFormat::F32, "a");
    assert_ne!(q8, f32);
    // Module a's q8 object went when a became f32; module b's stays.
    assert!(!q8.exists() && f32.exists() && other.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
