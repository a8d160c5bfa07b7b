//! The most likely next tokens after a prompt, from the logits, through the library API:
//! `cargo run -p gpt2-examples --example next_tokens -- "And God said"`.

use gpt2_examples::kjv_f32::Model;
use gpt2text::{Gpt2Tokenizer, Runner};

fn main() -> Result<(), String> {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "And God said".into());
    let tokenizer = Gpt2Tokenizer::new()?;
    let ids = tokenizer.encode(&prompt)?;
    let mut runner = Runner::new(Model::new());
    let logits = runner.next_logits(&ids)?;

    // Softmax over the row, then the five largest probabilities.
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let exp: Vec<f64> = logits.iter().map(|&x| ((x - max) as f64).exp()).collect();
    let total: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..exp.len()).collect();
    order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]).then(a.cmp(&b)));
    println!("after {prompt:?} ({} tokens):", ids.len());
    for &t in &order[..5] {
        let text = tokenizer.decode_bytes(&[t as u32])?;
        let text = String::from_utf8_lossy(&text);
        println!("{:>8.4}  {t:>5}  {text:?}", exp[t] / total);
    }
    Ok(())
}
