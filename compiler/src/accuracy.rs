//! What a weight format costs (`gpt2c accuracy`): the f32 model and the model whose matrices
//! are rounded to the format (`codegen::narrowed`, exactly what the generated code computes),
//! its attention cache too with `--kv` (`codegen::kv_rounded`),
//! run through the reference interpreter on a fixed set of token sequences; the report is
//! the largest logit difference and how often the two agree on the most likely token.

use crate::codegen::layout::WeightFormat;
use crate::error::{Error, Result};
use crate::gpt2::Gpt2Config;
use crate::ir::{Graph, Tensor};

/// What `gpt2c accuracy` measured for one weight format.
#[derive(Clone, Debug)]
pub struct Report {
    /// The format compared with f32.
    pub format: WeightFormat,
    /// The attention cache's format (`GPT2_KV`).
    pub kv: gpt2rt::kv::KvFormat,
    /// Token sequences run.
    pub sequences: usize,
    /// Positions compared (logit rows), over all sequences.
    pub positions: usize,
    /// Largest |logit(format) − logit(f32)| over every position and token.
    pub max_abs_diff: f32,
    /// Largest |logit(f32)|, for scale.
    pub max_abs_logit: f32,
    /// Positions whose argmax agrees.
    pub top1_agree: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{} weights{}{}: max |logit difference| {:.4} (logits up to {:.2}), top-1 agreement {}/{} ({:.2}%) over {} sequences",
            self.format.name(),
            match self.format {
                WeightFormat::Q8 => format!(
                    " (inputs of Linears int8 per block of {})",
                    gpt2rt::q8::QBLOCK
                ),
                WeightFormat::Q4 => format!(
                    " (blocks of {} weights with an int8 scale, an f32 unit per column; inputs of Linears int8 per block of {})",
                    gpt2rt::q4::BLOCK,
                    gpt2rt::q8::QBLOCK
                ),
                WeightFormat::Bf16 => " (inputs of Linears bf16)".to_string(),
                _ => String::new(),
            },
            match self.kv {
                gpt2rt::kv::KvFormat::F32 => String::new(),
                kv => format!(", {} attention cache", kv.name()),
            },
            self.max_abs_diff,
            self.max_abs_logit,
            self.top1_agree,
            self.positions,
            100.0 * self.top1_agree as f64 / self.positions.max(1) as f64,
            self.sequences
        )
    }
}

/// The fixed token sequences: `sequences` × `len` ids from a seeded generator.
pub fn sequences(sequences: usize, len: usize, vocab: usize) -> Vec<Vec<i64>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..sequences)
        .map(|_| {
            (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) % vocab as u64) as i64
                })
                .collect()
        })
        .collect()
}

/// Runs both models on `sequences` × `len` tokens and compares their logits.
pub fn measure(
    graph: &Graph,
    format: WeightFormat,
    kv: gpt2rt::kv::KvFormat,
    sequences: usize,
    len: usize,
) -> Result<Report> {
    let config = Gpt2Config::derive(graph)?;
    let (name, dims) = crate::gpt2::token_input(graph)?;
    let len = len.min(config.n_ctx);
    let shape = crate::gpt2::token_shape(&dims, len);
    let f32_model = crate::compile_graph(graph, vec![(name.clone(), shape.clone())], |_, _, _| {})?;
    let narrow = crate::codegen::kv_rounded(&crate::codegen::narrowed(&f32_model, format), kv);
    let vocab = config.vocab;
    let mut r = Report {
        format,
        kv,
        sequences,
        positions: 0,
        max_abs_diff: 0.0,
        max_abs_logit: 0.0,
        top1_agree: 0,
    };
    for ids in self::sequences(sequences, len, vocab) {
        let t = Tensor::from_vec(shape.clone(), ids);
        let a = crate::interp::run(&f32_model, &[(name.as_str(), t.clone())])?;
        let b = crate::interp::run(&narrow, &[(name.as_str(), t)])?;
        let (a, b) = (
            a[0].to_vec::<f32>().map_err(|e| Error::Invalid(e.0))?,
            b[0].to_vec::<f32>().map_err(|e| Error::Invalid(e.0))?,
        );
        for (ra, rb) in a.chunks_exact(vocab).zip(b.chunks_exact(vocab)) {
            let argmax = |v: &[f32]| (0..v.len()).fold(0, |m, j| if v[j] > v[m] { j } else { m });
            r.positions += 1;
            r.top1_agree += usize::from(argmax(ra) == argmax(rb));
            for (x, y) in ra.iter().zip(rb) {
                r.max_abs_diff = r.max_abs_diff.max((x - y).abs());
                r.max_abs_logit = r.max_abs_logit.max(x.abs());
            }
        }
    }
    Ok(r)
}
