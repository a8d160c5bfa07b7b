//! The build-script API, in the style of prost-build: a `Builder` with explicit options,
//! called from a crate's `build.rs`, writes one generated module and its weights into
//! `OUT_DIR`, and the crate includes it with `gpt2rt::include_model!`.
//!
//! ```no_run
//! // build.rs
//! use gpt2c::codegen::layout::WeightFormat;
//! fn main() -> Result<(), gpt2c::Error> {
//!     gpt2c::Builder::new("models/gpt2-kjv.onnx")
//!         .weights(WeightFormat::Q8)
//!         .module("kjv")
//!         .compile()?;
//!     Ok(())
//! }
//! // src/main.rs: mod kjv { gpt2rt::include_model!("kjv"); }
//! ```
//!
//! Every option is an argument: the builder reads no environment variable of its own
//! (`GPT2_ONNX`, `GPT2_WEIGHTS` and `GPT2C_DISABLE_PASSES` are for the build scripts and
//! CLIs that choose to honour them). The exceptions are two variables cargo itself sets for
//! every build script: `OUT_DIR`, the default output directory, as in prost-build, and
//! `CARGO_CFG_TARGET_ARCH`, the default architecture of the weight object (as cc-rs reads
//! the target).

use crate::codegen::layout::WeightFormat;
use crate::codegen::object::Machine;
use crate::codegen::WeightsPath;
use crate::driver::{compile_file, CompileOptions, Compiled};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Compiles one ONNX model into a Rust module (`<module>.rs`) and its weight object
/// (`gpt2c_weights_<model>_<hash>.o`), which the linker copies into the binary.
#[derive(Clone, Debug)]
pub struct Builder {
    model: PathBuf,
    options: CompileOptions,
    module: String,
    out_dir: Option<PathBuf>,
    target_arch: Option<String>,
    cargo_metadata: bool,
}

impl Builder {
    /// A builder for the ONNX file `model` (relative paths are relative to the crate's
    /// directory, where cargo runs build scripts).
    pub fn new(model: impl Into<PathBuf>) -> Builder {
        Builder {
            model: model.into(),
            options: CompileOptions::default(),
            module: "model".into(),
            out_dir: None,
            target_arch: None,
            cargo_metadata: true,
        }
    }

    /// How the Linear weights are stored (f32 by default).
    pub fn weights(mut self, format: WeightFormat) -> Builder {
        self.options.weights = format;
        self
    }

    /// How the attention cache stores keys and values (f32 by default; `GPT2_KV`).
    pub fn kv(mut self, format: gpt2rt::kv::KvFormat) -> Builder {
        self.options.kv = format;
        self
    }

    /// Switches an optional pass off (one of `gpt2c::OPTIONAL_PASSES`), for A/B runs.
    pub fn disable(mut self, pass: impl Into<String>) -> Builder {
        self.options.disabled.push(pass.into());
        self
    }

    /// The most bytes a constant-folded result may take (default
    /// `passes::specialize::FOLD_BUDGET_BYTES`); larger ones stay run-time ops.
    pub fn fold_budget(mut self, bytes: usize) -> Builder {
        self.options.fold_budget = Some(bytes);
        self
    }

    /// The architecture the crate is built for (a Rust `target_arch`: `x86_64`, `aarch64`,
    /// ...), which the weight object is written for. Default: cargo's
    /// `CARGO_CFG_TARGET_ARCH`, else the architecture the build script runs on.
    pub fn target_arch(mut self, arch: impl Into<String>) -> Builder {
        self.target_arch = Some(arch.into());
        self
    }

    /// The name of the generated module: the files are `<name>.rs` and
    /// a weight object named after its symbol (`gpt2c_weights_<model>_<options>_<hash>.o`),
    /// and `gpt2rt::include_model!("<name>")` includes it. Default
    /// `model`. Several models in one crate need one name each.
    pub fn module(mut self, name: impl Into<String>) -> Builder {
        self.module = name.into();
        self
    }

    /// Where to write the files (default: cargo's `OUT_DIR`). The generated code finds its
    /// weights there by absolute path when this is not `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for the model and its external-data files
    /// and `cargo:rustc-link-search` for the weight object's folder (default true; turn it
    /// off outside build scripts).
    pub fn cargo_metadata(mut self, on: bool) -> Builder {
        self.cargo_metadata = on;
        self
    }

    /// The path of the generated source, once compiled.
    pub fn source_path(&self) -> Result<PathBuf> {
        Ok(self.dir()?.join(format!("{}.rs", self.module)))
    }

    fn dir(&self) -> Result<PathBuf> {
        match &self.out_dir {
            Some(d) => Ok(d.clone()),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or_else(|| {
                Error::Invalid(
                    "OUT_DIR is not set: call Builder::compile from a build script or give .out_dir(...)"
                        .into(),
                )
            }),
        }
    }

    /// Compiles the model. Errors name the model file.
    pub fn compile(&self) -> Result<Compiled> {
        let in_model = |e: Error| match e {
            Error::Io { .. } => e,
            e => Error::Model {
                path: self.model.display().to_string(),
                source: Box::new(e),
            },
        };
        let valid = !self.module.is_empty()
            && !self.module.starts_with(|c: char| c.is_ascii_digit())
            && self
                .module
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::Invalid(format!(
                "module name '{}' is not a snake_case identifier",
                self.module
            )));
        }
        for d in &self.options.disabled {
            if !crate::OPTIONAL_PASSES.contains(&d.as_str()) {
                return Err(Error::Invalid(format!(
                    "unknown pass '{d}'; optional passes: {}",
                    crate::OPTIONAL_PASSES.join(", ")
                )));
            }
        }
        if self.cargo_metadata {
            println!("cargo:rerun-if-changed={}", self.model.display());
        }
        let dir = self.dir()?;
        let abs_dir = std::path::absolute(&dir).map_err(|source| Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let weights_path = match (&self.out_dir, std::env::var_os("OUT_DIR")) {
            (None, _) => WeightsPath::OutDir,
            (Some(d), Some(o)) if Path::new(&o) == d => WeightsPath::OutDir,
            (Some(_), _) => WeightsPath::Absolute(abs_dir.display().to_string()),
        };
        let arch = self
            .target_arch
            .clone()
            .or_else(|| std::env::var("CARGO_CFG_TARGET_ARCH").ok());
        let mut options = self.options.clone();
        if let Some(arch) = arch {
            options.machine = Machine::from_target_arch(&arch);
        }
        let compiled = compile_file(
            &self.model,
            &self.source_path()?,
            &dir,
            weights_path,
            &options,
        )
        .map_err(in_model)?;
        if self.cargo_metadata {
            println!("cargo:rustc-link-search=native={}", abs_dir.display());
            // Changed external data changes the weights just as a changed model does.
            for f in &compiled.data_files {
                println!("cargo:rerun-if-changed={}", f.display());
            }
        }
        self.forget_previous_object(&dir, &compiled.summary.weights_file)?;
        Ok(compiled)
    }

    /// Removes the weight object this module had before, when it was another file (another
    /// model or options): a folder may hold several modules' objects, but each module needs
    /// only its newest, and an old one may be gigabytes. `<module>.object` remembers it.
    fn forget_previous_object(&self, dir: &Path, object: &Path) -> Result<()> {
        let record = dir.join(format!("{}.object", self.module));
        let io = |source| Error::Io {
            path: record.display().to_string(),
            source,
        };
        let name = object.file_name().unwrap_or_default().to_string_lossy();
        if let Ok(previous) = std::fs::read_to_string(&record) {
            let previous = previous.trim();
            let plain_name = !previous.contains(['/', '\\']) && previous.ends_with(".o");
            if plain_name && previous != name {
                let _ = std::fs::remove_file(dir.join(previous));
            }
        }
        std::fs::write(&record, format!("{name}\n")).map_err(io)
    }
}
