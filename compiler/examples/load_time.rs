//! Times the phases of loading a model: `cargo run --release --example load_time -- MODEL`.
use std::time::Instant;
fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: load_time MODEL.onnx");
    let path = std::path::Path::new(&path);
    let t = Instant::now();
    let data = gpt2c::onnx::map_model(path).expect("map");
    let t_map = t.elapsed();
    let loaded = gpt2c::onnx::decode_at(data, path).expect("decode");
    let t_decode = t.elapsed();
    let graph = gpt2c::onnx::import(&loaded.model).expect("import");
    let t_import = t.elapsed();
    let files = loaded.data_files.len();
    drop(loaded);
    let t_drop = t.elapsed();
    println!(
        "map {:?}, decode (and external data: {files} files) {:?}, import {:?}, drop proto {:?}; {} nodes",
        t_map,
        t_decode - t_map,
        t_import - t_decode,
        t_drop - t_import,
        graph.nodes.len()
    );
}
