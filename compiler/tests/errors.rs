//! Bad input gets a clear error and a non-zero exit from `gpt2c`, never a panic.

use bytes::Bytes;
use gpt2c::onnx::proto::{ModelProto, NodeProto, TensorProto};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
        .join("model.onnx")
}

fn tiny() -> ModelProto {
    gpt2c::onnx::load(&fixture("tiny")).unwrap()
}

/// Writes `bytes` to a temp file and runs `gpt2c inspect` on it: (success, stdout, stderr).
fn inspect_bytes(tag: &str, bytes: &[u8], extra: &[&str]) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("gpt2c-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.onnx"));
    std::fs::write(&path, bytes).unwrap();
    inspect(&path, extra)
}

fn inspect(path: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpt2c"))
        .arg("inspect")
        .arg(path)
        .args(extra)
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!se.contains("panicked"), "gpt2c panicked:\n{se}");
    (out.status.success(), so, se)
}

fn expect_error(tag: &str, bytes: &[u8], extra: &[&str], needles: &[&str]) {
    let (ok, _, err) = inspect_bytes(tag, bytes, extra);
    assert!(!ok, "{tag}: expected failure");
    assert!(err.starts_with("error: "), "{tag}: {err}");
    for n in needles {
        assert!(
            err.contains(n),
            "{tag}: error should mention '{n}', got:\n{err}"
        );
    }
}

#[test]
fn inspect_prints_the_configuration() {
    let (ok, out, err) = inspect(&fixture("tiny"), &["--len", "13"]);
    assert!(ok, "{err}");
    for want in [
        "vocabulary size 1000",
        "layers 2, heads 2, embedding width 32",
        "context 64",
        "opset 10",
        "after specialize (L=13)",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    assert!(!out.lines().last().unwrap_or("").is_empty());
}

#[test]
fn not_onnx_and_truncated_files() {
    expect_error("empty", b"", &[], &["not a valid ONNX model", "empty"]);
    expect_error(
        "text",
        b"hello, this is a text file and not a model\n",
        &[],
        &["not a valid ONNX model"],
    );
    let bytes = std::fs::read(fixture("tiny")).unwrap();
    for cut in [10, 1000, bytes.len() / 2, bytes.len() - 3] {
        expect_error(
            &format!("cut{cut}"),
            &bytes[..cut],
            &[],
            &["not a valid ONNX model"],
        );
    }
    let (ok, _, err) = inspect(Path::new("/nonexistent/model.onnx"), &[]);
    assert!(!ok && err.contains("/nonexistent/model.onnx"), "{err}");
}

#[test]
fn unsupported_ops_are_all_named() {
    let mut m = tiny();
    let g = m.graph.as_mut().unwrap();
    let first = g.node.iter().position(|n| n.op_type == "Tanh").unwrap();
    g.node[first].op_type = "Erf".into();
    let second = g.node.iter().position(|n| n.op_type == "Softmax").unwrap();
    g.node[second].op_type = "LogSoftmax".into();
    g.node.push(NodeProto {
        op_type: "Relu".into(),
        domain: "com.example".into(),
        name: "custom".into(),
        ..Default::default()
    });
    let (n1, n2) = (g.node[first].name.clone(), g.node[second].name.clone());
    expect_error(
        "unsupported",
        &m.encode_to_vec(),
        &[],
        &[
            "3 unsupported node(s)",
            &n1,
            "op Erf",
            &n2,
            "op LogSoftmax",
            "opset 10",
            "com.example",
        ],
    );
}

#[test]
fn bad_tensors_are_refused() {
    let mut m = tiny();
    let t: &mut TensorProto = &mut m.graph.as_mut().unwrap().initializer[0];
    let name = t.name.clone();
    t.data_location = 1;
    t.external_data = vec![gpt2c::onnx::proto::StringStringEntryProto {
        key: "location".into(),
        value: "weights.bin".into(),
    }];
    t.raw_data = Bytes::new();
    expect_error(
        "external",
        &m.encode_to_vec(),
        &[],
        &[&name, "external file", "weights.bin"],
    );

    let mut m = tiny();
    m.graph.as_mut().unwrap().initializer[0].data_type = 10;
    expect_error("f16", &m.encode_to_vec(), &[], &["FLOAT16"]);

    let mut m = tiny();
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    t.dims = vec![1 << 40, 1 << 30];
    expect_error("overflow", &m.encode_to_vec(), &[], &["overflows"]);

    let mut m = tiny();
    m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 20, 1 << 10];
    expect_error(
        "short",
        &m.encode_to_vec(),
        &[],
        &["needs 4294967296 bytes"],
    );
}

#[test]
fn lengths_outside_the_context_are_refused() {
    let (ok, _, err) = inspect(&fixture("tiny"), &["--len", "65"]);
    assert!(
        !ok && err.contains("exceeds the model's context of 64"),
        "{err}"
    );
    let (ok, _, err) = inspect(&fixture("tiny"), &["--len", "0"]);
    assert!(!ok && err.contains("at least 1"), "{err}");
    let (ok, _, err) = inspect(&fixture("static"), &["--len", "13"]);
    assert!(!ok && err.contains("static length of 64"), "{err}");
    let (ok, out, _) = inspect(&fixture("static"), &[]);
    assert!(ok && out.contains("after specialize (L=64)"));
}

#[test]
fn missing_definitions_are_refused() {
    let mut m = tiny();
    let g = m.graph.as_mut().unwrap();
    let gone = g.initializer.remove(3).name;
    expect_error(
        "missing",
        &m.encode_to_vec(),
        &[],
        &[&gone, "which no node, input or initializer defines"],
    );
}
