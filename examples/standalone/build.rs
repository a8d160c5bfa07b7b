//! Compiles the model into OUT_DIR/kjv.rs and its weight object
//! (OUT_DIR/gpt2c_weights_<model>_<hash>.o)
//! at build time.

fn main() -> Result<(), gpt2c::Error> {
    gpt2c::Builder::new("../../models/gpt2-kjv.onnx")
        .module("kjv")
        .compile()?;
    Ok(())
}
