//! Runs a compiled model over a window of tokens and hands out logits rows.
//!
//! When the compiler proved the model causal (`INCREMENTAL`), the prompt is prefilled once
//! and every new token costs one row against the attention cache (`forward_rows`).
//! Otherwise each step runs the whole context window and reads the logits row of its last
//! token (the rows after it see only padding, which causal attention keeps from leaking
//! backwards).
//!
//! Window policy, when a sequence outgrows the context: the oldest half of the window is
//! dropped and generation continues on the most recent `n_ctx / 2` tokens.

use gpt2rt::Gpt2Model;

/// Runs a compiled model over a window of tokens and hands out logits rows, reusing the
/// attention cache across calls whose windows extend the previous one.
pub struct Runner<M: Gpt2Model> {
    model: M,
    ctx: usize,
    vocab: usize,
    input: Vec<i64>,
    /// Tokens whose rows are in the attention cache, in order.
    cached: Vec<u32>,
}

impl<M: Gpt2Model> Runner<M> {
    /// A runner on a compiled GPT-2 model.
    pub fn new(model: M) -> Runner<M> {
        let (ctx, vocab) = (model.context(), model.config().vocab);
        Runner {
            model,
            ctx,
            vocab,
            input: vec![0; ctx],
            cached: Vec::with_capacity(ctx),
        }
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, back.
    pub fn into_model(self) -> M {
        self.model
    }

    /// Tokens the model sees at once.
    pub fn context(&self) -> usize {
        self.ctx
    }

    /// Logits per row.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    fn check(&self, n: usize) -> Result<(), String> {
        if n == 0 || n > self.ctx {
            return Err(format!("a window holds 1 to {} tokens, got {n}", self.ctx));
        }
        Ok(())
    }

    /// Evaluates `window` (1..=context tokens); returns all logits rows, `window.len()` of them.
    pub fn eval(&mut self, window: &[u32]) -> Result<&[f32], String> {
        let n = window.len();
        self.check(n)?;
        for (dst, &t) in self.input.iter_mut().zip(window) {
            *dst = t as i64;
        }
        if self.model.incremental() {
            self.model.forward_rows(&self.input[..n], 0, false)?;
            self.cached.clear();
            self.cached.extend_from_slice(window);
        } else {
            let last = window[n - 1] as i64;
            self.input[n..].iter_mut().for_each(|x| *x = last);
            self.model.forward_rows(&self.input, 0, false)?;
        }
        Ok(&self.model.logits()[..n * self.vocab])
    }

    /// Logits of the token after `window`. With the cache, only the rows of `window` that
    /// are not cached yet are computed (all of them after the window slid).
    pub fn next_logits(&mut self, window: &[u32]) -> Result<&[f32], String> {
        let n = window.len();
        let v = self.vocab;
        if !self.model.incremental() {
            return Ok(&self.eval(window)?[(n - 1) * v..n * v]);
        }
        self.check(n)?;
        let p0 = cached_rows(window, &self.cached);
        for (dst, &t) in self.input.iter_mut().zip(&window[p0..]) {
            *dst = t as i64;
        }
        self.model.forward_rows(&self.input[..n - p0], p0, true)?;
        self.cached.truncate(p0);
        self.cached.extend_from_slice(&window[p0..]);
        Ok(self.model.logits_row(n - 1))
    }
}

/// Rows of `window` already in a cache holding the rows of `cached`: all of `cached` when
/// the window extends it, else none (the window slid, or is another sequence). At least the
/// last row is always computed, since its logits are wanted.
pub(crate) fn cached_rows(window: &[u32], cached: &[u32]) -> usize {
    if window.starts_with(cached) && cached.len() < window.len() {
        cached.len()
    } else {
        0
    }
}

/// The part of `tokens` the model sees next: everything, or after the window filled up,
/// the most recent half of it (see the module docs). Returns the start index.
pub fn window_start(len: usize, ctx: usize, current_start: usize) -> usize {
    if len - current_start > ctx {
        len - ctx / 2
    } else {
        current_start
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn window_slides_by_half_when_full() {
        use super::window_start;
        assert_eq!(window_start(10, 16, 0), 0);
        assert_eq!(window_start(16, 16, 0), 0);
        assert_eq!(window_start(17, 16, 0), 9);
        assert_eq!(window_start(24, 16, 9), 9);
        assert_eq!(window_start(26, 16, 9), 18);
    }
}
