//! The model compiled by gpt2c at build time (see build.rs), with its weights embedded.
//! `model` is the generated code; read it at `build_info::SOURCE_PATH`.

gpt2rt::include_model!(model);

pub use model::*;

/// Where the model came from and where its generated source is.
pub mod build_info {
    include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
}

/// A runner (see `gpt2text`) on a fresh instance of the embedded model.
pub fn runner() -> gpt2text::Runner<Model> {
    gpt2text::Runner::new(Model::new())
}
