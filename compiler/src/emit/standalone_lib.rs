//! A model compiled by gpt2c: `model.rs` is the generated forward pass (its header names
//! the ONNX file, its sha256 and the options), `../gpt2c_weights_*.o` the weights,
//! which the linker copies in. Regenerate both with `gpt2c emit MODEL.onnx -o DIR`.

#[allow(
    clippy::all,
    clippy::pedantic,
    unused_imports,
    unused_variables,
    unused_mut,
    dead_code
)]
mod model;

pub use model::*;
