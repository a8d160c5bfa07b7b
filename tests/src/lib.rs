//! Shared test harness: reads fixture manifests (format in tools/README.md) and compares
//! outputs with DESIGN.md's tolerance, printing the first mismatches.

use gpt2c::ir::{DType, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Repository root (the tests crate lives one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A tensor stored next to a manifest.
#[derive(Debug)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: Tensor,
}

#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub len: Option<usize>,
    /// B: the number of independent sequences in the inputs (`"batch"`, 1 when absent).
    pub batch: usize,
    pub inputs: Vec<NamedTensor>,
    pub outputs: Vec<NamedTensor>,
}

impl Case {
    /// The token ids of batch entry `b` (`inputs[0]`, `[B, 1, L]` or `[B, L]`).
    pub fn entry_ids(&self, b: usize) -> Vec<i64> {
        let ids = self.inputs[0]
            .tensor
            .to_vec::<i64>()
            .expect("i64 token ids");
        let n = ids.len() / self.batch;
        ids[b * n..(b + 1) * n].to_vec()
    }
}

#[derive(Debug)]
pub struct Manifest {
    pub dir: PathBuf,
    pub model: PathBuf,
    pub json: Value,
    pub cases: Vec<Case>,
}

fn dtype_of(s: &str) -> DType {
    match s {
        "float32" => DType::F32,
        "float64" => DType::F64,
        "int64" => DType::I64,
        "int32" => DType::I32,
        "bool" => DType::Bool,
        "uint8" => DType::U8,
        "int8" => DType::I8,
        other => panic!("unknown dtype '{other}' in manifest"),
    }
}

fn read_tensors(dir: &Path, list: &Value) -> Vec<NamedTensor> {
    list.as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let file = dir.join(e["file"].as_str().expect("file"));
            let bytes =
                std::fs::read(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
            let shape = e["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            let tensor = Tensor::from_raw(
                dtype_of(e["dtype"].as_str().expect("dtype")),
                shape,
                bytes.into(),
            )
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
            NamedTensor {
                name: e["name"].as_str().expect("name").to_string(),
                tensor,
            }
        })
        .collect()
}

impl Manifest {
    /// Reads `manifest.json` (or another manifest file) and all the data it names; the model
    /// is `model.onnx` beside it unless `model` is given.
    pub fn read(manifest: &Path, model: Option<PathBuf>) -> Manifest {
        let dir = manifest.parent().expect("dir").to_path_buf();
        let text = std::fs::read_to_string(manifest)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let json: Value = serde_json::from_str(&text).expect("manifest json");
        let cases = json["cases"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let case = Case {
                    name: c["name"].as_str().unwrap_or("main").to_string(),
                    len: c["len"].as_u64().map(|l| l as usize),
                    batch: c["batch"].as_u64().map_or(1, |b| b as usize),
                    inputs: read_tensors(&dir, &c["inputs"]),
                    outputs: read_tensors(&dir, &c["outputs"]),
                };
                // A batch case's first input is its tokens, [B, 1, L] or [B, L].
                if c["batch"].is_u64() {
                    let tokens = case.inputs.first().map(|t| t.tensor.shape());
                    assert_eq!(
                        tokens.and_then(|s| s.first()),
                        Some(&case.batch),
                        "{}: case {} has batch {} but its first input is {tokens:?}",
                        manifest.display(),
                        case.name,
                        case.batch,
                    );
                }
                case
            })
            .collect();
        let model = model.unwrap_or_else(|| dir.join("model.onnx"));
        Manifest {
            dir,
            model,
            json,
            cases,
        }
    }

    /// Every `*/manifest.json` directly below `root`, sorted.
    pub fn all_in(root: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root)
            .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
            .map(|e| e.expect("dir entry").path().join("manifest.json"))
            .filter(|p| p.exists())
            .collect();
        v.sort();
        v
    }
}

/// DESIGN.md's f32 tolerance: max |ours − ref| ≤ `rel` · max(1, max |ref|), and for outputs
/// named like logits, identical argmax on every row whose top-two gap exceeds that bound.
/// Integers and bools must match exactly. Returns a description of the first mismatches.
pub fn compare(what: &str, ours: &Tensor, reference: &Tensor, rel: f64) -> Result<f64, String> {
    if ours.shape() != reference.shape() || ours.dtype() != reference.dtype() {
        return Err(format!(
            "{what}: got {}{:?}, expected {}{:?}",
            ours.dtype(),
            ours.shape(),
            reference.dtype(),
            reference.shape()
        ));
    }
    let n = reference.numel();
    if !reference.dtype().is_float() {
        let bad: Vec<String> = (0..n)
            .filter(|&i| ours.get_f64(i) != reference.get_f64(i))
            .take(5)
            .map(|i| format!("[{i}] {} != {}", ours.get_f64(i), reference.get_f64(i)))
            .collect();
        return if bad.is_empty() {
            Ok(0.0)
        } else {
            Err(format!("{what}: {}", bad.join(", ")))
        };
    }
    let max_ref = (0..n)
        .map(|i| reference.get_f64(i).abs())
        .fold(0.0, f64::max);
    let tol = rel * max_ref.max(1.0);
    let mut worst = 0.0f64;
    let mut bad = Vec::new();
    for i in 0..n {
        let (a, b) = (ours.get_f64(i), reference.get_f64(i));
        let d = (a - b).abs();
        if d.is_nan() || d > tol {
            if bad.len() < 5 {
                bad.push(format!("[{i}] ours {a} ref {b}"));
            }
            worst = f64::INFINITY;
        } else {
            worst = worst.max(d);
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "{what}: differences above {tol:e}: {}",
            bad.join(", ")
        ));
    }
    if what.contains("logits") {
        let v = *reference.shape().last().unwrap_or(&1);
        for row in 0..n / v.max(1) {
            let get = |t: &Tensor| (0..v).map(|j| t.get_f64(row * v + j)).collect::<Vec<_>>();
            let (r, o) = (get(reference), get(ours));
            let argmax = |x: &[f64]| (0..x.len()).fold(0, |m, j| if x[j] > x[m] { j } else { m });
            let top = argmax(&r);
            let second = (0..v)
                .filter(|&j| j != top)
                .map(|j| r[j])
                .fold(f64::NEG_INFINITY, f64::max);
            if r[top] - second > tol && argmax(&o) != top {
                return Err(format!(
                    "{what}: row {row} argmax {} != reference {top}",
                    argmax(&o)
                ));
            }
        }
    }
    Ok(worst)
}

/// DESIGN.md's tolerance for f32 model outputs.
pub const MODEL_TOL: f64 = 1e-3;

/// The batch axis of an output: the one axis where the output of one entry (`entry`) has 1
/// and the reference output of the whole batch has `batch`, all others equal (logits
/// `[B, 1, L, V]` → 0, the 2019 code's presents `[2, B, H, L, D]` → 1).
pub fn batch_axis(entry: &[usize], reference: &[usize], batch: usize) -> Result<usize, String> {
    let differ: Vec<usize> = (0..entry.len().max(reference.len()))
        .filter(|&i| entry.get(i) != reference.get(i))
        .collect();
    match differ[..] {
        [a] if entry.len() == reference.len() && entry[a] == 1 && reference[a] == batch => Ok(a),
        _ => Err(format!(
            "no batch axis of size {batch}: one entry's output is {entry:?}, the reference {reference:?}"
        )),
    }
}

/// The outputs of a batch's entries, run one at a time, as one output of the whole batch:
/// `parts` (one per entry, in order, the same shape) concatenated along their batch axis
/// (`batch_axis` against `reference`). One part is returned as it is.
pub fn concat_entries(
    what: &str,
    mut parts: Vec<Tensor>,
    reference: &Tensor,
) -> Result<Tensor, String> {
    if parts.len() == 1 {
        return Ok(parts.pop().expect("one part"));
    }
    let shape = parts[0].shape().to_vec();
    let axis =
        batch_axis(&shape, reference.shape(), parts.len()).map_err(|e| format!("{what}: {e}"))?;
    let dtype = parts[0].dtype();
    if let Some(p) = parts
        .iter()
        .find(|p| p.shape() != shape || p.dtype() != dtype)
    {
        return Err(format!(
            "{what}: entries differ: {}{:?} and {dtype}{shape:?}",
            p.dtype(),
            p.shape()
        ));
    }
    let outer: usize = shape[..axis].iter().product();
    let chunk = shape[axis..].iter().product::<usize>() * dtype.size();
    let mut bytes = Vec::with_capacity(outer * chunk * parts.len());
    for o in 0..outer {
        for p in &parts {
            bytes.extend_from_slice(&p.bytes()[o * chunk..(o + 1) * chunk]);
        }
    }
    let mut out = shape;
    out[axis] = parts.len();
    Tensor::from_raw(dtype, out, bytes.into()).map_err(|e| format!("{what}: {e}"))
}
/// A committed fixture with its graph specialized to the full context, as the generated
/// code of it is.
pub struct SpecializedFixture {
    pub manifest: Manifest,
    pub specialized: gpt2c::ir::Graph,
    /// The token input's name.
    pub input: String,
    /// Its static shape (`[1, 1, full]` or `[1, full]`).
    pub token_shape: Vec<usize>,
    /// The context the code is specialized to.
    pub full: usize,
    pub vocab: usize,
}

impl SpecializedFixture {
    /// `tests/fixtures/<dir>`.
    pub fn load(dir: &str) -> SpecializedFixture {
        let path = repo_root()
            .join("tests/fixtures")
            .join(dir)
            .join("manifest.json");
        let manifest = Manifest::read(&path, None);
        let graph = gpt2c::onnx::load_graph(&manifest.model).unwrap();
        let graph = gpt2c::gpt2::bind_side_inputs(&graph).unwrap();
        let config = gpt2c::gpt2::Gpt2Config::derive(&graph).unwrap();
        let shapes = gpt2c::driver::input_shapes(&graph, Some(&config)).unwrap();
        let full = *shapes[0].1.last().unwrap();
        let token_shape = shapes[0].1.clone();
        let input = shapes[0].0.clone();
        let specialized = gpt2c::compile_graph(&graph, shapes, |_, _, _| {}).unwrap();
        SpecializedFixture {
            manifest,
            specialized,
            input,
            token_shape,
            full,
            vocab: config.vocab,
        }
    }

    /// The ids of batch entry `b` of case `i` (L of them) padded to the full context with
    /// the last id, and L.
    pub fn padded(&self, i: usize, b: usize) -> (Vec<i64>, usize) {
        let case = &self.manifest.cases[i];
        let len = case.len.unwrap();
        let ids = case.entry_ids(b);
        assert_eq!(ids.len(), len, "{}: ids of one entry", case.name);
        let mut padded = vec![*ids.last().unwrap(); self.full];
        padded[..len].copy_from_slice(&ids);
        (padded, len)
    }

    /// The interpreter on `graph` (this fixture's specialized graph or a variant of it).
    pub fn interpret(&self, graph: &gpt2c::ir::Graph, ids: &[i64]) -> Vec<Tensor> {
        let input = Tensor::from_vec(self.token_shape.clone(), ids.to_vec());
        gpt2c::interp::run(graph, &[(self.input.as_str(), input)]).unwrap()
    }
}

pub mod compiled;
pub mod fuzz;
