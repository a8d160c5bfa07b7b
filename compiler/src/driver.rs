//! The whole compiler behind one call: ONNX file → `model.rs` + a weight object in a
//! directory. Used by the generated crate's build script and by `gpt2c emit`.

use crate::codegen::layout::WeightFormat;
use crate::codegen::{self, Options, Summary, WeightsPath};
use crate::error::{Error, Result};
use crate::gpt2::{token_input, token_shape, Gpt2Config};
use crate::ir::Graph;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What was compiled, for build logs and `gpt2 info`.
#[derive(Debug)]
pub struct Compiled {
    /// The GPT-2 configuration, when the graph is one.
    pub config: Option<Gpt2Config>,
    /// The static shape of each graph input the code was specialized to.
    pub inputs: Vec<(String, Vec<usize>)>,
    /// What code generation produced.
    pub summary: Summary,
    /// sha256 of the model file, hex (of the `.onnx` file alone: not of its external data).
    pub model_sha256: String,
    /// The external-data files the model's tensors were read from (canonical paths; empty
    /// for a self-contained model).
    pub data_files: Vec<std::path::PathBuf>,
}

/// Static input shapes: a GPT-2 graph runs its full context (or its declared static
/// length); any other graph needs fully static declared input shapes.
pub fn input_shapes(
    graph: &Graph,
    config: Option<&Gpt2Config>,
) -> Result<Vec<(String, Vec<usize>)>> {
    if let Some(c) = config {
        let (name, dims) = token_input(graph)?;
        let len = match dims.last() {
            Some(crate::ir::Dim::Known(n)) => *n,
            _ => c.n_ctx,
        };
        c.check_len(graph, len)?;
        return Ok(vec![(name, token_shape(&dims, len))]);
    }
    graph
        .inputs
        .iter()
        .map(|&i| {
            let v = &graph.values[i];
            let shape = v.ty.as_ref().and_then(|t| t.static_shape()).ok_or_else(|| {
                Error::Shape(format!("input '{}' has a symbolic shape; only GPT-2 graphs get one chosen for them", v.name))
            })?;
            Ok((v.name.clone(), shape))
        })
        .collect()
}

/// How to compile: every option explicit (the library reads no environment variable;
/// build scripts and CLIs read `GPT2_WEIGHTS`, `GPT2_KV` and `GPT2C_DISABLE_PASSES` and pass
/// them in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// How Linear weights are stored.
    pub weights: WeightFormat,
    /// How the attention cache stores keys and values (`GPT2_KV`).
    pub kv: gpt2rt::kv::KvFormat,
    /// Optional passes to switch off (`crate::OPTIONAL_PASSES`).
    pub disabled: Vec<String>,
    /// The constant-folding budget per node result in bytes, if not the default
    /// (`passes::specialize::FOLD_BUDGET_BYTES`).
    pub fold_budget: Option<usize>,
    /// The machine the weight object is for (default: the one the compiler runs on).
    pub machine: codegen::object::Machine,
}

/// Compiles the ONNX file `model` into the Rust source `source_out` and a weight object in
/// `weights_dir`, a folder the source finds at `weights_path`.
pub fn compile_file(
    model: &Path,
    source_out: &Path,
    weights_dir: &Path,
    weights_path: WeightsPath,
    options: &CompileOptions,
) -> Result<Compiled> {
    let data = crate::onnx::map_model(model)?;
    for dir in [source_out.parent(), Some(weights_dir)]
        .into_iter()
        .flatten()
    {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let (source, compiled) = compile_bytes_as(data, model, weights_path, weights_dir, options)?;
    std::fs::write(source_out, source).map_err(|source| Error::Io {
        path: source_out.display().to_string(),
        source,
    })?;
    Ok(compiled)
}

/// The whole compiler on a model already in memory: returns the generated source and writes
/// the weight object into `weights_dir` (`Summary::weights_file`). `model` is the file the bytes came from: it names them in
/// messages and the header, and external data is looked for in its folder. `compile_file` is
/// this plus file I/O; the fuzzer (tests crate) calls it directly.
pub fn compile_bytes_as(
    data: Bytes,
    model: &Path,
    weights_path: WeightsPath,
    weights_dir: &Path,
    options: &CompileOptions,
) -> Result<(String, Compiled)> {
    let weight_format = options.weights;
    let disabled = options.disabled.clone();
    // The first pass over the mapped file: it reads the file in, so it shows progress.
    crate::progress::stage("hashing", Some(data.len() as u64));
    let mut hasher = Sha256::new();
    for chunk in data.chunks(4 << 20) {
        hasher.update(chunk);
        crate::mapped::release(chunk);
        crate::progress::advance(chunk.len() as u64);
    }
    let sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    crate::progress::stage("decoding", None);
    let loaded = crate::onnx::decode_at(data, model)?;
    let data_files = loaded.data_files.iter().map(|f| f.path.clone()).collect();
    crate::progress::stage("importing", None);
    let graph = crate::onnx::import(&loaded.model)?;
    drop(loaded);
    // attention_mask and position_ids of one unpadded sequence.
    let graph = crate::gpt2::bind_side_inputs(&graph)?;
    let derived = Gpt2Config::derive(&graph);
    let config = derived.as_ref().ok().copied();
    // Without GPT-2's input the inputs must be static; when they are not, say also why the
    // graph is not GPT-2 (a token input of the wrong type, say), or the message misleads.
    let inputs = input_shapes(&graph, config.as_ref()).map_err(|e| match &derived {
        Err(why) => Error::Shape(format!("{e}, and this one is not: {why}")),
        Ok(_) => e,
    })?;
    crate::progress::stage("specialize and fold", None);
    let mut ran = Vec::new();
    let budget = options
        .fold_budget
        .unwrap_or(crate::passes::specialize::FOLD_BUDGET_BYTES);
    let specialized =
        crate::compile_graph_folding(&graph, inputs.clone(), &disabled, budget, |pass, _, _| {
            ran.push(pass.to_string());
            crate::progress::stage(&format!("passes ({pass} done)"), None)
        })?;
    let shapes: Vec<String> = inputs.iter().map(|(n, s)| format!("{n}{s:?}")).collect();
    let opts = Options {
        model_name: model
            .file_name()
            .map_or("model.onnx".into(), |f| f.to_string_lossy().into_owned()),
        model_sha256: sha.clone(),
        weights_path,
        gpt2: config,
        weight_format,
        kv_format: options.kv,
        disabled_passes: disabled.clone(),
        fold_budget: options.fold_budget,
        machine: options.machine,
        options: format!(
            "{} weights{}; specialized to {}; passes: {}{}",
            match weight_format {
                WeightFormat::Q4 => format!(
                    "q4 (4-bit, an int8 scale per {} rows and column, an f32 unit per column)",
                    gpt2rt::q4::BLOCK
                ),
                f => f.name().to_string(),
            },
            match options.kv {
                gpt2rt::kv::KvFormat::F32 => String::new(),
                f => format!(", {} attention cache", f.name()),
            },
            shapes.join(", "),
            ran.join(", "),
            if disabled.is_empty() {
                String::new()
            } else {
                format!(" (passes disabled: {})", disabled.join(", "))
            },
        ) + &match options.fold_budget {
            Some(b) => format!("; folding budget {b} bytes per result"),
            None => String::new(),
        },
    };
    // What the passes read (weights compared, constants folded) is not needed in memory.
    crate::mapped::release_all();
    crate::progress::stage("codegen", None);
    let (source, summary) = codegen::generate(&specialized, &opts, weights_dir)?;
    Ok((
        source,
        Compiled {
            config,
            inputs,
            summary,
            model_sha256: sha,
            data_files,
        },
    ))
}
