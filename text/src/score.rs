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

/// Scores several token sequences, each as [`score`] does alone (the same windows, the same
/// sums in the same order, so the same result bit for bit), with windows of different
/// sequences stacked into one batched step of the model (up to a context's worth of rows):
/// short texts then share the weight reads. `progress` is called after each step with the
/// tokens scored in all of them. Needs a model that allows batched steps.
pub fn score_many<M: Gpt2Model>(
    model: &mut M,
    docs: &[Vec<u32>],
    mut progress: impl FnMut(Progress),
) -> Result<Vec<Score>, String> {
    model
        .batching()
        .map_err(|e| format!("this model cannot run sequences together: {e}"))?;
    if let Some(i) = docs.iter().position(|d| d.len() < 2) {
        return Err(format!("sequence {i}: scoring needs at least two tokens"));
    }
    let (ctx, v) = (model.context(), model.config().vocab);
    if let Some((i, t)) = docs
        .iter()
        .enumerate()
        .find_map(|(i, d)| d.iter().find(|&&t| t as usize >= v).map(|&t| (i, t)))
    {
        return Err(format!(
            "sequence {i}: token id {t} is outside the vocabulary [0, {v})"
        ));
    }
    let stride = (ctx / 2).max(1);
    // Every window, in order: (sequence, begin, end).
    let mut windows = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let mut begin = 0;
        loop {
            let end = (begin + ctx).min(d.len());
            windows.push((i, begin, end));
            if end == d.len() {
                break;
            }
            begin += stride;
        }
    }
    let total: usize = docs.iter().map(|d| d.len() - 1).sum();
    let mut sums = vec![(0.0f64, 0usize, 1usize); docs.len()]; // (sum, count, scored_upto)
    let (mut caches, mut ids, mut segments) = (Vec::new(), Vec::new(), Vec::new());
    let mut next = 0;
    while next < windows.len() {
        // As many consecutive windows as fit in one step.
        let (mut rows, mut k) = (0, next);
        while k < windows.len() && rows + windows[k].2 - windows[k].1 <= ctx {
            rows += windows[k].2 - windows[k].1;
            k += 1;
        }
        let step = &windows[next..k];
        while caches.len() < step.len() {
            caches.push(vec![0.0; model.cache_len()]);
        }
        ids.clear();
        segments.clear();
        for (c, &(i, begin, end)) in step.iter().enumerate() {
            ids.extend(docs[i][begin..end].iter().map(|&t| t as i64));
            segments.push(gpt2rt::batch::Segment {
                cache: c,
                pos: 0,
                rows: end - begin,
            });
        }
        model.forward_batch(&ids, &segments, &mut caches, false)?;
        let logits = model.logits();
        let mut row0 = 0;
        for &(i, begin, end) in step {
            let (sum, count, upto) = &mut sums[i];
            let from = (*upto).max(begin + 1);
            for (t, &next) in docs[i][from..end].iter().enumerate() {
                let r = row0 + from + t - 1 - begin;
                *sum += nll(&logits[r * v..(r + 1) * v], next as usize);
                *count += 1;
            }
            *upto = end;
            row0 += end - begin;
        }
        next = k;
        progress(Progress {
            scored: sums.iter().map(|s| s.1).sum(),
            total,
        });
    }
    Ok(sums
        .into_iter()
        .map(|(sum, count, _)| Score {
            mean_nll: sum / count as f64,
            tokens: count,
        })
        .collect())
}
