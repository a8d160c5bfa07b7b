//! Two models in one binary: the default model compiled with f32 weights and with int8
//! (q8) weights, run side by side in one process on the same prompt.
//!
//! `two-models [PROMPT] [TOKENS]` prints each model's greedy continuation and how far their
//! next-token logits are apart.

use gpt2_examples::{kjv_f32, kjv_q8};
use gpt2rt::Gpt2Model;
use gpt2text::{GenerateOptions, Generator, Gpt2Tokenizer, Runner, SamplerConfig};
use std::process::ExitCode;

/// The greedy continuation of `prompt`, `tokens` long at most.
fn continuation<M: Gpt2Model>(
    runner: &mut Runner<M>,
    tokenizer: &Gpt2Tokenizer,
    prompt: &[u32],
    tokens: usize,
) -> Result<String, String> {
    let options = GenerateOptions {
        max_tokens: tokens,
        sampling: SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        },
        ..GenerateOptions::default()
    };
    Generator::new(runner, tokenizer, prompt, &options)?.collect_text()
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let prompt = args.next().unwrap_or_else(|| "And God said".into());
    let tokens = args.next().map_or(Ok(24), |s| s.parse());
    let tokens = tokens.map_err(|e| format!("the token count: {e}"))?;
    let tokenizer = Gpt2Tokenizer::new()?;
    let ids = tokenizer.encode(&prompt)?;
    if ids.is_empty() {
        return Err("give a non-empty prompt".into());
    }

    let mut f32_runner = Runner::new(kjv_f32::Model::new());
    let mut q8_runner = Runner::new(kjv_q8::Model::new());
    let a = f32_runner.next_logits(&ids)?.to_vec();
    let b = q8_runner.next_logits(&ids)?.to_vec();
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let (top_a, top_b) = (
        gpt2text::sampling::argmax(&a),
        gpt2text::sampling::argmax(&b),
    );

    let text_f32 = continuation(&mut f32_runner, &tokenizer, &ids, tokens)?;
    let text_q8 = continuation(&mut q8_runner, &tokenizer, &ids, tokens)?;
    println!(
        "f32 ({} weight bytes): {prompt}{text_f32}",
        kjv_f32::WEIGHT_BYTES
    );
    println!(
        "q8  ({} weight bytes): {prompt}{text_q8}",
        kjv_q8::WEIGHT_BYTES
    );
    println!("next-token logits: max |f32 - q8| = {max_diff:.4}; top token {top_a} and {top_b}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
