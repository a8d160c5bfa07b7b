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
