//! Compiles the model into OUT_DIR/kjv.rs and OUT_DIR/kjv.weights.bin at build time.

fn main() -> Result<(), gpt2c::Error> {
    gpt2c::Builder::new("../../models/gpt2-kjv.onnx")
        .module("kjv")
        .compile()?;
    Ok(())
}
