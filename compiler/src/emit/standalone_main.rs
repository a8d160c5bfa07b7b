//! Runs one forward pass of the model gpt2c compiled into this crate on the token ids
//! given, and prints the argmax of each row of output 0 (the logits):
//!
//! ```sh
//! cargo run --release -- 464,2068,7586
//! ```

use gpt2_model::{Model, GPT2, INCREMENTAL, INPUTS, OUTPUTS};
use gpt2rt::io::TensorRef;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arg] = &args[..] else {
        return Err("usage: IDS (the token ids of one sequence, e.g. 464,2068,7586)".into());
    };
    let ids: Vec<i64> = arg
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| format!("'{s}' is not a token id"))
        })
        .collect::<Result<_, _>>()?;
    let len = INPUTS[0].numel();
    if ids.len() > len {
        return Err(format!("{} ids given; the context is {len}", ids.len()));
    }
    if let Some(c) = GPT2 {
        if let Some(bad) = ids.iter().find(|&&t| t < 0 || t as usize >= c.vocab) {
            return Err(format!(
                "token id {bad} is outside the vocabulary 0..{}",
                c.vocab
            ));
        }
    }
    let mut model = Model::new();
    if INCREMENTAL {
        // The generated code computes just the rows it is given.
        model.forward_rows(&ids, 0, false)?;
    } else {
        // The whole context, padded after the end: causal rows never see the padding.
        let mut full = ids.clone();
        full.resize(len, *ids.last().unwrap_or(&0));
        model.forward(&full)?;
    }
    let Some(TensorRef::F32(logits)) = model.output(0) else {
        return Err(format!("output 0 ('{}') is not f32", OUTPUTS[0].name));
    };
    let vocab = OUTPUTS[0].shape.last().copied().unwrap_or(1);
    for (row, x) in logits.chunks(vocab).take(ids.len()).enumerate() {
        let (best, v) =
            x.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            );
        println!("row {row}: argmax {best} (logit {v:.4})");
    }
    Ok(())
}
