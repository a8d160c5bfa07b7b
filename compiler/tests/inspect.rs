//! `gpt2c inspect --stop-after/--json/--dot` on the tiny fixture: every stage, node counts
//! against the library's own pipeline, a memory plan without overlaps, well-formed DOT.

use gpt2c::inspect::STAGES;
use gpt2c::ir::Graph;
use gpt2c::OPTIONAL_PASSES;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const LEN: usize = 13;

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny/model.onnx")
}

/// Runs `gpt2c inspect tiny --len 13 ARGS`: (success, stdout, stderr).
fn inspect(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpt2c"))
        .arg("inspect")
        .arg(tiny())
        .args(["--len", &LEN.to_string()])
        .args(args)
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!se.contains("panicked"), "gpt2c panicked:\n{se}");
    (out.status.success(), so, se)
}

/// The graphs the library's pipeline produces: ("import", graph), then (pass, graph).
fn pipeline() -> Vec<(String, Graph)> {
    let g = gpt2c::onnx::load_graph(&tiny()).unwrap();
    let mut v = vec![("import".to_string(), g.clone())];
    gpt2c::compile_graph(&g, vec![("input1".into(), vec![1, 1, LEN])], |p, _, g| {
        v.push((p.to_string(), g.clone()))
    })
    .unwrap();
    v
}

/// The graph `--stop-after stage` shows.
fn graph_at<'a>(p: &'a [(String, Graph)], stage: &str) -> &'a Graph {
    match stage {
        "fuse" | "sequence" | "plan" => &p.last().unwrap().1,
        s => &p.iter().find(|(n, _)| n == s).unwrap().1,
    }
}

#[test]
fn every_stage_prints_its_graph_with_totals() {
    let p = pipeline();
    for stage in STAGES.iter().chain(OPTIONAL_PASSES) {
        let (ok, out, err) = inspect(&["--stop-after", stage]);
        assert!(ok, "{stage}: {err}");
        assert!(
            err.is_empty(),
            "{stage}: stderr is not a terminal, yet:\n{err}"
        );
        let n = graph_at(&p, stage).nodes.len();
        assert!(
            out.contains(&format!("\nstage {stage} (")),
            "{stage}:\n{out}"
        );
        assert!(
            out.contains(&format!("\ntotals {n} nodes: ")),
            "{stage}: {n} nodes?\n{out}"
        );
        // One line per node, numbered 0..n after the stage header.
        let table = &out[out.find("\nstage ").unwrap()..out.find("\ntotals ").unwrap()];
        let rows: Vec<usize> = table
            .lines()
            .filter_map(|l| {
                l.strip_prefix("  ")?
                    .trim_start()
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        assert_eq!(rows, (0..n).collect::<Vec<_>>(), "{stage}:\n{out}");
        let has_seq = out.contains("sequence   incremental:");
        let has_plan = out.contains("memory     arena f32") && out.contains("peak live");
        assert_eq!(
            has_seq,
            matches!(*stage, "sequence" | "plan"),
            "{stage}:\n{out}"
        );
        assert_eq!(has_plan, *stage == "plan", "{stage}:\n{out}");
    }
}

#[test]
fn default_output_keeps_its_lines_and_adds_costs() {
    let (ok, out, err) = inspect(&[]);
    assert!(ok, "{err}");
    let passes = pipeline().len() - 1;
    assert_eq!(out.matches("\nafter ").count(), passes, "{out}");
    assert_eq!(out.matches("cost per forward: ").count(), passes, "{out}");
    for want in [
        "after specialize (L=13)",
        "sequence   incremental",
        "memory     arena f32",
        "passes     ",
    ] {
        assert!(out.contains(want), "missing '{want}':\n{out}");
    }
}

fn json(args: &[&str]) -> Value {
    let (ok, out, err) = inspect(args);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn nodes(stage: &Value) -> &Vec<Value> {
    stage["graph"]["nodes"].as_array().unwrap()
}

#[test]
fn json_has_every_stage_with_its_nodes_and_totals() {
    let p = pipeline();
    let d = json(&["--json"]);
    assert_eq!(d["schema"], "gpt2c-inspect");
    assert_eq!(d["version"], gpt2c::inspect::JSON_VERSION);
    assert_eq!(d["model"]["config"]["n_layer"], 2);
    assert_eq!(
        d["specialized_to"][0]["shape"],
        serde_json::json!([1, 1, LEN])
    );
    let stages = d["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    want.extend(["sequence", "plan"]);
    assert_eq!(names, want);
    for s in stages {
        let name = s["stage"].as_str().unwrap();
        let g = graph_at(&p, name);
        let ns = nodes(s);
        assert_eq!(ns.len(), g.nodes.len(), "{name}");
        assert_eq!(s["graph"]["totals"]["nodes"], g.nodes.len(), "{name}");
        for (n, j) in g.nodes.iter().zip(ns) {
            assert_eq!(j["name"], n.name.as_str());
            assert_eq!(j["op"], n.op.name());
            assert_eq!(j["inputs"].as_array().unwrap().len(), n.inputs.len());
        }
        // Totals are the sum of the nodes; after specialization every node has a cost.
        let sum = |k: &str| ns.iter().filter_map(|n| n[k].as_u64()).sum::<u64>();
        assert_eq!(
            s["graph"]["totals"]["flops"].as_u64(),
            Some(sum("flops")),
            "{name}"
        );
        assert_eq!(
            s["graph"]["totals"]["bytes"].as_u64(),
            Some(sum("bytes")),
            "{name}"
        );
        if name != "import" {
            assert_eq!(s["graph"]["totals"]["nodes_without_cost"], 0, "{name}");
            assert!(sum("flops") > 0, "{name}");
        }
        assert_eq!(
            s.get("sequence").is_some(),
            matches!(name, "sequence" | "plan")
        );
        assert_eq!(s.get("plan").is_some(), name == "plan");
    }
    let seq = &stages[stages.len() - 2]["sequence"];
    assert_eq!(seq["incremental"], true);
    assert_eq!(seq["len"], LEN);
    assert_eq!(seq["cache"].as_array().unwrap().len(), 4); // K and V of 2 layers
}

#[test]
fn json_stop_after_gives_one_stage() {
    let p = pipeline();
    for stage in ["import", "simplify", "fuse"] {
        let d = json(&["--json", "--stop-after", stage]);
        let stages = d["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 1);
        assert_eq!(stages[0]["stage"], stage);
        assert_eq!(nodes(&stages[0]).len(), graph_at(&p, stage).nodes.len());
    }
    let d = json(&["--json", "--stop-after", "fuse"]);
    let passes: Vec<&str> = p[1..].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(d["stages"][0]["passes"], serde_json::json!(passes));
}

#[test]
fn the_memory_plan_fits_its_arenas_and_never_overlaps_live_buffers() {
    let d = json(&["--json", "--stop-after", "plan"]);
    let plan = &d["stages"][0]["plan"];
    let arena = |dt: &str| {
        plan["arenas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["dtype"] == dt)
            .unwrap()["elements"]
            .as_u64()
            .unwrap()
    };
    let bufs = plan["buffers"].as_array().unwrap();
    assert!(!bufs.is_empty());
    let u = |b: &Value, k: &str| b[k].as_u64().unwrap();
    let mut live_max = 0;
    for b in bufs {
        assert!(u(b, "offset") + u(b, "elements") <= arena(b["dtype"].as_str().unwrap()));
        assert!(u(b, "first_step") <= u(b, "last_step"));
        live_max = live_max.max(u(b, "last_step"));
    }
    assert_eq!(live_max, u(plan, "steps"));
    // A Concat's inputs computed in place lie inside its buffer, within its lifetime.
    let mut inside = 0;
    for a in bufs.iter().filter(|a| a["inside"].is_string()) {
        let host = bufs.iter().find(|b| b["value"] == a["inside"]).unwrap();
        assert!(u(host, "offset") <= u(a, "offset"), "{a} in {host}");
        assert!(u(a, "offset") + u(a, "elements") <= u(host, "offset") + u(host, "elements"));
        assert!(u(host, "first_step") <= u(a, "first_step"));
        assert!(u(a, "last_step") <= u(host, "last_step"));
        inside += 1;
    }
    // GPT-2's keys and values are computed into the presents.
    assert!(inside > 0);
    for (i, a) in bufs.iter().enumerate() {
        for b in &bufs[i + 1..] {
            if a["inside"] == b["value"] || b["inside"] == a["value"] {
                continue;
            }
            let same_time =
                u(a, "first_step") <= u(b, "last_step") && u(b, "first_step") <= u(a, "last_step");
            let same_place = a["dtype"] == b["dtype"]
                && u(a, "offset") < u(b, "offset") + u(b, "elements")
                && u(b, "offset") < u(a, "offset") + u(a, "elements");
            assert!(!(same_time && same_place), "{a} and {b} overlap");
        }
    }
    let peak = u(plan, "peak_live_bytes");
    assert!(peak > 0 && peak <= u(plan, "arena_bytes"), "{plan}");
    // Every graph output keeps its buffer for the whole call.
    for o in d["stages"][0]["graph"]["outputs"].as_array().unwrap() {
        let b = bufs.iter().find(|b| b["value"] == o["name"]).unwrap();
        assert_eq!(b["persistent"], true, "{b}");
    }
}

#[test]
fn dot_is_one_statement_per_line_with_every_node_and_edge() {
    let p = pipeline();
    for stage in ["specialize", "fuse", "plan"] {
        let (ok, out, err) = inspect(&["--dot", "--stop-after", stage]);
        assert!(ok, "{err}");
        let g = graph_at(&p, stage);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "digraph gpt2c {");
        assert_eq!(*lines.last().unwrap(), "}");
        // Braces balance outside the quoted labels.
        let (mut depth, mut quoted, mut prev) = (0i32, false, ' ');
        for c in out.chars() {
            match c {
                '"' if prev != '\\' => quoted = !quoted,
                '{' if !quoted => depth += 1,
                '}' if !quoted => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0);
            prev = c;
        }
        assert_eq!((depth, quoted), (0, false));
        let body = &lines[1..lines.len() - 1];
        assert!(
            body.iter().all(|l| l.starts_with("  ") && l.ends_with(';')),
            "{out}"
        );
        let decl = |prefix: char| {
            body.iter()
                .filter(|l| {
                    let t = l.trim_start();
                    t.starts_with(prefix) && !t.contains(" -> ") && t.as_bytes()[1].is_ascii_digit()
                })
                .count()
        };
        assert_eq!(decl('n'), g.nodes.len(), "{stage}");
        assert_eq!(decl('i'), g.inputs.len(), "{stage}");
        assert_eq!(decl('o'), g.outputs.len(), "{stage}");
        // An edge for each use of a computed value (constants are not drawn).
        let uses: usize = g
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().flatten())
            .filter(|&&v| g.values[v].konst.is_none())
            .count();
        let edges = body.iter().filter(|l| l.contains(" -> ")).count();
        assert_eq!(edges, uses + g.outputs.len(), "{stage}");
    }
}

#[test]
fn bad_stages_are_refused_with_the_valid_ones() {
    let (ok, _, err) = inspect(&["--stop-after", "fusion"]);
    assert!(!ok);
    assert!(err.starts_with("error: unknown stage 'fusion'"), "{err}");
    for s in STAGES.iter().chain(OPTIONAL_PASSES) {
        assert!(err.contains(s), "'{s}' missing from:\n{err}");
    }
    let (ok, _, err) = inspect(&["--disable", "fuse-gelu", "--stop-after", "fuse-gelu"]);
    assert!(!ok && err.contains("disabled"), "{err}");
    let (ok, _, err) = inspect(&["--json", "--dot"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}

#[test]
fn the_plan_says_whether_sequences_can_be_batched_and_why_not() {
    let (ok, out, err) = inspect(&["--stop-after", "plan"]);
    assert!(ok, "{err}");
    assert!(out.contains("batching   continuous:"), "{out}");
    let d = json(&["--json", "--stop-after", "plan"]);
    let b = &d["stages"][0]["batching"];
    assert_eq!(b["possible"], true);
    // The cache block: both layers' keys and values for every position.
    let cache = b["cache_elements"].as_u64().unwrap();
    assert!(cache >= 2 * 2 * LEN as u64 * 32, "{b}");
    // Without the attention fusion the rows cannot run separately, let alone batched.
    let (ok, out, err) = inspect(&["--stop-after", "plan", "--disable", "fuse-attention"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("batching   not possible: the sequence analysis failed"),
        "{out}"
    );
}
