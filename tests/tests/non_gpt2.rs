//! A graph that is not GPT-2 compiles and runs correctly: generic lowering, two inputs,
//! a Gemm with alpha and bias, and tied weights (a matrix and its stored transpose) read
//! as strided views by both Gemm and MatMul.

use gpt2c::ir::Tensor;
use gpt2c_tests::compare;
use gpt2c_tests::compiled::tied;
use gpt2rt::io::TensorRef;

#[test]
fn generated_code_matches_the_interpreter_on_a_non_gpt2_graph() {
    let path = std::path::Path::new(env!("OUT_DIR")).join("tied.onnx");
    let graph = gpt2c::onnx::load_graph(&path).unwrap();
    assert!(
        gpt2c::gpt2::Gpt2Config::derive(&graph).is_err(),
        "not a GPT-2 graph"
    );
    let x: Vec<f32> = (0..6).map(|i| i as f32 * 0.3 - 1.0).collect();
    let z: Vec<f32> = (0..8).map(|i| (i as f32).cos()).collect();
    let inputs = [
        ("x", Tensor::from_vec(vec![2, 3], x.clone())),
        ("z", Tensor::from_vec(vec![2, 4], z.clone())),
    ];
    let reference = gpt2c::interp::run(&graph, &inputs).unwrap();
    let compiled = gpt2c::compile_graph(
        &graph,
        vec![("x".into(), vec![2, 3]), ("z".into(), vec![2, 4])],
        |_, _, _| {},
    )
    .unwrap();
    assert!(
        compiled.nodes.iter().any(|n| n.name.ends_with("_tied")),
        "tie-weights found the transposed copy"
    );
    const { assert!(!tied::INCREMENTAL) };
    let mut model = tied::Model::new();
    model
        .run(&[TensorRef::F32(&x), TensorRef::F32(&z)])
        .unwrap();
    for (i, r) in reference.iter().enumerate() {
        let Some(TensorRef::F32(o)) = model.output(i) else {
            panic!("output {i}")
        };
        compare(
            &format!("tied output {i}"),
            &Tensor::from_vec(r.shape().to_vec(), o.to_vec()),
            r,
            1e-5,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(
        model.run(&[TensorRef::F32(&x)]).is_err(),
        "wrong input count is an error"
    );
}
