//! Per-op conformance: the reference interpreter against onnxruntime on the cases that
//! tools/make_op_cases.py generated, on the raw graph and after specialization.

use gpt2c_tests::{compare, repo_root, Manifest};

/// Per-op results are small computations: much tighter than the whole-model tolerance.
const OP_TOL: f64 = 1e-5;

#[test]
fn interpreter_matches_onnxruntime_per_op() {
    let manifests = Manifest::all_in(&repo_root().join("tests/ops"));
    assert!(
        manifests.len() > 90,
        "expected the generated op cases, found {}",
        manifests.len()
    );
    let (mut checked, mut specialized, mut failures) = (0, 0, Vec::new());
    for path in manifests {
        let m = Manifest::read(&path, None);
        let name = m.json["name"].as_str().unwrap_or("?").to_string();
        let graph = match gpt2c::onnx::load_graph(&m.model) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{name}: import failed: {e}"));
                continue;
            }
        };
        for case in &m.cases {
            let inputs: Vec<(&str, _)> = case
                .inputs
                .iter()
                .map(|t| (t.name.as_str(), t.tensor.clone()))
                .collect();
            let mut check = |stage: &str, g: &gpt2c::ir::Graph| match gpt2c::interp::run(g, &inputs)
            {
                Err(e) => failures.push(format!("{name}/{} {stage}: {e}", case.name)),
                Ok(outs) => {
                    for (o, r) in outs.iter().zip(&case.outputs) {
                        if let Err(e) = compare(
                            &format!("{name}/{}/{} {stage}", case.name, r.name),
                            o,
                            &r.tensor,
                            OP_TOL,
                        ) {
                            failures.push(e);
                        }
                    }
                }
            };
            check("raw", &graph);
            checked += 1;
            let shapes = case
                .inputs
                .iter()
                .map(|t| (t.name.clone(), t.tensor.shape().to_vec()))
                .collect();
            match gpt2c::compile_graph(&graph, shapes, |_, _, _| {}) {
                Ok(g) => {
                    check("specialized", &g);
                    specialized += 1;
                }
                // A graph input that decides a shape (a Reshape target fed at run time)
                // cannot be specialized; that is the only acceptable refusal.
                Err(e) if e.to_string().contains("must be a constant") => {}
                Err(e) => {
                    failures.push(format!("{name}/{}: specialization failed: {e}", case.name))
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        specialized * 10 >= checked * 8,
        "only {specialized} of {checked} cases specialized"
    );
    eprintln!("{checked} op cases match onnxruntime; {specialized} also after specialization");
}

#[test]
fn invalid_op_graphs_are_rejected() {
    let root = repo_root().join("tests/ops/errors");
    let manifests = Manifest::all_in(&root);
    assert!(
        manifests.len() >= 10,
        "expected the error cases, found {}",
        manifests.len()
    );
    for path in manifests {
        let m = Manifest::read(&path, None);
        let name = m.json["name"].as_str().unwrap_or("?").to_string();
        let why = m.json["expect_error"].as_str().unwrap_or("?").to_string();
        let result = gpt2c::onnx::load_graph(&m.model).and_then(|g| {
            let case = m.cases.first().expect("a case");
            let inputs: Vec<(&str, _)> = case
                .inputs
                .iter()
                .map(|t| (t.name.as_str(), t.tensor.clone()))
                .collect();
            gpt2c::interp::run(&g, &inputs)
        });
        match result {
            Ok(_) => panic!("{name}: expected an error ({why}), got a result"),
            Err(e) => eprintln!("{name}: rejected as expected: {e}"),
        }
    }
}
