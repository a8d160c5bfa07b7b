//! A mutation fuzzer for the ONNX loader and the whole compiler, on stable Rust.
//!
//! Each case starts from one real model (`tests/fixtures/*`, `tests/ops/*`), applies a few
//! random mutations and runs `gpt2c::driver::compile_bytes_as` on the result, as the file of
//! the seed model's folder (so external data resolves there) (decode → external data → import →
//! GPT-2 configuration → specialize and the passes → code generation; the source stays in
//! memory and the weight object to a scratch folder removed after each case). Mutations are field-level (the file decoded
//! with gpt2c's prost types, one field changed: dims, data types, raw data lengths and
//! contents, external-data entries (locations that escape the folder or name other files,
//! offsets and lengths out of range or not numbers, missing and repeated keys), attribute
//! values and types, node wiring, op types, graph inputs and outputs, opsets; then re-encoded) followed by byte-level ones (bit flips, truncation, insertion,
//! deletion, duplicated ranges, huge varints).
//!
//! The compiler must answer every case with `Ok` or an `Err`. Findings are:
//! - a panic (caught per case; its message and location are kept),
//! - a case running past the time budget (a watchdog thread ends the process and prints how
//!   to replay the case),
//! - an allocation above the cap (`CappedAlloc`, installed as the global allocator by the
//!   fuzz binary and test, refuses it after printing the case).
//!
//! Case `i` of seed `s` depends on nothing but `(s, i)`, so any case replays alone:
//! `cargo run --release -p gpt2c-tests --bin fuzz -- --seed s --case i`.

use bytes::Bytes;
use gpt2c::onnx::proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto,
    StringStringEntryProto, TensorProto, TensorSegment, ValueInfoProto,
};
use prost::Message;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- random numbers ----

/// SplitMix64: small, fast, and good enough to drive mutations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator for case `index` of run `seed`: independent of every other case.
    pub fn for_case(seed: u64, index: u64) -> Rng {
        let mut r = Rng(seed);
        let s = r.next_u64();
        Rng(s ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// An integer that tends to break things: boundaries, powers of two, overflows.
    pub fn int(&mut self) -> i64 {
        const INTERESTING: &[i64] = &[
            0,
            1,
            -1,
            2,
            -2,
            3,
            4,
            7,
            8,
            16,
            63,
            64,
            65,
            127,
            128,
            255,
            256,
            1000,
            1024,
            50257,
            65536,
            i32::MAX as i64,
            i32::MIN as i64,
            u32::MAX as i64,
            1 << 32,
            1 << 40,
            1 << 53,
            1 << 62,
            i64::MAX,
            i64::MIN,
            i64::MAX - 1,
            i64::MIN + 1,
        ];
        if self.one_in(3) {
            self.below(201) as i64 - 100
        } else {
            *self.pick(INTERESTING)
        }
    }

    pub fn float(&mut self) -> f32 {
        const INTERESTING: &[f32] = &[
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            2.0,
            3.0,
            1e-5,
            1e30,
            -1e30,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
        ];
        *self.pick(INTERESTING)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

// ---- the seed corpus ----

/// One real model the mutations start from.
pub struct SeedModel {
    pub name: String,
    /// Its `model.onnx`: mutated cases are compiled as this file (external data resolves in
    /// its folder; `tiny-external` keeps its weights there).
    pub path: PathBuf,
    pub bytes: Bytes,
    pub model: ModelProto,
}

/// The committed models: the GPT-2 fixtures and every per-op case (including the ones the
/// compiler must reject).
pub fn load_corpus(root: &Path) -> Vec<SeedModel> {
    let mut dirs = Vec::new();
    for sub in ["tests/fixtures", "tests/ops", "tests/ops/errors"] {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(sub))
            .unwrap_or_else(|e| panic!("{sub}: {e}"))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.join("model.onnx").is_file())
            .collect();
        entries.sort();
        dirs.extend(entries.into_iter().map(|p| (sub, p)));
    }
    dirs.into_iter()
        .map(|(sub, dir)| {
            let name = format!(
                "{}/{}",
                sub.trim_start_matches("tests/"),
                dir.file_name().unwrap().to_string_lossy()
            );
            let path = dir.join("model.onnx");
            let bytes = Bytes::from(std::fs::read(&path).expect("model.onnx"));
            let model = ModelProto::decode(bytes.clone()).expect("seed models decode");
            SeedModel {
                name,
                path,
                bytes,
                model,
            }
        })
        .collect()
}

// ---- field-level mutations ----

/// Op types a node may be changed to besides the supported ones (`gpt2c::ops::REGISTRY`):
/// fused ops that are not ONNX, an unsupported one, and none.
const OTHER_OP_TYPES: &[&str] = &["LayerNorm", "Attention", "Erf", ""];

const ATTR_NAMES: &[&str] = &[
    "axis",
    "axes",
    "perm",
    "keepdims",
    "to",
    "value",
    "value_int",
    "value_ints",
    "value_float",
    "value_floats",
    "alpha",
    "beta",
    "transA",
    "transB",
    "split",
    "starts",
    "ends",
    "allowzero",
    "noop_with_empty_axes",
    "start",
    "end",
    "num_outputs",
    "broadcast",
    "epsilon",
];

/// Every value name the graph mentions, plus a few that it does not define.
fn value_names(g: &GraphProto) -> Vec<String> {
    let mut names: Vec<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    names.extend(g.input.iter().map(|v| v.name.clone()));
    names.extend(g.node.iter().flat_map(|n| n.output.iter().cloned()));
    names.extend(["".to_string(), "nowhere".to_string()]);
    names
}

fn all_tensors(g: &mut GraphProto) -> Vec<&mut TensorProto> {
    let mut ts: Vec<&mut TensorProto> = g.initializer.iter_mut().collect();
    for n in &mut g.node {
        for a in &mut n.attribute {
            ts.extend(a.t.as_mut());
            ts.extend(a.tensors.iter_mut());
        }
    }
    ts
}

/// Locations an external tensor may be given: the fixture's data file and other files of a
/// seed's folder, ways out of the folder, files that are not there, odd forms.
const LOCATIONS: &[&str] = &[
    "model.data",
    "./model.data",
    "model.onnx",
    "manifest.json",
    "L64.out0.bin",
    "weights.bin",
    "",
    ".",
    "..",
    "../tiny-external/model.data",
    "sub/../model.data",
    "/etc/passwd",
    "/dev/zero",
    "//model.data",
    "model.data\0",
    "mod\u{0}el.data",
];

fn entry(key: &str, value: String) -> StringStringEntryProto {
    StringStringEntryProto {
        key: key.into(),
        value,
    }
}

/// A byte count as text: mostly a number near the file sizes involved, else garbage.
fn count_text(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => rng.int().to_string(),
        1 => rng
            .pick(&["", "-0", "+8", "0x10", "1e3", " 4", "18446744073709551616"])
            .to_string(),
        _ => (rng.below(400_000) / 4 * 4).to_string(),
    }
}

/// Mutates how a tensor refers to external data.
fn mutate_external(t: &mut TensorProto, rng: &mut Rng) -> String {
    let name = format!("tensor '{}'", t.name);
    let key = *rng.pick(&[
        "location", "offset", "length", "checksum", "basepath", "other",
    ]);
    match rng.below(6) {
        0 => {
            // Moved out: the bytes are dropped, the entries point at a file.
            let len = t.raw_data.len();
            t.raw_data = Bytes::new();
            t.data_location = 1;
            t.external_data = vec![
                entry("location", rng.pick(LOCATIONS).to_string()),
                entry("offset", (rng.below(1000) * 4).to_string()),
                entry("length", len.to_string()),
            ];
            format!("{name} made external: {:?}", t.external_data)
        }
        1 => {
            let loc = rng.pick(LOCATIONS).to_string();
            t.external_data.retain(|e| e.key != "location");
            t.external_data.push(entry("location", loc.clone()));
            format!("{name} location = {loc:?}")
        }
        2 => {
            let v = count_text(rng);
            let k = if rng.one_in(2) { "offset" } else { "length" };
            t.external_data.retain(|e| e.key != k);
            t.external_data.push(entry(k, v.clone()));
            format!("{name} {k} = {v:?}")
        }
        3 => {
            t.external_data.retain(|e| e.key != key);
            format!("{name} external entry '{key}' removed")
        }
        4 => {
            let v = if key == "location" {
                rng.pick(LOCATIONS).to_string()
            } else {
                count_text(rng)
            };
            t.external_data.push(entry(key, v));
            format!("{name} external entry '{key}' added")
        }
        _ => {
            t.data_location = rng.int() as i32;
            format!("{name} data_location = {}", t.data_location)
        }
    }
}

fn mutate_tensor(t: &mut TensorProto, rng: &mut Rng) -> String {
    let name = format!("tensor '{}'", t.name);
    match rng.below(14) {
        0 | 1 if !t.dims.is_empty() => {
            let k = rng.below(t.dims.len());
            t.dims[k] = rng.int();
            format!("{name} dims[{k}] = {}", t.dims[k])
        }
        0..=2 => {
            let d = if rng.one_in(2) { rng.int() } else { 1 };
            t.dims.insert(rng.below(t.dims.len() + 1), d);
            format!("{name} dims += {d}")
        }
        3 => {
            t.dims.truncate(rng.below(t.dims.len() + 1));
            format!("{name} dims = {:?}", t.dims)
        }
        4 => {
            t.data_type = rng.below(20) as i32 - 1;
            format!("{name} data_type = {}", t.data_type)
        }
        5 => {
            let len = rng.below(t.raw_data.len() + 1);
            t.raw_data = t.raw_data.slice(..len);
            format!("{name} raw_data truncated to {len} bytes")
        }
        6 => {
            let mut v = t.raw_data.to_vec();
            let extra = rng.below(64) + 1;
            v.extend(rng.bytes(extra));
            t.raw_data = v.into();
            format!("{name} raw_data += {extra} bytes")
        }
        7 => {
            // The data moves to a typed field, with a count near the right one.
            let n = (t.raw_data.len() / 4 + rng.below(3)).saturating_sub(1);
            t.raw_data = Bytes::new();
            match rng.below(4) {
                0 => t.float_data = (0..n).map(|_| rng.float()).collect(),
                1 => t.int64_data = (0..n).map(|_| rng.int()).collect(),
                2 => t.int32_data = (0..n).map(|_| rng.int() as i32).collect(),
                _ => t.double_data = (0..n).map(|_| rng.float() as f64).collect(),
            }
            format!("{name} data moved to a typed field ({n} values)")
        }
        8 => {
            t.data_location = rng.below(3) as i32;
            if rng.one_in(2) {
                t.external_data.push(StringStringEntryProto {
                    key: "location".into(),
                    value: "weights.bin".into(),
                });
            }
            format!("{name} data_location = {}", t.data_location)
        }
        12 | 13 => mutate_external(t, rng),
        9 => {
            t.segment = Some(TensorSegment {
                begin: rng.int(),
                end: rng.int(),
            });
            format!("{name} segment set")
        }
        _ => {
            // Overwrite one element with an interesting value of the tensor's own type:
            // shape constants, indices, axes, slice bounds.
            let size = match t.data_type {
                7 | 11 => 8,
                1 | 6 => 4,
                _ => 1,
            };
            let n = t.raw_data.len() / size;
            if n == 0 {
                return format!("{name} (no raw data to change)");
            }
            let k = rng.below(n);
            let mut v = t.raw_data.to_vec();
            let x = rng.int();
            let le: Vec<u8> = match t.data_type {
                1 => rng.float().to_le_bytes().to_vec(),
                6 => (x as i32).to_le_bytes().to_vec(),
                11 => (x as f64).to_le_bytes().to_vec(),
                7 => x.to_le_bytes().to_vec(),
                _ => vec![x as u8],
            };
            v[k * size..(k + 1) * size].copy_from_slice(&le);
            t.raw_data = v.into();
            format!("{name} element {k} changed")
        }
    }
}

fn mutate_attribute(n: &mut NodeProto, rng: &mut Rng) -> String {
    let node = format!("node '{}' ({})", n.name, n.op_type);
    if n.attribute.is_empty() || rng.one_in(6) {
        let mut a = AttributeProto {
            name: rng.pick(ATTR_NAMES).to_string(),
            r#type: [1, 2, 4, 6, 7][rng.below(5)],
            ..Default::default()
        };
        match a.r#type {
            1 => a.f = rng.float(),
            2 => a.i = rng.int(),
            4 => {
                let n = rng.below(4);
                a.t = Some(TensorProto {
                    dims: vec![n as i64],
                    data_type: 7,
                    raw_data: (0..n).flat_map(|_| rng.int().to_le_bytes()).collect(),
                    ..Default::default()
                })
            }
            6 => a.floats = (0..rng.below(4)).map(|_| rng.float()).collect(),
            _ => a.ints = (0..rng.below(5)).map(|_| rng.int()).collect(),
        }
        let what = format!("{node} new attribute '{}' type {}", a.name, a.r#type);
        n.attribute.push(a);
        return what;
    }
    let k = rng.below(n.attribute.len());
    let a = &mut n.attribute[k];
    let at = format!("{node} attribute '{}'", a.name);
    match rng.below(9) {
        0 | 1 => {
            a.i = rng.int();
            format!("{at} i = {}", a.i)
        }
        2 | 3 => {
            if a.ints.is_empty() || rng.one_in(4) {
                a.ints.insert(rng.below(a.ints.len() + 1), rng.int());
            } else if rng.one_in(4) {
                a.ints.truncate(rng.below(a.ints.len()));
            } else {
                let j = rng.below(a.ints.len());
                a.ints[j] = rng.int();
            }
            format!("{at} ints = {:?}", a.ints)
        }
        4 => {
            a.f = rng.float();
            a.floats.iter_mut().for_each(|f| *f = rng.float());
            format!("{at} f = {}", a.f)
        }
        5 => {
            a.r#type = rng.below(16) as i32;
            format!("{at} type = {}", a.r#type)
        }
        6 => {
            a.name = rng.pick(ATTR_NAMES).to_string();
            format!("{at} renamed '{}'", a.name)
        }
        7 => match a.t.as_mut() {
            Some(t) => format!("{at}: {}", mutate_tensor(t, rng)),
            None => {
                n.attribute.remove(k);
                format!("{at} removed")
            }
        },
        _ => {
            n.attribute.remove(k);
            format!("{at} removed")
        }
    }
}

fn mutate_node(g: &mut GraphProto, rng: &mut Rng) -> String {
    if g.node.is_empty() {
        return "(no nodes)".into();
    }
    let names = value_names(g);
    let k = rng.below(g.node.len());
    let other_name = g.node[rng.below(g.node.len())].name.clone();
    let n = &mut g.node[k];
    let node = format!("node '{}' ({})", n.name, n.op_type);
    match rng.below(12) {
        0 => {
            let types = if rng.one_in(8) {
                OTHER_OP_TYPES
            } else {
                gpt2c::ops::REGISTRY
            };
            n.op_type = rng.pick(types).to_string();
            format!("{node} op_type = '{}'", n.op_type)
        }
        1 | 2 if !n.input.is_empty() => {
            let j = rng.below(n.input.len());
            n.input[j] = rng.pick(&names).clone();
            format!("{node} input {j} = '{}'", n.input[j])
        }
        3 if !n.input.is_empty() => {
            let j = rng.below(n.input.len());
            n.input.remove(j);
            format!("{node} input {j} removed")
        }
        1..=4 => {
            n.input.push(rng.pick(&names).clone());
            format!("{node} input added")
        }
        5 if !n.output.is_empty() => {
            let j = rng.below(n.output.len());
            n.output[j] = rng.pick(&names).clone();
            format!("{node} output {j} = '{}'", n.output[j])
        }
        6 if !n.output.is_empty() => {
            n.output.pop();
            format!("{node} last output removed")
        }
        5..=7 => {
            n.output.push(format!("fuzz_out_{}", rng.below(4)));
            format!("{node} output added")
        }
        8 => {
            n.domain = if rng.one_in(2) {
                "com.example"
            } else {
                "ai.onnx"
            }
            .into();
            format!("{node} domain = '{}'", n.domain)
        }
        9 => {
            n.name = if rng.one_in(2) {
                other_name
            } else {
                String::new()
            };
            format!("{node} renamed '{}'", n.name)
        }
        _ => mutate_attribute(n, rng),
    }
}

fn mutate_value_info(g: &mut GraphProto, rng: &mut Rng) -> String {
    let names = value_names(g);
    let total = g.input.len() + g.output.len();
    if total == 0 {
        return "(no inputs or outputs)".into();
    }
    let k = rng.below(total);
    let (vi, side): (&mut ValueInfoProto, &str) = if k < g.input.len() {
        (&mut g.input[k], "input")
    } else {
        (&mut g.output[k - g.input.len()], "output")
    };
    let at = format!("graph {side} '{}'", vi.name);
    let Some(tt) = vi.r#type.as_mut().and_then(|t| t.tensor_type.as_mut()) else {
        vi.name = rng.pick(&names).clone();
        return format!("{at} renamed '{}'", vi.name);
    };
    match rng.below(7) {
        0 => {
            tt.elem_type = rng.below(18) as i32;
            format!("{at} elem_type = {}", tt.elem_type)
        }
        1 | 2 => {
            let Some(shape) = tt.shape.as_mut().filter(|s| !s.dim.is_empty()) else {
                tt.shape = None;
                return format!("{at} shape removed");
            };
            let j = rng.below(shape.dim.len());
            shape.dim[j].value = match rng.below(4) {
                0 => Some(DimensionValue::DimParam(
                    ["L", "", "batch"][rng.below(3)].into(),
                )),
                1 => None,
                _ => Some(DimensionValue::DimValue(rng.int())),
            };
            format!("{at} dim {j} = {:?}", shape.dim[j].value)
        }
        3 => {
            let shape = tt.shape.get_or_insert_with(Default::default);
            if rng.one_in(2) && !shape.dim.is_empty() {
                shape.dim.pop();
            } else {
                shape.dim.push(Dimension {
                    value: Some(DimensionValue::DimValue(rng.below(3) as i64)),
                    denotation: String::new(),
                });
            }
            format!("{at} rank = {}", shape.dim.len())
        }
        4 => {
            tt.shape = None;
            format!("{at} shape removed")
        }
        5 => {
            vi.r#type = None;
            format!("{at} type removed")
        }
        _ => {
            vi.name = rng.pick(&names).clone();
            format!("{at} renamed '{}'", vi.name)
        }
    }
}

fn mutate_graph(g: &mut GraphProto, rng: &mut Rng) -> String {
    match rng.below(7) {
        0 if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            let n = g.node.remove(k);
            format!("node '{}' removed", n.name)
        }
        1 if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            let n = g.node[k].clone();
            g.node.insert(rng.below(g.node.len() + 1), n);
            format!("node '{}' duplicated", g.node[k].name)
        }
        2 if !g.node.is_empty() => {
            let (i, j) = (rng.below(g.node.len()), rng.below(g.node.len()));
            g.node.swap(i, j);
            format!("nodes {i} and {j} swapped")
        }
        3 if !g.initializer.is_empty() => {
            let k = rng.below(g.initializer.len());
            let t = g.initializer.remove(k);
            format!("initializer '{}' removed", t.name)
        }
        4 if !g.output.is_empty() => {
            let k = rng.below(g.output.len());
            if rng.one_in(2) {
                let v = g.output.remove(k);
                format!("graph output '{}' removed", v.name)
            } else {
                g.output.push(g.output[k].clone());
                format!("graph output '{}' listed twice", g.output[k].name)
            }
        }
        5 if !g.input.is_empty() => {
            let k = rng.below(g.input.len());
            let v = g.input.remove(k);
            format!("graph input '{}' removed", v.name)
        }
        _ => {
            g.node.reverse();
            "node order reversed".into()
        }
    }
}

fn mutate_model(m: &mut ModelProto, rng: &mut Rng) -> String {
    let roll = rng.below(100);
    if roll < 4 {
        return match rng.below(4) {
            0 => {
                m.ir_version = rng.int();
                format!("ir_version = {}", m.ir_version)
            }
            1 => {
                let any = rng.int();
                let v = *rng.pick(&[1, 7, 9, 10, 11, 12, 13, 17, 18, 21, 22, any]);
                m.opset_import.iter_mut().for_each(|o| o.version = v);
                format!("opset = {v}")
            }
            2 => {
                m.opset_import
                    .iter_mut()
                    .for_each(|o| o.domain = "ai.x".into());
                "opset domain = 'ai.x'".into()
            }
            _ => {
                m.graph = None;
                "graph removed".into()
            }
        };
    }
    let Some(g) = m.graph.as_mut() else {
        return "(no graph)".into();
    };
    match roll {
        4..=33 => {
            let mut ts = all_tensors(g);
            if ts.is_empty() {
                return "(no tensors)".into();
            }
            // A model with external data (tiny-external) gets half its tensor mutations
            // on how its external tensors point into the data file.
            let external: Vec<usize> = (0..ts.len())
                .filter(|&i| ts[i].data_location == 1)
                .collect();
            if !external.is_empty() && rng.one_in(2) {
                let k = *rng.pick(&external);
                return mutate_external(ts[k], rng);
            }
            let k = rng.below(ts.len());
            mutate_tensor(ts[k], rng)
        }
        34..=69 => mutate_node(g, rng),
        70..=84 => mutate_value_info(g, rng),
        _ => mutate_graph(g, rng),
    }
}

// ---- byte-level mutations ----

fn mutate_bytes(b: &mut Vec<u8>, rng: &mut Rng) -> String {
    if b.is_empty() {
        let n = rng.below(16) + 1;
        b.extend(rng.bytes(n));
        return "random bytes".into();
    }
    let at = rng.below(b.len());
    match rng.below(7) {
        0 | 1 => {
            b[at] ^= 1 << rng.below(8);
            format!("bit flipped at byte {at}")
        }
        2 => {
            b[at] = *rng.pick(&[0, 1, 0x7f, 0x80, 0xff]);
            format!("byte {at} = {:#x}", b[at])
        }
        3 => {
            b.truncate(at);
            format!("truncated to {at} bytes")
        }
        4 => {
            let n = rng.below(16) + 1;
            let ins = rng.bytes(n);
            b.splice(at..at, ins);
            format!("{n} random bytes inserted at {at}")
        }
        5 => {
            let end = (at + rng.below(32) + 1).min(b.len());
            if rng.one_in(2) {
                b.drain(at..end);
                format!("bytes {at}..{end} deleted")
            } else {
                let chunk = b[at..end].to_vec();
                let to = rng.below(b.len());
                b.splice(to..to, chunk);
                format!("bytes {at}..{end} copied to {to}")
            }
        }
        _ => {
            // A varint as large as protobuf allows: a length or count field gone wild.
            let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
            let end = (at + huge.len()).min(b.len());
            b.splice(at..end, huge);
            format!("huge varint at {at}")
        }
    }
}

/// One fuzz case: the seed model it started from, what was changed, and the bytes.
pub struct Case {
    pub seed_model: String,
    /// The file the case is compiled as (the seed's `model.onnx`, never written).
    pub model_path: PathBuf,
    pub mutations: Vec<String>,
    pub bytes: Vec<u8>,
}

/// Builds case `index` of run `seed`. The small per-op models are picked more often than
/// the GPT-2 fixtures (which are slower to compile and mostly weight bytes).
pub fn make_case(corpus: &[SeedModel], seed: u64, index: u64) -> Case {
    let mut rng = Rng::for_case(seed, index);
    let fixtures: Vec<&SeedModel> = corpus
        .iter()
        .filter(|s| s.name.starts_with("fixtures/"))
        .collect();
    let base = if !fixtures.is_empty() && rng.one_in(4) {
        *rng.pick(&fixtures)
    } else {
        rng.pick(corpus)
    };
    let mut mutations = Vec::new();
    let fields = rng.below(4);
    let byte_level = if fields == 0 { 1 } else { rng.below(3) / 2 };
    let mut bytes = if fields == 0 {
        base.bytes.to_vec()
    } else {
        let mut m = base.model.clone();
        for _ in 0..fields {
            mutations.push(mutate_model(&mut m, &mut rng));
        }
        m.encode_to_vec()
    };
    for _ in 0..byte_level {
        mutations.push(mutate_bytes(&mut bytes, &mut rng));
    }
    Case {
        seed_model: base.name.clone(),
        model_path: base.path.clone(),
        mutations,
        bytes,
    }
}

// ---- running cases ----

/// The compiler front to back on one file in memory, as if it were `model_path` (external
/// data is looked for in its folder); `Ok` is the generated source's length.
pub fn compile(bytes: &[u8], model_path: &Path) -> gpt2c::Result<usize> {
    // A scratch folder per case for the weight object, removed with whatever is in it.
    static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "gpt2c-fuzz-{}-{}",
        std::process::id(),
        CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&scratch).map_err(|source| gpt2c::Error::Io {
        path: scratch.display().to_string(),
        source,
    })?;
    let result = gpt2c::driver::compile_bytes_as(
        Bytes::copy_from_slice(bytes),
        model_path,
        gpt2c::codegen::WeightsPath::Absolute(scratch.display().to_string()),
        &scratch,
        &gpt2c::driver::CompileOptions::default(),
    );
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(result?.0.len())
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub index: u64,
    pub seed_model: String,
    pub mutations: Vec<String>,
    pub panic: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub cases: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub findings: Vec<Finding>,
    /// How often each kind of error came back (its first words), to see how deep cases get.
    pub errors: BTreeMap<String, u64>,
    pub slowest: (Duration, u64),
    pub elapsed: Duration,
}

/// Seconds a single case may take before the watchdog calls it a hang.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(20);

static CASE_SEED: AtomicU64 = AtomicU64::new(0);
static CASE_INDEX: AtomicU64 = AtomicU64::new(u64::MAX);

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// An error's kind: its message with quoted names and numbers blanked, cut short.
fn error_kind(msg: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in msg.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push_str(if quoted { "'…" } else { "'" });
            }
            _ if quoted => {}
            '0'..='9' if out.ends_with('N') => {}
            '0'..='9' => out.push('N'),
            '\n' => out.push(' '),
            c => out.push(c),
        }
        if out.chars().count() >= 72 {
            break;
        }
    }
    out
}

/// Where a panic happened: its location, and when that is outside the compiler (a
/// standard-library assertion, say), the innermost compiler frame of the backtrace.
fn panic_site(location: Option<&std::panic::Location>) -> String {
    let at = location.map_or(String::new(), |l| format!("{}:{}", l.file(), l.line()));
    if at.starts_with("compiler/") {
        return at;
    }
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    let frame = trace.lines().map(str::trim).find_map(|l| {
        l.strip_prefix("at ")
            .filter(|f| f.contains("compiler/src/"))
    });
    match frame {
        Some(f) => format!("{at} (from {})", &f[f.find("compiler/src/").unwrap_or(0)..]),
        None => at,
    }
}

/// Runs cases `first..first + count` of run `seed`, calling `progress` every 10,000 cases.
pub fn run(
    corpus: &[SeedModel],
    seed: u64,
    first: u64,
    count: u64,
    budget: Duration,
    mut progress: impl FnMut(&Report),
) -> Report {
    let t0 = Instant::now();
    let started = Arc::new(Mutex::new((Instant::now(), u64::MAX)));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (started, done) = (started.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let (at, index) = *started.lock().unwrap_or_else(|e| e.into_inner());
                if index != u64::MAX && at.elapsed() > budget && !done.load(Relaxed) {
                    eprintln!(
                        "fuzz: HANG: case {index} of seed {seed} ran over {budget:?}; replay: \
                         cargo run --release -p gpt2c-tests --bin fuzz -- --seed {seed} --case {index}"
                    );
                    std::process::exit(3);
                }
            }
        })
    };
    let old_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = panic_site(info.location());
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg} at {at}")));
    }));

    let mut report = Report::default();
    CASE_SEED.store(seed, Relaxed);
    for index in first..first + count {
        let case = make_case(corpus, seed, index);
        CASE_INDEX.store(index, Relaxed);
        let t = Instant::now();
        *started.lock().unwrap_or_else(|e| e.into_inner()) = (t, index);
        let outcome = catch_unwind(AssertUnwindSafe(|| compile(&case.bytes, &case.model_path)));
        let took = t.elapsed();
        *started.lock().unwrap_or_else(|e| e.into_inner()) = (t, u64::MAX);
        CASE_INDEX.store(u64::MAX, Relaxed);
        if took > report.slowest.0 {
            report.slowest = (took, index);
        }
        report.cases += 1;
        match outcome {
            Ok(Ok(_)) => report.accepted += 1,
            Ok(Err(e)) => {
                report.rejected += 1;
                // Messages name the seed's file: one kind for every seed.
                let msg = e
                    .to_string()
                    .replace(&case.model_path.display().to_string(), "MODEL");
                *report.errors.entry(error_kind(&msg)).or_default() += 1;
            }
            Err(_) => report.findings.push(Finding {
                index,
                seed_model: case.seed_model,
                mutations: case.mutations,
                panic: LAST_PANIC
                    .with(|p| p.borrow_mut().take())
                    .unwrap_or_default(),
            }),
        }
        if report.cases % 10_000 == 0 {
            report.elapsed = t0.elapsed();
            progress(&report);
        }
    }
    std::panic::set_hook(old_hook);
    done.store(true, Relaxed);
    watchdog.join().ok();
    report.elapsed = t0.elapsed();
    report
}

// ---- the allocation cap ----

/// Largest single allocation a fuzz case may ask for: far above anything the small seed
/// models legitimately need, far below what a length field read unchecked asks for.
pub const MAX_ALLOC: usize = 256 << 20;
/// Largest total of live allocations.
pub const MAX_LIVE: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A global allocator that refuses (and reports, with the case to replay) any allocation
/// over `MAX_ALLOC` or beyond `MAX_LIVE` live bytes. Refusing ends the process, so the
/// report is written first, straight to stderr without allocating.
pub struct CappedAlloc;

impl CappedAlloc {
    /// Whether an allocation of `size` bytes that adds `grow` live bytes must be refused.
    fn over(size: usize, grow: usize) -> bool {
        let live = LIVE.load(Relaxed);
        if size <= MAX_ALLOC && live.saturating_add(grow) <= MAX_LIVE {
            return false;
        }
        let mut buf = [0u8; 256];
        let mut w = Cursor {
            buf: &mut buf,
            len: 0,
        };
        w.put(b"fuzz: HUGE ALLOCATION of ");
        w.num(size as u64);
        w.put(b" bytes (live ");
        w.num(live as u64);
        w.put(b") in case ");
        w.num(CASE_INDEX.load(Relaxed));
        w.put(b" of seed ");
        w.num(CASE_SEED.load(Relaxed));
        w.put(b"\n");
        let len = w.len;
        use std::io::Write;
        use std::os::fd::FromRawFd;
        // SAFETY: fd 2 is the process's stderr, open for its whole life; ManuallyDrop keeps
        // the File from closing it.
        let mut stderr = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(2) });
        let _ = stderr.write_all(&buf[..len]);
        true
    }
}

struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn put(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }
    fn num(&mut self, mut x: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (x % 10) as u8;
            x /= 10;
            if x == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
    }
}

// SAFETY: every call is forwarded to `System` with the same layout; refusing returns null,
// which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::over(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::over(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::over(new_size, new_size.saturating_sub(layout.size())) {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            LIVE.fetch_add(new_size, Relaxed);
        }
        p
    }
}
