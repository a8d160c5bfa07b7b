//! A program of your own with a GPT-2 inside: `gpt2-standalone [PROMPT] [SEED]` prints the
//! prompt and streams 48 more tokens, as `gpt2 -n 48 --seed SEED PROMPT` does.

use gpt2text::{GenerateOptions, Generator, Gpt2Tokenizer, Runner, END_OF_TEXT};
use std::io::Write;

// The module build.rs compiled: `kjv::Model`, its weights embedded in this binary.
gpt2rt::include_model!(kjv);

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let prompt = args.next().unwrap_or_default();
    let seed = args.next().map_or(Ok(1), |s| s.parse());
    let seed = seed.map_err(|e| format!("the seed: {e}"))?;

    let tokenizer = Gpt2Tokenizer::new()?;
    let mut ids = tokenizer.encode(&prompt)?;
    if ids.is_empty() {
        ids.push(END_OF_TEXT);
    }
    let mut runner = Runner::new(kjv::Model::new());
    let options = GenerateOptions {
        max_tokens: 48,
        seed,
        ..GenerateOptions::default()
    };
    let mut out = std::io::stdout().lock();
    let mut print = |s: &str| out.write_all(s.as_bytes()).and_then(|_| out.flush());
    print(&prompt).map_err(|e| e.to_string())?;
    for piece in Generator::new(&mut runner, &tokenizer, &ids, &options)? {
        print(&piece?).map_err(|e| e.to_string())?;
    }
    print("\n").map_err(|e| e.to_string())
}
