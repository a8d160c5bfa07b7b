//! Compiles every committed fixture with gpt2c into OUT_DIR/<name>/, so one build of this
//! crate tests the generated code of all of them (see src/compiled.rs).

use std::path::PathBuf;

/// Fixtures compiled for the generated-code tests (directory names under tests/fixtures).
const FIXTURES: &[&str] = &[
    "tiny",
    "wide",
    "deep",
    "static",
    "matmul_add",
    // tiny re-saved with its weights in an external-data file (tools/save_external_data.py).
    "tiny-external",
    // The same network from other exporters (tests/fixtures/EXPORTERS.md).
    "x-pt12-opset17",
    "x-hf-eager",
    "x-hf-sdpa",
    "x-hf-eager-cache",
    "x-dynamo",
    "x-optimum",
];

/// A small graph that is not GPT-2: a Gemm and two MatMuls whose right operands are a
/// matrix and its transpose stored separately (so tie-weights rewrites them), with two
/// inputs of static shape. Written as ONNX with gpt2c's own prost types.
fn tied_model() -> Vec<u8> {
    use gpt2c::onnx::proto::*;
    use prost::Message;
    let tensor = |name: &str, dims: &[i64], data: Vec<f32>| TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: data,
        ..Default::default()
    };
    let io = |name: &str, dims: &[i64]| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: 1,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(DimensionValue::DimValue(d)),
                            denotation: String::new(),
                        })
                        .collect(),
                }),
            }),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    };
    let node =
        |name: &str, op: &str, inputs: &[&str], out: &str, attrs: Vec<AttributeProto>| NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            attribute: attrs,
            ..Default::default()
        };
    let a: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect(); // [4, 3]
    let at: Vec<f32> = (0..12).map(|i| a[(i % 4) * 3 + i / 4]).collect(); // [3, 4]
    let alpha = AttributeProto {
        name: "alpha".into(),
        r#type: 1,
        f: 0.5,
        ..Default::default()
    };
    let graph = GraphProto {
        name: "tied".into(),
        node: vec![
            node("gemm", "Gemm", &["x", "at", "c"], "y1", vec![alpha]),
            node("mm_a", "MatMul", &["z", "a"], "y2", vec![]),
            node("mm_at", "MatMul", &["x", "at"], "y3", vec![]),
        ],
        initializer: vec![
            tensor("a", &[4, 3], a),
            tensor("at", &[3, 4], at),
            tensor("c", &[4], vec![0.1, -0.2, 0.3, -0.4]),
        ],
        input: vec![io("x", &[2, 3]), io("z", &[2, 4])],
        output: vec![io("y1", &[2, 4]), io("y2", &[2, 3]), io("y3", &[2, 4])],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "gpt2c-tests".into(),
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// The module name of a fixture directory (`x-hf-eager` → `x_hf_eager`; `static` is a
/// keyword).
fn module(dir: &str) -> String {
    match dir {
        "static" => "static_ctx".into(),
        d => d.replace('-', "_"),
    }
}

fn compile(builder: gpt2c::Builder, what: &str) {
    if let Err(e) = builder.compile() {
        eprintln!("error: gpt2c failed on {what}: {e}");
        std::process::exit(1);
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=build.rs");
    let tied = out.join("tied.onnx");
    std::fs::write(&tied, tied_model()).unwrap();
    compile(
        gpt2c::Builder::new(&tied).module("tied"),
        "the tied-weights graph",
    );
    let fixture = |name: &str| root.join("fixtures").join(name).join("model.onnx");
    // The tiny fixture again with its matrices stored as bf16, f16, q8 and q4.
    for format in [
        gpt2c::codegen::layout::WeightFormat::Bf16,
        gpt2c::codegen::layout::WeightFormat::F16,
        gpt2c::codegen::layout::WeightFormat::Q8,
        gpt2c::codegen::layout::WeightFormat::Q4,
    ] {
        let name = format!("tiny_{}", format.name());
        let b = gpt2c::Builder::new(fixture("tiny"))
            .weights(format)
            .module(&name);
        compile(b, &format!("fixture tiny as {}", format.name()));
    }
    // Narrow attention caches: the tiny fixture (head size 16: q8 blocks of a whole head)
    // with each, wide (head size 32) with q8, and the x-hf-eager-cache exporter's graph
    // (its own cache layout) with f16, as q8 weights with a q8 cache (the small deployment).
    for (name, kv, weights) in [
        ("tiny", gpt2c::KvFormat::F16, None),
        ("tiny", gpt2c::KvFormat::Bf16, None),
        ("tiny", gpt2c::KvFormat::Q8, None),
        ("wide", gpt2c::KvFormat::Q8, None),
        (
            "wide",
            gpt2c::KvFormat::Q8,
            Some(gpt2c::codegen::layout::WeightFormat::Q8),
        ),
        ("x-hf-eager-cache", gpt2c::KvFormat::F16, None),
    ] {
        let mut module_name = format!("{}_kv_{}", module(name), kv.name());
        let mut b = gpt2c::Builder::new(fixture(name)).kv(kv);
        if let Some(w) = weights {
            module_name = format!("{}_{}_kv_{}", module(name), w.name(), kv.name());
            b = b.weights(w);
        }
        compile(
            b.module(&module_name),
            &format!("fixture {name} with a {} attention cache", kv.name()),
        );
    }
    // tiny as q4 again with a folding budget below its position rows (8 KB): the position
    // table stays a run-time Gather, from the table stored as f16.
    compile(
        gpt2c::Builder::new(fixture("tiny"))
            .weights(gpt2c::codegen::layout::WeightFormat::Q4)
            .fold_budget(4096)
            .module("tiny_q4_gather"),
        "fixture tiny as q4 with a 4 KB folding budget",
    );
    // transformers' graphs without fuse-attention: their causal masks (Where over a bool
    // constant, an additive mask) run as generated code.
    for name in ["x-hf-eager", "x-dynamo"] {
        let b = gpt2c::Builder::new(fixture(name))
            .disable("fuse-attention")
            .module(format!("{}_noattn", module(name)));
        compile(b, &format!("fixture {name} without fuse-attention"));
    }
    for name in FIXTURES {
        let b = gpt2c::Builder::new(fixture(name)).module(module(name));
        compile(b, &format!("fixture {name}"));
    }
}
