//! Generation: tokens sampled one at a time from a compiled model, as a stream of token ids
//! ([`Tokens`]) or of text pieces ([`Generator`]).
//!
//! Each step samples the token after the sequence so far from the logits of its last row.
//! When the sequence outgrows the context window, the model sees only the most recent half
//! of the window from then on ([`window_start`]). Generation ends at the end token
//! (`<|endoftext|>` by default, which is not part of the output), at a stop string (cut
//! off, not part of the output either) or after `max_tokens` tokens, whichever is first.

use crate::runner::{window_start, Runner};
use crate::sampling::{Sampler, SamplerConfig};
use crate::tokenizer::{check_vocab, Gpt2Tokenizer, StreamDecoder, END_OF_TEXT};
use gpt2rt::Gpt2Model;

/// What to generate and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Temperature, top-k and top-p.
    pub sampling: SamplerConfig,
    /// The sampler's seed: the same seed, options, model and prompt give the same tokens,
    /// on any machine and thread count.
    pub seed: u64,
    /// Stop when this token is sampled (it is not emitted); `None` never stops early.
    pub end_token: Option<u32>,
    /// Stop when the text contains one of these; the text from the stop string on is not
    /// emitted. Only [`Generator`] (text) looks at them.
    pub stop: Vec<String>,
}

impl Default for GenerateOptions {
    /// 64 tokens at temperature 0.8, top-k 40, top-p 0.95, seed 0, stopping at
    /// `<|endoftext|>`: the `gpt2` CLI's defaults (it seeds from the clock).
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 64,
            sampling: SamplerConfig {
                temperature: 0.8,
                top_k: 40,
                top_p: 0.95,
            },
            seed: 0,
            end_token: Some(END_OF_TEXT),
            stop: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The end token was sampled.
    EndToken,
    /// The text reached `stop[i]`.
    StopString(usize),
    /// `max_tokens` were generated.
    MaxTokens,
}

/// One generation's tokens, without the model: the sampler, the prompt and the tokens
/// sampled so far, and the part of them the model sees. [`Tokens`] runs it on a [`Runner`],
/// [`crate::Batch`] on a batched model; the same calls give the same tokens.
pub(crate) struct Sequence {
    sampler: Sampler,
    /// The prompt, then every generated token.
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Where the window the model sees starts in `tokens`.
    start: usize,
    ctx: usize,
    max_tokens: usize,
    end_token: Option<u32>,
    pub(crate) finish: Option<Finish>,
}

impl Sequence {
    /// Checks `prompt` (at least one token, each below `vocab`) and starts after it.
    pub(crate) fn new(
        prompt: &[u32],
        options: &GenerateOptions,
        vocab: usize,
        ctx: usize,
    ) -> Result<Sequence, String> {
        if prompt.is_empty() {
            return Err("the prompt has no tokens (start from <|endoftext|> for none)".into());
        }
        if let Some((i, t)) = prompt
            .iter()
            .enumerate()
            .find(|(_, &t)| t as usize >= vocab)
        {
            return Err(format!(
                "token id {t} at position {i} is outside the vocabulary [0, {vocab})"
            ));
        }
        let mut tokens = Vec::with_capacity(prompt.len() + options.max_tokens.min(1 << 16));
        tokens.extend_from_slice(prompt);
        Ok(Sequence {
            start: window_start(prompt.len(), ctx, 0),
            sampler: Sampler::new(options.sampling, options.seed, vocab),
            prompt_len: prompt.len(),
            tokens,
            ctx,
            max_tokens: options.max_tokens,
            end_token: options.end_token,
            finish: None,
        })
    }

    /// The window whose last row's logits give the next token; `None` once generation has
    /// ended (then `finish` says why).
    pub(crate) fn window(&mut self) -> Option<&[u32]> {
        if self.finish.is_some() {
            return None;
        }
        if self.generated() >= self.max_tokens {
            self.finish = Some(Finish::MaxTokens);
            return None;
        }
        self.start = window_start(self.tokens.len(), self.ctx, self.start);
        Some(&self.tokens[self.start..])
    }

    /// Samples the next token from the logits of the window's last row; `None` when it is
    /// the end token (generation ends).
    pub(crate) fn accept(&mut self, logits: &[f32]) -> Option<u32> {
        let next = self.sampler.sample(logits);
        if Some(next) == self.end_token {
            self.finish = Some(Finish::EndToken);
            return None;
        }
        self.tokens.push(next);
        Some(next)
    }

    pub(crate) fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub(crate) fn generated_tokens(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }

    pub(crate) fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }
}

/// Generated token ids, one step per [`Tokens::step`] (or `Iterator::next`).
pub struct Tokens<'r, M: Gpt2Model> {
    runner: &'r mut Runner<M>,
    seq: Sequence,
}

impl<'r, M: Gpt2Model> Tokens<'r, M> {
    /// Starts generating after `prompt` (at least one token, each below the vocabulary
    /// size). `options.stop` is ignored here: stop strings are text.
    pub fn new(
        runner: &'r mut Runner<M>,
        prompt: &[u32],
        options: &GenerateOptions,
    ) -> Result<Self, String> {
        let seq = Sequence::new(prompt, options, runner.vocab(), runner.context())?;
        Ok(Tokens { runner, seq })
    }

    /// Samples the next token; `None` once generation has ended (see [`Tokens::finish`]).
    pub fn step(&mut self) -> Result<Option<u32>, String> {
        let Some(window) = self.seq.window() else {
            return Ok(None);
        };
        let logits = self.runner.next_logits(window)?;
        Ok(self.seq.accept(logits))
    }

    /// The prompt followed by the tokens generated so far.
    pub fn tokens(&self) -> &[u32] {
        self.seq.tokens()
    }

    /// The tokens generated so far.
    pub fn generated_tokens(&self) -> &[u32] {
        self.seq.generated_tokens()
    }

    /// How many tokens were generated so far.
    pub fn generated(&self) -> usize {
        self.seq.generated()
    }

    /// Why generation ended, once it has.
    pub fn finish(&self) -> Option<Finish> {
        self.seq.finish
    }
}

impl<M: Gpt2Model> Iterator for Tokens<'_, M> {
    type Item = Result<u32, String>;

    /// The next token, or the error that ended generation.
    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

/// Generated text, streamed in pieces: one piece per sampled token (the text that token
/// completed, possibly empty), then one last piece with what was held back. Pieces never
/// split a UTF-8 character (bytes of an incomplete one wait for the token that completes
/// it) and never contain a stop string: text that could be the start of one is held back
/// until it is known not to be.
pub struct Generator<'a, M: Gpt2Model> {
    tokens: Tokens<'a, M>,
    tokenizer: &'a Gpt2Tokenizer,
    text: Text,
}

impl<'a, M: Gpt2Model> Generator<'a, M> {
    /// Starts generating after the token ids `prompt` (encode a text with
    /// [`Gpt2Tokenizer::encode`]; an empty text is `[END_OF_TEXT]`). The model must have
    /// GPT-2's vocabulary.
    pub fn new(
        runner: &'a mut Runner<M>,
        tokenizer: &'a Gpt2Tokenizer,
        prompt: &[u32],
        options: &GenerateOptions,
    ) -> Result<Self, String> {
        check_vocab(runner.vocab())?;
        let text = Text::new(options)?;
        Ok(Generator {
            tokens: Tokens::new(runner, prompt, options)?,
            tokenizer,
            text,
        })
    }

    /// The token stream underneath: the tokens so far and why generation ended.
    pub fn tokens(&self) -> &Tokens<'a, M> {
        &self.tokens
    }

    /// Generates to the end and returns the whole text.
    pub fn collect_text(self) -> Result<String, String> {
        self.collect()
    }

    fn advance(&mut self) -> Result<Option<String>, String> {
        if self.text.done {
            return Ok(None);
        }
        match self.tokens.step()? {
            Some(t) => {
                let (piece, stop) = self.text.push(self.tokenizer, t)?;
                if stop.is_some() {
                    self.tokens.seq.finish = stop;
                }
                Ok(Some(piece))
            }
            None => {
                let last = self.text.end();
                Ok((!last.is_empty()).then_some(last))
            }
        }
    }
}

/// The text side of a generation: decodes tokens into pieces that never split a character
/// and never contain a stop string (see [`Generator`]).
pub(crate) struct Text {
    decoder: StreamDecoder,
    stop: Vec<String>,
    /// Decoded text not emitted yet: a suffix that may begin a stop string.
    held: String,
    /// Set once the last piece was returned (or an error).
    pub(crate) done: bool,
}

impl Text {
    /// Checks the stop strings of `options`.
    pub(crate) fn new(options: &GenerateOptions) -> Result<Text, String> {
        if let Some(i) = options.stop.iter().position(|s| s.is_empty()) {
            return Err(format!("stop string {i} is empty"));
        }
        Ok(Text {
            decoder: StreamDecoder::new(),
            stop: options.stop.clone(),
            held: String::new(),
            done: false,
        })
    }

    /// The piece token `t` completes, and `Some(StopString(i))` when it reached stop string
    /// `i` (the text ends before it; nothing more is emitted).
    pub(crate) fn push(
        &mut self,
        tokenizer: &Gpt2Tokenizer,
        t: u32,
    ) -> Result<(String, Option<Finish>), String> {
        let piece = self.decoder.push(tokenizer, t)?;
        self.held.push_str(&piece);
        Ok(self.release(false))
    }

    /// The last piece, once generation ended: what was held back.
    pub(crate) fn end(&mut self) -> String {
        if self.done {
            return String::new();
        }
        let tail = self.decoder.finish();
        self.held.push_str(&tail);
        let (last, _) = self.release(true);
        self.done = true;
        last
    }

    /// Moves what is final out of `held`: everything before a stop string (and then
    /// ends), or everything but the longest suffix that begins a stop string.
    fn release(&mut self, at_end: bool) -> (String, Option<Finish>) {
        let found = self
            .stop
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.held.find(s.as_str()).map(|p| (p, i)))
            .min();
        if let Some((p, i)) = found {
            self.done = true;
            self.held.truncate(p);
            return (std::mem::take(&mut self.held), Some(Finish::StopString(i)));
        }
        let keep = if at_end {
            self.held.len()
        } else {
            self.held
                .char_indices()
                .map(|(i, _)| i)
                .find(|&i| {
                    let tail = &self.held[i..];
                    self.stop.iter().any(|s| s.starts_with(tail))
                })
                .unwrap_or(self.held.len())
        };
        let rest = self.held.split_off(keep);
        (std::mem::replace(&mut self.held, rest), None)
    }
}

impl<M: Gpt2Model> Iterator for Generator<'_, M> {
    type Item = Result<String, String>;

    /// The next text piece, or the error that ended generation.
    fn next(&mut self) -> Option<Self::Item> {
        let r = self.advance();
        if r.is_err() {
            self.text.done = true;
        }
        r.transpose()
    }
}
