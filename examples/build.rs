//! Compiles the default model twice, with f32 and with q8 weights, into two modules.

use gpt2c::codegen::layout::WeightFormat;

fn main() -> Result<(), gpt2c::Error> {
    let model = "../models/gpt2-kjv.onnx";
    gpt2c::Builder::new(model)
        .weights(WeightFormat::F32)
        .module("kjv_f32")
        .compile()?;
    gpt2c::Builder::new(model)
        .weights(WeightFormat::Q8)
        .module("kjv_q8")
        .compile()?;
    Ok(())
}
