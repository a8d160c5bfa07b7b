//! Which ONNX file `cargo build` compiles into the `gpt2` binary: the rule of the generated
//! crate's build script, here so that tests can check its messages without running a build.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The model to compile, from the value of `GPT2_ONNX` and the default model's path.
///
/// An unset or empty `GPT2_ONNX` means the default model. Otherwise it must be the absolute
/// path of an existing file. Every error names the path it is about.
pub fn resolve(gpt2_onnx: Option<&OsStr>, default: &Path) -> Result<PathBuf, String> {
    match gpt2_onnx {
        Some(p) if !p.is_empty() => {
            let model = PathBuf::from(p);
            if !model.is_absolute() {
                return Err(format!(
                    "GPT2_ONNX must be an absolute path, got '{}'",
                    model.display()
                ));
            }
            if !model.is_file() {
                return Err(format!(
                    "GPT2_ONNX names {}, which is not a file",
                    model.display()
                ));
            }
            Ok(model)
        }
        _ if default.is_file() => Ok(default.to_path_buf()),
        _ => Err(format!(
            "the default model {} is missing (set GPT2_ONNX=/absolute/path/to/model.onnx to compile another model)",
            default.display()
        )),
    }
}
