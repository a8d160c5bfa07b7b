#![warn(missing_docs)]
//! gpt2text: text on top of a GPT-2 compiled by gpt2c: GPT-2's tokenizer, sampling, a
//! generator that streams text, and perplexity scoring. Written once, generic over
//! [`gpt2rt::Gpt2Model`], which every generated GPT-2 module implements, so one program
//! can hold several models. The `gpt2` CLI is a thin layer over this crate.
//!
//! ```no_run
//! # fn demo<M: gpt2rt::Gpt2Model>() -> Result<(), String> {
//! use gpt2text::{GenerateOptions, Generator, Gpt2Tokenizer, Runner};
//! let tokenizer = Gpt2Tokenizer::new()?;
//! let mut runner = Runner::new(M::create());
//! let prompt = tokenizer.encode("In the beginning")?;
//! let options = GenerateOptions { max_tokens: 32, seed: 7, ..GenerateOptions::default() };
//! for piece in Generator::new(&mut runner, &tokenizer, &prompt, &options)? {
//!     print!("{}", piece?);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Layers: `tokenizer` and `sampling` know nothing of models; `runner` drives a model over
//! a window of tokens with its attention cache; `generate` and `score` sit on top, and
//! `batch` runs many generations together on a model that allows batched steps.

pub mod batch;
pub mod generate;
pub mod runner;
pub mod sampling;
pub mod score;
pub mod tokenizer;

pub use batch::{Batch, Event};
pub use generate::{Finish, GenerateOptions, Generator, Tokens};
pub use runner::Runner;
pub use sampling::{Sampler, SamplerConfig};
pub use score::{
    document, score, score_many, score_text, score_text_with_progress, score_with_progress,
    Progress, Score,
};
pub use tokenizer::{Gpt2Tokenizer, StreamDecoder, END_OF_TEXT, VOCAB};
