//! ONNX external data from hostile or odd files: copies of the `tiny-external` fixture
//! (tests/fixtures/tiny-external: model.onnx + model.data, made by
//! tools/save_external_data.py) in a scratch folder, with one tensor's entries or the files
//! changed. Each bad case must be refused by the library and by `gpt2c` (non-zero exit,
//! never a panic) with a message naming the tensor and what is wrong; the good variations
//! (a subfolder, a symlink that stays inside, no `length`, a relative model path) must load
//! the same weights as the untouched fixture.

use gpt2c::onnx::proto::{ModelProto, StringStringEntryProto, TensorProto};
use prost::Message;
use std::path::{Path, PathBuf};

mod common;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-external")
}

/// A fresh scratch folder for one case; removed by `Scratch::drop`.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("gpt2c-ext-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("model")).unwrap();
        Scratch(d)
    }

    /// The model's folder inside the scratch folder (so there is an outside to escape to).
    fn model_dir(&self) -> PathBuf {
        self.0.join("model")
    }

    fn model(&self) -> PathBuf {
        self.model_dir().join("model.onnx")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fixture's model, external tensors unresolved.
fn proto() -> ModelProto {
    let bytes = std::fs::read(fixture_dir().join("model.onnx")).unwrap();
    gpt2c::onnx::decode(bytes.into(), "fixture").unwrap()
}

/// The fixture's external tensor `name`.
fn tensor<'a>(m: &'a mut ModelProto, name: &str) -> &'a mut TensorProto {
    let t = m
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap();
    assert_eq!(t.data_location, 1, "'{name}' is external in the fixture");
    t
}

fn set(t: &mut TensorProto, key: &str, value: Option<&str>) {
    t.external_data.retain(|e| e.key != key);
    if let Some(v) = value {
        t.external_data.push(StringStringEntryProto {
            key: key.into(),
            value: v.into(),
        });
    }
}

/// Writes `m` as the scratch model, with the fixture's data file beside it.
fn write(s: &Scratch, m: &ModelProto) {
    std::fs::write(s.model(), m.encode_to_vec()).unwrap();
    std::fs::copy(
        fixture_dir().join("model.data"),
        s.model_dir().join("model.data"),
    )
    .unwrap();
}

/// Runs `gpt2c` with `args` in `dir`: (exit code, stdout, stderr). A panic fails the test.
fn gpt2c(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    common::gpt2c_in(Some(dir), args)
}

/// The library and both CLI commands refuse the scratch model with all of `want` (and the
/// tensor's name) in the message.
fn refused(s: &Scratch, tensor: &str, want: &[&str]) -> Vec<String> {
    let mut failures = Vec::new();
    let named = format!("tensor '{tensor}'");
    let check = |failures: &mut Vec<String>, how: &str, msg: &str| {
        for w in want.iter().copied().chain([named.as_str()]) {
            if !msg.contains(w) {
                failures.push(format!("{how}: missing '{w}' in:\n{msg}"));
            }
        }
    };
    match gpt2c::onnx::load(&s.model()) {
        Ok(_) => failures.push("load: accepted".into()),
        Err(e) => check(&mut failures, "load", &e.to_string()),
    }
    let model = s.model().display().to_string();
    let out = s.0.join("out").display().to_string();
    for args in [
        vec!["inspect", model.as_str()],
        vec!["emit", model.as_str(), "-o", out.as_str()],
    ] {
        let (code, _, err) = gpt2c(&s.0, &args);
        if code == Some(0) || code.is_none() {
            failures.push(format!("gpt2c {}: exit {code:?}", args[0]));
        } else {
            check(&mut failures, &format!("gpt2c {}", args[0]), &err);
        }
    }
    failures
}

const WTE: &str = "transformer.wte.weight";
/// Its bytes in model.data: 1000 × 32 f32 at offset 0.
const WTE_LEN: u64 = 128_000;

#[test]
fn hostile_external_data_is_refused_with_the_tensor_named() {
    let data_len = std::fs::metadata(fixture_dir().join("model.data"))
        .unwrap()
        .len();
    let outside = |s: &Scratch| {
        // A copy of the data outside the model's folder, so escaping would find a file.
        std::fs::copy(fixture_dir().join("model.data"), s.0.join("model.data")).unwrap();
        s.0.join("model.data")
    };
    type Setup = Box<dyn Fn(&Scratch, &mut TensorProto)>;
    let past = (data_len + 1).to_string();
    let near_end = (data_len - 10).to_string();
    let cases: Vec<(&str, Setup, Vec<String>)> = vec![
        (
            "dotdot",
            Box::new(move |s, t| {
                outside(s);
                set(t, "location", Some("../model.data"));
            }),
            vec![
                "location '../model.data' contains '..'".into(),
                "inside the model's folder".into(),
            ],
        ),
        (
            "absolute",
            Box::new(move |s, t| {
                let abs = outside(s).display().to_string();
                set(t, "location", Some(&abs));
            }),
            vec!["is an absolute path".into()],
        ),
        (
            "symlink-out",
            Box::new(move |s, t| {
                let target = outside(s);
                std::os::unix::fs::symlink(target, s.model_dir().join("link.data")).unwrap();
                set(t, "location", Some("link.data"));
            }),
            vec![
                "location 'link.data' resolves to".into(),
                "outside the model's folder".into(),
            ],
        ),
        (
            "symlinked-folder-out",
            Box::new(move |s, t| {
                outside(s);
                std::os::unix::fs::symlink(&s.0, s.model_dir().join("up")).unwrap();
                set(t, "location", Some("up/model.data"));
            }),
            vec!["outside the model's folder".into()],
        ),
        (
            "missing-file",
            Box::new(|_, t| set(t, "location", Some("nothere.data"))),
            vec!["the external file 'nothere.data' does not exist in the model's folder".into()],
        ),
        (
            "no-location",
            Box::new(|_, t| set(t, "location", None)),
            vec!["no 'location' entry".into()],
        ),
        (
            "folder",
            Box::new(|s, t| {
                std::fs::create_dir(s.model_dir().join("sub")).unwrap();
                set(t, "location", Some("sub"));
            }),
            vec!["'sub'".into(), "not a regular file".into()],
        ),
        (
            "offset-past-eof",
            Box::new(move |_, t| set(t, "offset", Some(&past))),
            vec![format!(
                "offset {} is past the end of 'model.data' ({data_len} bytes)",
                data_len + 1
            )],
        ),
        (
            "range-past-eof",
            Box::new(move |_, t| set(t, "offset", Some(&near_end))),
            vec![format!(
                "bytes {}..{} are past the end of 'model.data'",
                data_len - 10,
                data_len - 10 + WTE_LEN
            )],
        ),
        (
            "length-mismatch",
            Box::new(|_, t| set(t, "length", Some("127996"))),
            vec![
                "length 127996 at offset 0".into(),
                "f32 shape [1000, 32] takes 128000 bytes".into(),
            ],
        ),
        (
            "to-end-mismatch",
            Box::new(|_, t| set(t, "length", None)),
            vec![format!(
                "{data_len} bytes from offset 0 to the end of the file, as no length is given"
            )],
        ),
        (
            "bad-number",
            Box::new(|_, t| set(t, "offset", Some("-4096"))),
            vec!["'offset' is '-4096', expected a byte count".into()],
        ),
        (
            "repeated-key",
            Box::new(|_, t| {
                t.external_data.push(StringStringEntryProto {
                    key: "offset".into(),
                    value: "4096".into(),
                })
            }),
            vec!["the key 'offset' appears twice".into()],
        ),
        (
            "inline-too",
            Box::new(|_, t| t.float_data = vec![0.0; 32_000]),
            vec!["also has data inside the model file".into()],
        ),
    ];
    let mut failures = Vec::new();
    for (name, setup, want) in &cases {
        let s = Scratch::new(name);
        let mut m = proto();
        setup(&s, tensor(&mut m, WTE));
        write(&s, &m);
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        failures.extend(
            refused(&s, WTE, &want)
                .into_iter()
                .map(|f| format!("{name}: {f}")),
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every constant of a model loaded from `path`, by name.
fn constants(path: &Path) -> Vec<(String, gpt2c::ir::Tensor)> {
    let g = gpt2c::onnx::load_graph(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v: Vec<_> = g
        .values
        .iter()
        .filter_map(|v| v.konst.clone().map(|k| (v.name.clone(), k)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn subfolders_inner_symlinks_open_ranges_and_relative_paths_load_the_same_weights() {
    let want = constants(&fixture_dir().join("model.onnx"));
    let s = Scratch::new("good");
    let mut m = proto();
    let last = m
        .graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .filter(|t| t.data_location == 1)
        .max_by_key(|t| {
            t.external_data
                .iter()
                .find(|e| e.key == "offset")
                .map_or(0, |e| e.value.parse::<u64>().unwrap())
        })
        .unwrap()
        .name
        .clone();
    // The data in a subfolder; wte through a symlink that stays inside; the last tensor
    // without a length (to the end of the file) and with a checksum, which is ignored.
    std::fs::create_dir(s.model_dir().join("weights")).unwrap();
    std::fs::copy(
        fixture_dir().join("model.data"),
        s.model_dir().join("weights/model.data"),
    )
    .unwrap();
    std::os::unix::fs::symlink("weights/model.data", s.model_dir().join("alias.data")).unwrap();
    for t in &mut m.graph.as_mut().unwrap().initializer {
        if t.data_location == 1 {
            set(t, "location", Some("./weights/model.data"));
        }
    }
    set(tensor(&mut m, WTE), "location", Some("alias.data"));
    let t = tensor(&mut m, &last);
    set(t, "length", None);
    set(t, "checksum", Some("not checked"));
    std::fs::write(s.model(), m.encode_to_vec()).unwrap();

    let loaded = gpt2c::onnx::load_files(&s.model()).unwrap();
    assert_eq!(
        loaded.data_files.len(),
        1,
        "the symlink and the file are one file"
    );
    assert!(loaded.data_files[0]
        .path
        .ends_with("model/weights/model.data"));
    assert_eq!(constants(&s.model()), want);

    // A relative model path: its folder is the working directory.
    let (code, out, err) = gpt2c(&s.model_dir(), &["inspect", "model.onnx", "--len", "3"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("+ 0.38 MB of external data in 1 file"),
        "{out}"
    );
}

#[test]
fn the_builder_reports_the_data_files_it_read() {
    let s = Scratch::new("builder");
    let c = gpt2c::Builder::new(fixture_dir().join("model.onnx"))
        .module("tiny_external")
        .out_dir(s.0.join("out"))
        .cargo_metadata(false)
        .compile()
        .unwrap();
    let data = std::fs::canonicalize(fixture_dir().join("model.data")).unwrap();
    assert_eq!(c.data_files, vec![data]);
    let inline = gpt2c::Builder::new(fixture_dir().join("../tiny/model.onnx"))
        .module("tiny")
        .out_dir(s.0.join("out"))
        .cargo_metadata(false)
        .compile()
        .unwrap();
    assert!(inline.data_files.is_empty());
    // The same weights give the same blob.
    let blob = |c: &gpt2c::driver::Compiled| {
        let object = std::fs::read(&c.summary.weights_file).unwrap();
        object[64..64 + c.summary.weight_bytes].to_vec()
    };
    assert_eq!(blob(&c), blob(&inline));
}
