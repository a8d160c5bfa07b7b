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

/// The windows scoring evaluates over `len` tokens: `(begin, end)` of at most `ctx` tokens,
/// sliding by half a context, the last one ending at `len`.
fn windows(len: usize, ctx: usize) -> impl Iterator<Item = (usize, usize)> {
    let stride = (ctx / 2).max(1);
    (0..)
        .map(move |w| w * stride)
        .map(move |begin| (begin, (begin + ctx).min(len)))
        .take_while(move |&(begin, _)| begin == 0 || begin + ctx - stride < len)
}

/// The running sums of one scored sequence.
#[derive(Clone, Copy)]
struct Tally {
    sum: f64,
    count: usize,
    /// Tokens before this one are scored.
    upto: usize,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            sum: 0.0,
            count: 0,
            upto: 1,
        }
    }

    /// Adds the tokens of window `begin..end` of `ids` not scored yet, from the window's
    /// logits rows (`logits[r·v..]` for token `begin + r`).
    fn add(&mut self, ids: &[u32], begin: usize, end: usize, logits: &[f32], v: usize) {
        for t in self.upto.max(begin + 1)..end {
            let row = &logits[(t - 1 - begin) * v..(t - begin) * v];
            self.sum += nll(row, ids[t] as usize);
            self.count += 1;
        }
        self.upto = end;
    }

    fn score(&self) -> Score {
        Score {
            mean_nll: self.sum / self.count as f64,
            tokens: self.count,
        }
    }
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
    let v = runner.vocab();
    let mut tally = Tally::new();
    for (begin, end) in windows(ids.len(), runner.context()) {
        let logits = runner.eval(&ids[begin..end])?;
        tally.add(ids, begin, end, logits, v);
        progress(Progress {
            scored: tally.count,
            total: ids.len() - 1,
        });
    }
    Ok(tally.score())
}

/// A text as the token ids scoring reads (any bytes: invalid UTF-8 is tokenized byte by
/// byte), as a document: `<|endoftext|>` first, so the first token of the text is scored
/// too. Refuses an empty text.
pub fn document(tokenizer: &Gpt2Tokenizer, text: &[u8]) -> Result<Vec<u32>, String> {
    let mut ids = vec![END_OF_TEXT];
    ids.extend(tokenizer.encode_bytes(text)?);
    if ids.len() < 2 {
        return Err("the text is empty: nothing to score".into());
    }
    Ok(ids)
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
    score_with_progress(runner, &document(tokenizer, text)?, progress)
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
    // Every window, in order: (sequence, begin, end).
    let windows: Vec<(usize, usize, usize)> = docs
        .iter()
        .enumerate()
        .flat_map(|(i, d)| windows(d.len(), ctx).map(move |(b, e)| (i, b, e)))
        .collect();
    let total: usize = docs.iter().map(|d| d.len() - 1).sum();
    let mut tallies = vec![Tally::new(); docs.len()];
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
            caches.push(model.new_cache());
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
            tallies[i].add(&docs[i], begin, end, &logits[row0 * v..], v);
            row0 += end - begin;
        }
        next = k;
        progress(Progress {
            scored: tallies.iter().map(|t| t.count).sum(),
            total,
        });
    }
    Ok(tallies.iter().map(Tally::score).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_slide_by_half_a_context_to_the_end() {
        for (len, ctx) in [
            (2, 4),
            (4, 4),
            (5, 4),
            (9, 4),
            (10, 4),
            (100, 16),
            (7, 1),
            (3, 2),
        ] {
            // The loop `score` ran before the windows had a function of their own.
            let (mut want, mut begin) = (Vec::new(), 0);
            loop {
                let end = (begin + ctx).min(len);
                want.push((begin, end));
                if end == len {
                    break;
                }
                begin += (ctx / 2).max(1);
            }
            let got: Vec<_> = super::windows(len, ctx).collect();
            assert_eq!(got, want, "len {len}, ctx {ctx}");
        }
    }
}
