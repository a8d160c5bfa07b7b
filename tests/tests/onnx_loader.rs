//! The prost loader against an independent decoder (onnx-protobuf): the same file decoded by
//! both gives the same graph, and weight data is shared with the file buffer, not copied.

use bytes::Bytes;
use gpt2c_tests::repo_root;
use protobuf::Message as _;

#[test]
fn prost_and_onnx_protobuf_decode_the_same_graph() {
    for name in ["tiny", "matmul_add", "static"] {
        let path = repo_root().join(format!("tests/fixtures/{name}/model.onnx"));
        let data = std::fs::read(&path).unwrap();
        let ours = gpt2c::onnx::decode(Bytes::from(data.clone()), "test").unwrap();
        let theirs = onnx_protobuf::ModelProto::parse_from_bytes(&data).unwrap();
        assert_eq!(ours.ir_version, theirs.ir_version);
        assert_eq!(ours.producer_name, theirs.producer_name);
        let (g, h) = (ours.graph.as_ref().unwrap(), theirs.graph.as_ref().unwrap());
        assert_eq!(g.node.len(), h.node.len());
        for (a, b) in g.node.iter().zip(&h.node) {
            assert_eq!(
                (&a.name, &a.op_type, &a.input, &a.output),
                (&b.name, &b.op_type, &b.input, &b.output)
            );
            assert_eq!(a.attribute.len(), b.attribute.len());
            for (x, y) in a.attribute.iter().zip(&b.attribute) {
                assert_eq!((&x.name, x.i, x.f, &x.ints), (&y.name, y.i, y.f, &y.ints));
                assert_eq!(
                    x.t.as_ref().map(|t| t.raw_data.to_vec()),
                    y.t.as_ref().map(|t| t.raw_data.clone())
                );
            }
        }
        assert_eq!(g.initializer.len(), h.initializer.len());
        for (a, b) in g.initializer.iter().zip(&h.initializer) {
            assert_eq!(
                (&a.name, &a.dims, a.data_type),
                (&b.name, &b.dims, b.data_type)
            );
            assert_eq!(a.raw_data.as_ref(), b.raw_data.as_slice());
            assert_eq!(a.float_data, b.float_data);
        }
        let io = |v: &[gpt2c::onnx::proto::ValueInfoProto]| {
            v.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        };
        let io2 = |v: &[onnx_protobuf::ValueInfoProto]| {
            v.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(io(&g.input), io2(&h.input));
        assert_eq!(io(&g.output), io2(&h.output));
    }
}

#[test]
fn weights_are_slices_of_the_file_buffer() {
    let path = repo_root().join("tests/fixtures/tiny/model.onnx");
    let data = Bytes::from(std::fs::read(&path).unwrap());
    let range = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
    let model = gpt2c::onnx::decode(data.clone(), "test").unwrap();
    let graph = gpt2c::onnx::import(&model).unwrap();
    let mut big = 0;
    for v in &graph.values {
        if let Some(t) = &v.konst {
            if t.byte_len() >= 1024 {
                big += 1;
                assert!(
                    range.contains(&(t.bytes().as_ptr() as usize)),
                    "'{}' was copied",
                    v.name
                );
            }
        }
    }
    assert!(big > 10, "expected the weights among the constants");
}

/// The `tiny-external` fixture is `tiny` re-saved with its initializers of 1 KB and more in
/// `model.data` (tools/save_external_data.py): loaded, it is the same graph with the same
/// constants, bit for bit, and those weights are slices of the mapped data file.
#[test]
fn external_data_loads_as_the_inline_model_without_copies() {
    let fixtures = repo_root().join("tests/fixtures");
    let loaded = gpt2c::onnx::load_files(&fixtures.join("tiny-external/model.onnx")).unwrap();
    assert_eq!(loaded.data_files.len(), 1);
    let file = &loaded.data_files[0];
    assert_eq!(
        file.path,
        std::fs::canonicalize(fixtures.join("tiny-external/model.data")).unwrap()
    );
    let range = file.data.as_ptr() as usize..file.data.as_ptr() as usize + file.data.len();
    let external = gpt2c::onnx::import(&loaded.model).unwrap();
    let inline = gpt2c::onnx::load_graph(&fixtures.join("tiny/model.onnx")).unwrap();
    assert_eq!(external.nodes.len(), inline.nodes.len());
    assert_eq!(external.values.len(), inline.values.len());
    let mut shared = 0;
    for (a, b) in external.values.iter().zip(&inline.values) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.konst, b.konst, "'{}'", a.name);
        if let Some(t) = &a.konst {
            if t.byte_len() >= 1024 && range.contains(&(t.bytes().as_ptr() as usize)) {
                shared += 1;
            }
        }
    }
    let external_tensors = loaded
        .model
        .graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .filter(|t| t.raw_data.len() >= 1024)
        .count();
    assert_eq!(
        shared, 12,
        "the 12 external initializers are slices of model.data"
    );
    assert_eq!(external_tensors, 12);
}
