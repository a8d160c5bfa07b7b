//! Bad input gets a clear error and a non-zero exit from `gpt2c`, never a panic: one table
//! of cases, each with the words its message must contain. Where the build script's choice
//! of model fails (`GPT2_ONNX` pointing nowhere), `model_path::resolve` is checked directly.

use bytes::Bytes;
use gpt2c::onnx::proto::{DimensionValue, ModelProto, NodeProto, StringStringEntryProto};
use prost::Message;
use std::path::{Path, PathBuf};

mod common;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
        .join("model.onnx")
}

fn tiny() -> ModelProto {
    gpt2c::onnx::load(&fixture("tiny")).unwrap()
}

/// This test binary's scratch directory, removed when the test that made it ends.
fn tmp_dir() -> PathBuf {
    let thread = std::thread::current().name().unwrap_or("main").to_string();
    let dir = std::env::temp_dir().join(format!("gpt2c-errors-{}-{thread}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        std::fs::remove_dir_all(tmp_dir()).ok();
    }
}

/// Writes `bytes` to a temp file named after the case; returns its path.
fn file(tag: &str, bytes: &[u8]) -> String {
    let path = tmp_dir().join(format!("{tag}.onnx"));
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// Runs `gpt2c` with `args`: (exit code, stdout, stderr). A panic fails the test.
fn gpt2c(args: &[&str]) -> (Option<i32>, String, String) {
    common::gpt2c_in(None, args)
}

/// One bad invocation and the words its error message must contain.
struct Case {
    name: String,
    args: Vec<String>,
    want: Vec<String>,
}

fn case(name: &str, args: &[&str], want: &[&str]) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        want: want.iter().map(|s| s.to_string()).collect(),
    }
}

/// A bad model file: `inspect` and `emit` must both refuse it with the same words.
fn bad_model(name: &str, model: &str, want: &[&str]) -> [Case; 2] {
    let out = tmp_dir().join(format!("{name}.out")).display().to_string();
    [
        case(&format!("inspect {name}"), &["inspect", model], want),
        case(&format!("emit {name}"), &["emit", model, "-o", &out], want),
    ]
}

fn table() -> Vec<Case> {
    let tiny_path = fixture("tiny").display().to_string();
    let static_path = fixture("static").display().to_string();
    let bytes = std::fs::read(&tiny_path).unwrap();
    let mut cases = Vec::new();

    // Not ONNX, or cut short.
    let not_onnx = "not a valid ONNX model";
    cases.extend(bad_model(
        "empty",
        &file("empty", b""),
        &[not_onnx, "empty"],
    ));
    cases.extend(bad_model(
        "text",
        &file("text", b"hello, this is a text file and not a model\n"),
        &[not_onnx],
    ));
    for cut in [10, 1000, bytes.len() / 2, bytes.len() - 3] {
        let name = format!("cut{cut}");
        cases.extend(bad_model(
            &name,
            &file(&name, &bytes[..cut]),
            &[not_onnx, "truncated"],
        ));
    }
    cases.extend(bad_model(
        "missing file",
        "/nonexistent/model.onnx",
        &["cannot read", "/nonexistent/model.onnx"],
    ));

    // Unsupported ops: every one is named, with its node and opset.
    let mut m = tiny();
    let g = m.graph.as_mut().unwrap();
    let first = g.node.iter().position(|n| n.op_type == "Tanh").unwrap();
    g.node[first].op_type = "Selu".into();
    let second = g.node.iter().position(|n| n.op_type == "Softmax").unwrap();
    g.node[second].op_type = "LogSoftmax".into();
    g.node.push(NodeProto {
        op_type: "Relu".into(),
        domain: "com.example".into(),
        name: "custom".into(),
        ..Default::default()
    });
    let (n1, n2) = (g.node[first].name.clone(), g.node[second].name.clone());
    cases.extend(bad_model(
        "unsupported",
        &file("unsupported", &m.encode_to_vec()),
        &[
            "3 unsupported node(s)",
            &format!("node '{n1}': op Selu"),
            &format!("node '{n2}': op LogSoftmax"),
            "opset 10",
            "node 'custom': op Relu (com.example",
        ],
    ));

    // Missing initializer.
    let mut m = tiny();
    let gone = m.graph.as_mut().unwrap().initializer.remove(3).name;
    cases.extend(bad_model(
        "missing initializer",
        &file("missing", &m.encode_to_vec()),
        &[
            &format!("uses '{gone}'"),
            "which no node, input or initializer defines",
        ],
    ));

    // Tensors: external data, unsupported dtype, dims that overflow, data too short.
    let mut m = tiny();
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    let name = t.name.clone();
    t.data_location = 1;
    t.external_data = vec![StringStringEntryProto {
        key: "location".into(),
        value: "weights.bin".into(),
    }];
    t.raw_data = Bytes::new();
    cases.extend(bad_model(
        "external data",
        &file("external", &m.encode_to_vec()),
        &[
            &format!("tensor '{name}'"),
            "external file",
            "'weights.bin'",
        ],
    ));
    let mut m = tiny();
    m.graph.as_mut().unwrap().initializer[0].data_type = 10;
    cases.extend(bad_model(
        "f16",
        &file("f16", &m.encode_to_vec()),
        &["unsupported data type FLOAT16"],
    ));
    let mut m = tiny();
    m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 40, 1 << 30];
    cases.extend(bad_model(
        "overflow",
        &file("overflow", &m.encode_to_vec()),
        &["overflows"],
    ));
    let mut m = tiny();
    m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 20, 1 << 10];
    cases.extend(bad_model(
        "short",
        &file("short", &m.encode_to_vec()),
        &["needs 4294967296 bytes"],
    ));

    // The token input with the wrong rank or element type.
    let mut m = tiny();
    let input = &mut m.graph.as_mut().unwrap().input[0];
    let tt = input.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap();
    // (Rank 2, `[B, L]`, is what later exporters write; rank 4 is neither.)
    let dims = &mut tt.shape.as_mut().unwrap().dim;
    dims.insert(1, dims[1].clone());
    cases.extend(bad_model(
        "input rank",
        &file("rank", &m.encode_to_vec()),
        &[
            "input 'input1'",
            "a GPT-2 token input is i64[B,1,L] or i64[B,L]",
        ],
    ));
    let mut m = tiny();
    let input = &mut m.graph.as_mut().unwrap().input[0];
    let tt = input.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap();
    tt.elem_type = 1;
    cases.extend(bad_model(
        "input dtype",
        &file("dtype", &m.encode_to_vec()),
        &[
            "input 'input1' is f32",
            "a GPT-2 token input is i64[B,1,L] or i64[B,L]",
        ],
    ));
    let mut m = tiny();
    let input = &mut m.graph.as_mut().unwrap().input[0];
    let tt = input.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap();
    tt.shape.as_mut().unwrap().dim[2].value = Some(DimensionValue::DimValue(1 << 62));
    cases.extend(bad_model(
        "huge input",
        &file("huge", &m.encode_to_vec()),
        &["'input1' is declared with dims", "more than 2^40 elements"],
    ));

    // Lengths outside the context.
    for (len, want) in [
        ("65", "exceeds the model's context of 64"),
        ("0", "at least 1"),
    ] {
        cases.push(case(
            &format!("--len {len}"),
            &["inspect", &tiny_path, "--len", len],
            &[want],
        ));
    }
    cases.push(case(
        "--len on a static model",
        &["inspect", &static_path, "--len", "13"],
        &["static length of 64"],
    ));

    // Flags and values the command line refuses.
    cases.push(case(
        "--len abc",
        &["inspect", &tiny_path, "--len", "abc"],
        &["invalid value 'abc'", "--len"],
    ));
    cases.push(case(
        "--len -1",
        &["inspect", &tiny_path, "--len", "-1"],
        &["unexpected argument '-1'"],
    ));
    cases.push(case(
        "unknown flag",
        &["inspect", &tiny_path, "--frobnicate"],
        &["unexpected argument '--frobnicate'"],
    ));
    cases.push(case(
        "unknown pass",
        &["inspect", &tiny_path, "--disable", "fuse-everything"],
        &["unknown pass 'fuse-everything'", "fuse-gelu"],
    ));
    cases.push(case(
        "unknown command",
        &["frobnicate"],
        &["unrecognized subcommand 'frobnicate'"],
    ));
    cases.push(case("no command", &[], &["Usage"]));
    cases.push(case(
        "inspect without a model",
        &["inspect"],
        &["required", "<MODEL>"],
    ));
    cases.push(case(
        "emit without -o",
        &["emit", &tiny_path],
        &["required", "--out"],
    ));
    cases.push(case(
        "emit into an impossible directory",
        &["emit", &tiny_path, "-o", "/proc/gpt2c-cannot-be-here"],
        &["/proc/gpt2c-cannot-be-here"],
    ));
    cases
}

#[test]
fn every_bad_input_gets_its_error() {
    let cases = table();
    let _cleanup = Cleanup;
    let mut failures = Vec::new();
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let (code, _, err) = gpt2c(&args);
        if code == Some(0) || code.is_none() {
            failures.push(format!("{}: exit {code:?}, expected an error", c.name));
            continue;
        }
        for w in &c.want {
            if !err.contains(w.as_str()) {
                failures.push(format!("{}: missing '{w}' in:\n{err}", c.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn errors_are_one_line_prefixed_error() {
    let _cleanup = Cleanup;
    // Our own errors (not clap's usage errors) start with "error: " and exit 1.
    let (code, _, err) = gpt2c(&["inspect", &file("empty", b"")]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("error: "), "{err}");
}

#[test]
fn gpt2_onnx_pointing_nowhere_names_the_path() {
    use gpt2c::model_path::resolve;
    use std::ffi::OsStr;
    let default = fixture("tiny");
    let nowhere = Path::new("/nowhere/at/all/model.onnx");
    let e = resolve(Some(nowhere.as_os_str()), &default).unwrap_err();
    assert!(
        e.contains("GPT2_ONNX") && e.contains("/nowhere/at/all/model.onnx"),
        "{e}"
    );
    let e = resolve(Some(OsStr::new("models/x.onnx")), &default).unwrap_err();
    assert!(
        e.contains("absolute path") && e.contains("models/x.onnx"),
        "{e}"
    );
    let dir = std::env::temp_dir();
    let e = resolve(Some(dir.as_os_str()), &default).unwrap_err();
    assert!(e.contains(&dir.display().to_string()), "{e}");
    let e = resolve(None, nowhere).unwrap_err();
    assert!(
        e.contains("default model /nowhere/at/all/model.onnx") && e.contains("GPT2_ONNX"),
        "{e}"
    );
    // Unset or empty: the default; set: that file.
    assert_eq!(resolve(None, &default).unwrap(), default);
    assert_eq!(resolve(Some(OsStr::new("")), &default).unwrap(), default);
    let other = fixture("static");
    assert_eq!(resolve(Some(other.as_os_str()), &default).unwrap(), other);
    // The build script decides with this function.
    let build_rs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../generated/build.rs");
    let src = std::fs::read_to_string(build_rs).unwrap();
    assert!(src.contains("gpt2c::model_path::resolve("));
}

#[test]
fn inspect_prints_the_configuration() {
    let tiny = fixture("tiny").display().to_string();
    let (code, out, err) = gpt2c(&["inspect", &tiny, "--len", "13"]);
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "vocabulary size 1000",
        "layers 2, heads 2, embedding width 32",
        "context 64",
        "opset 10",
        "after specialize (L=13)",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    let stat = fixture("static").display().to_string();
    let (code, out, err) = gpt2c(&["inspect", &stat]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("after specialize (L=64)"), "{out}");
}
