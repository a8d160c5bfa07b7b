//! Times the phases of loading a model: `cargo run --release --example load_time -- MODEL`.
use std::time::Instant;
fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: load_time MODEL.onnx");
    let t = Instant::now();
    let data = bytes::Bytes::from(std::fs::read(&path).expect("read"));
    let t_read = t.elapsed();
    let model = gpt2c::onnx::decode(data, &path).expect("decode");
    let t_decode = t.elapsed();
    let graph = gpt2c::onnx::import(&model).expect("import");
    let t_import = t.elapsed();
    drop(model);
    let t_drop = t.elapsed();
    println!(
        "read {:?}, decode {:?}, import {:?}, drop proto {:?}; {} nodes",
        t_read,
        t_decode - t_read,
        t_import - t_decode,
        t_drop - t_import,
        graph.nodes.len()
    );
}
