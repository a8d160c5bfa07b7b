//! Perplexity of a text file under the default model with f32 and with q8 weights, through
//! the library API: `cargo run -p gpt2-examples --example perplexity -- FILE`.

use gpt2_examples::{kjv_f32, kjv_q8};
use gpt2text::{score_text, Gpt2Tokenizer, Runner};

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: perplexity FILE (for example models/heldout-sample.txt)")?;
    let text = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let tokenizer = Gpt2Tokenizer::new()?;
    let f32 = score_text(&mut Runner::new(kjv_f32::Model::new()), &tokenizer, &text)?;
    let q8 = score_text(&mut Runner::new(kjv_q8::Model::new()), &tokenizer, &text)?;
    println!("{path}: {} tokens", f32.tokens);
    println!("f32 weights: perplexity {:.4}", f32.perplexity());
    println!("q8 weights:  perplexity {:.4}", q8.perplexity());
    Ok(())
}
