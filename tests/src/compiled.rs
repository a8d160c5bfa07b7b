//! The committed fixtures, compiled by gpt2c in build.rs.

macro_rules! compiled {
    ($($name:ident => $dir:literal),*) => {
        $(
            #[allow(clippy::all, unused_imports, unused_variables, unused_mut, dead_code)]
            pub mod $name {
                include!(concat!(env!("OUT_DIR"), "/", $dir, "/model.rs"));
            }
        )*
    };
}

compiled!(tied => "tied", tiny => "tiny", tiny_bf16 => "tiny_bf16", tiny_f16 => "tiny_f16", tiny_q8 => "tiny_q8", wide => "wide", deep => "deep", static_ctx => "static", matmul_add => "matmul_add");
