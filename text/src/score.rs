//! Perplexity: how well a model predicts a text, the measure `gpt2 score` prints.

use crate::runner::Runner;
use crate::sampling::nll;
use crate::tokenizer::{check_vocab, Gpt2Tokenizer, END_OF_TEXT};
use gpt2rt::Gpt2Model;

/// The result of scoring: the mean negative log-likelihood per token, in nats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Mean of `-ln p(token | history)` over the scored tokens.
    pub mean_nll: f64,
    /// Tokens scored (every token after the first).
    pub tokens: usize,
}

impl Score {
    /// `exp(mean_nll)`.
    pub fn perplexity(&self) -> f64 {
        self.mean_nll.exp()
    }
}

/// How far scoring has got, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Tokens scored so far.
    pub scored: usize,
    /// Tokens to score in all.
    pub total: usize,
}

/// Scores `ids` with windows of the full context sliding by half a context: every token
/// after the first is scored once, with at least half a context of history once the text
/// is long enough (llama.cpp's perplexity tool scores the same way).
pub fn score<M: Gpt2Model>(runner: &mut Runner<M>, ids: &[u32]) -> Result<Score, String> {
    score_with_progress(runner, ids, |_| {})
}

/// [`score`], calling `progress` after each window (the last call has `scored == total`).
pub fn score_with_progress<M: Gpt2Model>(
    runner: &mut Runner<M>,
    ids: &[u32],
    mut progress: impl FnMut(Progress),
) -> Result<Score, String> {
    if ids.len() < 2 {
        return Err("scoring needs at least two tokens".into());
    }
    let ctx = runner.context();
    let stride = (ctx / 2).max(1);
    let v = runner.vocab();
    let (mut sum, mut count, mut scored_upto, mut begin) = (0.0, 0usize, 1usize, 0usize);
    loop {
        let end = (begin + ctx).min(ids.len());
        let logits = runner.eval(&ids[begin..end])?;
        for t in scored_upto.max(begin + 1)..end {
            let row = &logits[(t - 1 - begin) * v..(t - begin) * v];
            sum += nll(row, ids[t] as usize);
            count += 1;
        }
        scored_upto = end;
        progress(Progress {
            scored: count,
            total: ids.len() - 1,
        });
        if end == ids.len() {
            break;
        }
        begin += stride;
    }
    Ok(Score {
        mean_nll: sum / count as f64,
        tokens: count,
    })
}

/// Scores a text given as bytes (any bytes: invalid UTF-8 is tokenized byte by byte), as
/// a document: `<|endoftext|>` first, so the first token of the text is scored too.
pub fn score_text<M: Gpt2Model>(
    runner: &mut Runner<M>,
    tokenizer: &Gpt2Tokenizer,
    text: &[u8],
) -> Result<Score, String> {
    score_text_with_progress(runner, tokenizer, text, |_| {})
}

/// [`score_text`], calling `progress` after each window.
pub fn score_text_with_progress<M: Gpt2Model>(
    runner: &mut Runner<M>,
    tokenizer: &Gpt2Tokenizer,
    text: &[u8],
    progress: impl FnMut(Progress),
) -> Result<Score, String> {
    check_vocab(runner.vocab())?;
    let mut ids = vec![END_OF_TEXT];
    ids.extend(tokenizer.encode_bytes(text)?);
    if ids.len() < 2 {
        return Err("the text is empty: nothing to score".into());
    }
    score_with_progress(runner, &ids, progress)
}
