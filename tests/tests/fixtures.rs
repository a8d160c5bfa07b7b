//! Whole-model conformance: the reference interpreter against onnxruntime on every committed
//! GPT-2 fixture, at L = 1, a middle length and the full context, on the raw graph and after
//! specialization (logits and every present). The `x-*` fixtures are the same network from
//! other exporters (tests/fixtures/EXPORTERS.md): their raw graph runs with every input the
//! case stores (attention masks with padding, past keys and values); the specialized graph
//! has its side inputs bound (`bind_side_inputs`) and runs the unpadded cases.
//!
//! Batch cases (`B2L13`: B = 2 sequences of 13 tokens, `[B, 1, L]` or `[B, L]`): the raw
//! graph runs the whole batch at once; the specialized graph, fixed to B = 1 like the
//! compiled code, runs each entry alone, and each output's entries are concatenated along
//! its batch axis before the comparison.

use gpt2c::gpt2::{bind_side_inputs, token_input, token_shape, Gpt2Config};
use gpt2c::ir::Tensor;
use gpt2c_tests::{compare, concat_entries, repo_root, Manifest, MODEL_TOL};
use std::path::Path;

fn fixtures() -> Vec<Manifest> {
    let mut v: Vec<Manifest> = Manifest::all_in(&repo_root().join("tests/fixtures"))
        .iter()
        .map(|p| Manifest::read(p, None))
        .collect();
    let default = repo_root().join("models/gpt2-random-50257.json");
    v.push(Manifest::read(
        &default,
        Some(default.with_extension("onnx")),
    ));
    v
}

/// Exporter variants the compiler refuses, with the reason it gives. The interpreter still
/// runs their raw graph against onnxruntime.
const REFUSED: &[(&str, &str)] = &[("x-optimum-past", "takes a key/value cache as inputs")];

fn check_manifest(m: &Manifest) {
    let name = m.json["name"].as_str().unwrap_or("?");
    let raw = gpt2c::onnx::load_graph(&m.model).unwrap_or_else(|e| panic!("{name}: {e}"));
    let bound = bind_side_inputs(&raw);
    if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
        let e = bound
            .err()
            .unwrap_or_else(|| panic!("{name} is compiled now: test it here"));
        assert!(e.to_string().contains(why), "{name}: {e}");
        for case in &m.cases {
            let all: Vec<(&str, gpt2c::ir::Tensor)> = case
                .inputs
                .iter()
                .map(|t| (t.name.as_str(), t.tensor.clone()))
                .collect();
            let outs = gpt2c::interp::run(&raw, &all)
                .unwrap_or_else(|e| panic!("{name} {} raw: {e}", case.name));
            for (o, r) in outs.iter().zip(&case.outputs) {
                let what = format!("{name} {} raw {}", case.name, r.name);
                compare(&what, o, &r.tensor, MODEL_TOL).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        return;
    }
    let graph = bound.unwrap_or_else(|e| panic!("{name}: {e}"));
    let config = Gpt2Config::derive(&graph).unwrap_or_else(|e| panic!("{name}: {e}"));
    let c = &m.json["config"];
    let expect = |k: &str| {
        c[k].as_u64()
            .unwrap_or_else(|| panic!("{name}: config.{k}")) as usize
    };
    assert_eq!(
        config,
        Gpt2Config {
            n_layer: expect("n_layer"),
            n_head: expect("n_head"),
            n_embd: expect("n_embd"),
            vocab: expect("vocab"),
            n_ctx: expect("n_ctx")
        },
        "{name}: derived config"
    );
    let (input, dims) = token_input(&graph).expect("token input");
    let mut lens = Vec::new();
    for case in &m.cases {
        let len = case.len.expect("case len");
        lens.push(len);
        config.check_len(&graph, len).expect("length fits");
        let all: Vec<(&str, gpt2c::ir::Tensor)> = case
            .inputs
            .iter()
            .map(|t| (t.name.as_str(), t.tensor.clone()))
            .collect();
        assert_eq!(
            case.inputs[0].name, input,
            "{name} {}: tokens first",
            case.name
        );
        // Cases with padding or a past need the inputs the binding removes.
        let plain =
            case.inputs.len() == 1 || !case.name.contains("pad") && !case.name.starts_with('P');
        let specialized = gpt2c::compile_graph(
            &graph,
            vec![(input.clone(), token_shape(&dims, len))],
            |_, _, _| {},
        )
        .unwrap_or_else(|e| panic!("{name} L={len}: {e}"));
        let mut stages = vec!["raw"];
        if plain {
            stages.push("specialized");
        }
        for stage in stages {
            let outs = if stage == "raw" {
                // The whole batch at once.
                gpt2c::interp::run(&raw, &all)
                    .unwrap_or_else(|e| panic!("{name} {} {stage}: {e}", case.name))
            } else {
                // B = 1: each entry alone, then each output's entries side by side.
                let mut parts: Vec<Vec<Tensor>> = Vec::new();
                for b in 0..case.batch {
                    let tokens = Tensor::from_vec(token_shape(&dims, len), case.entry_ids(b));
                    let outs = gpt2c::interp::run(&specialized, &[(input.as_str(), tokens)])
                        .unwrap_or_else(|e| panic!("{name} {} {stage} entry {b}: {e}", case.name));
                    parts.push(outs);
                }
                (0..case.outputs.len())
                    .map(|k| {
                        let entries = parts.iter().map(|p| p[k].clone()).collect();
                        concat_entries(&case.name, entries, &case.outputs[k].tensor)
                            .unwrap_or_else(|e| panic!("{name} {e}"))
                    })
                    .collect()
            };
            assert!(outs.len() >= case.outputs.len());
            let mut worst = 0.0f64;
            for (i, (o, r)) in outs.iter().zip(&case.outputs).enumerate() {
                // Output 0 is the logits: `compare` also checks its argmax per row.
                let what = format!(
                    "{name} {} {stage} {}{}",
                    case.name,
                    r.name,
                    if i == 0 { " (logits)" } else { "" }
                );
                worst = worst
                    .max(compare(&what, o, &r.tensor, MODEL_TOL).unwrap_or_else(|e| panic!("{e}")));
            }
            eprintln!(
                "{name} {} {stage}: {} outputs match, max |diff| {worst:.2e}",
                case.name,
                case.outputs.len()
            );
        }
    }
    assert!(!lens.is_empty(), "{name}: no cases");
}

#[test]
fn fixtures_match_onnxruntime_raw_and_specialized() {
    let all = fixtures();
    assert!(
        all.len() >= 6,
        "expected the committed fixtures, found {}",
        all.len()
    );
    for m in &all {
        check_manifest(m);
    }
}

/// The fixtures the compiler takes (all but `REFUSED`).
fn compiled_fixtures() -> Vec<Manifest> {
    fixtures()
        .into_iter()
        .filter(|m| !REFUSED.iter().any(|(n, _)| m.json["name"] == *n))
        .collect()
}

/// Every exporter's graph gets the same fusions and the same proof as the zoo's: one
/// LayerNorm per norm, GELU folded into the MLP's first Linear, one causal attention per
/// layer, Linears, and a graph proven incremental (so the derived cache applies).
#[test]
fn every_exporter_variant_fuses_and_is_incremental() {
    use gpt2c::ops::Op;
    let variants: Vec<Manifest> = compiled_fixtures()
        .into_iter()
        .filter(|m| m.json["exporter"].is_string())
        .collect();
    assert!(variants.len() >= 9, "expected the exporter fixtures");
    for m in variants {
        let name = m.json["name"].as_str().unwrap().to_string();
        let graph = bind_side_inputs(&gpt2c::onnx::load_graph(&m.model).unwrap()).unwrap();
        let config = Gpt2Config::derive(&graph).unwrap();
        let (input, dims) = token_input(&graph).unwrap();
        let shape = token_shape(&dims, config.n_ctx);
        let g = gpt2c::compile_graph(&graph, vec![(input, shape)], |_, _, _| {}).unwrap();
        let count = |f: &dyn Fn(&Op) -> bool| g.nodes.iter().filter(|n| f(&n.op)).count();
        let layers = config.n_layer;
        let causal = count(&|o| matches!(o, Op::Attention(a) if a.causal));
        let norms = count(&|o| matches!(o, Op::LayerNorm { .. }));
        let gelu = count(&|o| o.name() == "Linear+Gelu");
        let linear = count(&|o| matches!(o, Op::Linear { .. }));
        let left: Vec<&str> = g
            .nodes
            .iter()
            .map(|n| n.op.name())
            .filter(|o| {
                [
                    "Softmax",
                    "Where",
                    "LayerNormalization",
                    "Tanh",
                    "Erf",
                    "MatMul",
                    "Gemm",
                ]
                .contains(o)
            })
            .collect();
        eprintln!("{name}: {causal} attention, {norms} LayerNorm, {gelu} Linear+Gelu, {linear} Linear; unfused {left:?}");
        assert_eq!(causal, layers, "{name}: attention");
        assert_eq!(norms, 2 * layers + 1, "{name}: LayerNorm");
        assert_eq!(gelu, layers, "{name}: GELU");
        assert!(linear >= 4 * layers, "{name}: Linear");
        assert!(left.is_empty(), "{name}: unfused {left:?}");
        if let Err(why) = gpt2c::codegen::sequence_info(&g) {
            panic!("{name}: not incremental: {why}");
        }
    }
}

#[test]
fn fixtures_cover_full_context_and_variants() {
    let all = fixtures();
    let names: Vec<&str> = all.iter().filter_map(|m| m.json["name"].as_str()).collect();
    for want in ["tiny", "wide", "deep", "static", "matmul_add"] {
        assert!(names.contains(&want), "missing fixture {want}");
    }
    for m in all.iter().filter(|m| m.json["name"] != "gpt2-random-50257") {
        let ctx = m.json["config"]["n_ctx"].as_u64().unwrap() as usize;
        assert!(
            m.cases.iter().any(|c| c.len == Some(ctx)),
            "{:?} has no full-context case",
            m.json["name"]
        );
    }
}

#[test]
fn specialization_removes_every_shape_computation() {
    for m in compiled_fixtures() {
        let graph = bind_side_inputs(&gpt2c::onnx::load_graph(&m.model).unwrap()).unwrap();
        let (input, dims) = token_input(&graph).unwrap();
        let len = m.cases.last().unwrap().len.unwrap();
        let g = gpt2c::compile_graph(&graph, vec![(input, token_shape(&dims, len))], |_, _, _| {})
            .unwrap();
        let hist = g.op_histogram();
        for op in ["Shape", "NonZero", "ConstantOfShape", "Identity"] {
            assert!(
                !hist.iter().any(|(o, _)| *o == op),
                "{:?}: {op} survived: {hist:?}",
                m.json["name"]
            );
        }
        gpt2c::passes::specialize::check_static(&g).unwrap();
        // Folding must not have grown the weights: what is left is at most the original.
        assert!(g.weight_stats().0 <= graph.weight_stats().0 + (1 << 20));
    }
}

/// The full-size 124M export is not committed; when `GPT2C_FULL_MODEL` names its reference
/// directory (model.onnx + manifest.json), check it too.
#[test]
fn full_size_model_when_available() {
    let Ok(dir) = std::env::var("GPT2C_FULL_MODEL") else {
        eprintln!("GPT2C_FULL_MODEL not set; skipping the full-size model");
        return;
    };
    check_manifest(&Manifest::read(
        &Path::new(&dir).join("manifest.json"),
        None,
    ));
}

/// A/B: with each optional pass switched off (and all of them), the compiled graph still
/// matches onnxruntime, so every pass is an optimization and nothing else.
#[test]
fn every_optional_pass_can_be_switched_off() {
    let chosen = [
        "tiny",
        "matmul_add",
        "x-pt12-opset17",
        "x-hf-eager",
        "x-hf-sdpa",
        "x-dynamo",
    ];
    for m in fixtures()
        .iter()
        .filter(|m| chosen.contains(&m.json["name"].as_str().unwrap_or("")))
    {
        let graph = bind_side_inputs(&gpt2c::onnx::load_graph(&m.model).unwrap()).unwrap();
        let (input, dims) = token_input(&graph).unwrap();
        let case = m.cases.iter().rev().find(|c| c.batch == 1).unwrap();
        let len = case.len.unwrap();
        let mut sets: Vec<Vec<String>> = gpt2c::OPTIONAL_PASSES
            .iter()
            .map(|p| vec![p.to_string()])
            .collect();
        sets.push(
            gpt2c::OPTIONAL_PASSES
                .iter()
                .map(|p| p.to_string())
                .collect(),
        );
        for disabled in sets {
            let g = gpt2c::compile_graph_with(
                &graph,
                vec![(input.clone(), token_shape(&dims, len))],
                &disabled,
                |_, _, _| {},
            )
            .unwrap();
            let outs =
                gpt2c::interp::run(&g, &[(input.as_str(), case.inputs[0].tensor.clone())]).unwrap();
            for (i, (o, r)) in outs.iter().zip(&case.outputs).enumerate() {
                let what = format!(
                    "{:?} without {disabled:?} output {i}{}",
                    m.json["name"],
                    if i == 0 { " (logits)" } else { "" }
                );
                compare(&what, o, &r.tensor, MODEL_TOL).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    assert!(gpt2c::compile_graph_with(
        &gpt2c::ir::Graph::default(),
        vec![],
        &["no-such-pass".into()],
        |_, _, _| {}
    )
    .is_err());
}

/// After `fold-copies` and `fold-attention-layout`, each GPT-2 layer moves its activations
/// around attention twice: attention reads q from the QKV projection and writes its heads
/// side by side in rows; the keys and values are one strided copy each from the projection,
/// planned inside the `present` output, and attention reads them there.
#[test]
fn attention_reads_the_projection_and_the_presents_in_place() {
    use gpt2c::ops::Op;
    let fx = gpt2c_tests::SpecializedFixture::load("tiny");
    let g = &fx.specialized;
    // Data movement at run time (a tied weight's Transpose is a view of a constant).
    let count = |name: &str| {
        g.nodes
            .iter()
            .filter(|n| n.op.name() == name && g.konst(n.inputs[0].unwrap()).is_none())
            .count()
    };
    let attention: Vec<_> = g
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Attention(a) => Some((n, *a)),
            _ => None,
        })
        .collect();
    let layers = attention.len();
    assert!(layers > 0);
    assert_eq!(count("Transpose") + count("Split") + count("Slice"), 0);
    assert_eq!(count("StridedCopy"), 2 * layers);
    let producers = g.producers();
    let op_of = |v: usize| g.nodes[producers[&v]].op.name();
    let seq = gpt2c::codegen::sequence_info(g).expect("still incremental");
    let cache = seq.cache.clone();
    let plan =
        gpt2c::codegen::plan::plan(g, &gpt2c::codegen::persistent(g, &Ok(seq)), &cache).unwrap();
    for (n, a) in attention {
        let [q, k, v] = [0, 1, 2].map(|i| n.inputs[i].unwrap());
        assert_eq!(op_of(q), "Linear", "{}", n.name);
        assert_eq!(a.out_perm, [0, 2, 1, 3]);
        for kv in [k, v] {
            assert_eq!(op_of(kv), "StridedCopy");
            let copy = &g.nodes[producers[&kv]];
            assert_eq!(copy.inputs[0], Some(q), "from the same projection");
            let (host, _) = plan.inside[kv].expect("computed in place");
            assert!(g.outputs.contains(&host), "inside a present");
        }
    }
}

#[test]
fn each_mlp_gelu_is_folded_into_its_linear() {
    use gpt2c::ops::{linear::Activation, Op};
    let fx = gpt2c_tests::SpecializedFixture::load("tiny");
    let g = &fx.specialized;
    let gelu_linears = g
        .nodes
        .iter()
        .filter(|n| {
            n.op == Op::Linear {
                activation: Activation::Gelu,
            }
        })
        .inspect(|n| assert!(n.name.contains("mlp/c_fc"), "{}", n.name))
        .count();
    let layers = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Attention(_)))
        .count();
    assert_eq!(gelu_linears, layers);
    assert!(g.nodes.iter().all(|n| n.op != Op::Gelu));
}
