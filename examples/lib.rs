//! The models the examples share: the default model (models/gpt2-kjv.onnx) compiled twice
//! by build.rs, with f32 weights and with int8 (q8) weights. Each module is a whole
//! generated model (`Model`, `INPUTS`, `GPT2`, ...) implementing `gpt2rt::Gpt2Model`.

gpt2rt::include_model!(kjv_f32);
gpt2rt::include_model!(kjv_q8);

/// The file both were compiled from, relative to the repository.
pub const MODEL: &str = "models/gpt2-kjv.onnx";
