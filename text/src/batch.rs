//! Many generations on one model at once (continuous batching): sequences are submitted at
//! any time, each takes a free slot (its own attention cache), and every [`Batch::step`]
//! runs one batched call of the model over the new rows of all of them: a prompt's rows
//! when it starts, one row per token after that. One pass over the weights then serves
//! every sequence, so N streams cost little more than one.
//!
//! A sequence's tokens and text are exactly what [`crate::Generator`] gives alone with the
//! same prompt and options: each sequence keeps its own sampler, window and stop strings,
//! the model computes every row the same way whatever else is in the step, and a prompt is
//! never split across steps (a step holds at most a context's worth of rows; a segment that
//! does not fit waits for the next step).

use crate::generate::{Finish, GenerateOptions, Sequence, Text};
use crate::tokenizer::{check_vocab, Gpt2Tokenizer};
use gpt2rt::batch::Segment;
use gpt2rt::Gpt2Model;
use std::collections::VecDeque;

/// What one sequence did in a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The sequence, as [`Batch::submit`] numbered it.
    pub id: usize,
    /// The token sampled, if one was (not the end token).
    pub token: Option<u32>,
    /// The text that became final: the token's piece (see [`crate::Generator`]), and the
    /// held-back rest when the sequence ends.
    pub text: String,
    /// Set when the sequence ended, with why; its slot is free again.
    pub finish: Option<Finish>,
    /// Tokens generated so far.
    pub generated: usize,
}

struct Active {
    id: usize,
    seq: Sequence,
    text: Text,
    /// Tokens whose rows are in the slot's cache, in order.
    cached: Vec<u32>,
}

/// Sequences generated together on one model; see the module docs.
pub struct Batch<M: Gpt2Model> {
    model: M,
    ctx: usize,
    vocab: usize,
    /// One attention cache per slot, allocated when the slot is first used.
    caches: Vec<gpt2rt::kv::KvCache>,
    slots: Vec<Option<Active>>,
    waiting: VecDeque<Active>,
    next_id: usize,
    /// The slot the next step considers first (turns rotate, so no slot waits forever).
    turn: usize,
    // Reused by every step.
    ids: Vec<i64>,
    segments: Vec<Segment>,
    owners: Vec<usize>,
}

impl<M: Gpt2Model> Batch<M> {
    /// A batch of up to `slots` sequences at once on `model`, which must allow batched steps
    /// (`Gpt2Model::batching`).
    pub fn new(model: M, slots: usize) -> Result<Batch<M>, String> {
        model
            .batching()
            .map_err(|e| format!("this model cannot run sequences together: {e}"))?;
        if slots == 0 {
            return Err("a batch needs at least one slot".into());
        }
        let (ctx, vocab) = (model.context(), model.config().vocab);
        Ok(Batch {
            model,
            ctx,
            vocab,
            caches: Vec::new(),
            slots: (0..slots).map(|_| None).collect(),
            waiting: VecDeque::new(),
            next_id: 0,
            turn: 0,
            ids: Vec::with_capacity(ctx),
            segments: Vec::with_capacity(slots),
            owners: Vec::with_capacity(slots),
        })
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// How many sequences run at once at most.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Sequences submitted and not finished (running or waiting for a slot).
    pub fn pending(&self) -> usize {
        self.waiting.len() + self.slots.iter().flatten().count()
    }

    /// Queues a generation after the token ids `prompt` with `options`, as
    /// [`crate::Generator::new`] would run it; returns its id (0, 1, 2, ... in submission
    /// order). It starts at the first step with a free slot.
    pub fn submit(&mut self, prompt: &[u32], options: &GenerateOptions) -> Result<usize, String> {
        let text = Text::new(options)?;
        let seq = Sequence::new(prompt, options, self.vocab, self.ctx)?;
        let id = self.next_id;
        self.next_id += 1;
        self.waiting.push_back(Active {
            id,
            seq,
            text,
            cached: Vec::new(),
        });
        Ok(id)
    }

    /// Drops sequence `id` (running or waiting); false if there is none.
    pub fn cancel(&mut self, id: usize) -> bool {
        if let Some(i) = self.waiting.iter().position(|a| a.id == id) {
            self.waiting.remove(i);
            return true;
        }
        match self
            .slots
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|a| a.id == id))
        {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }

    /// Runs one step: every running sequence gets its next token (and waiting ones take free
    /// slots first). Appends what happened to `events` (cleared first): one event per
    /// sequence that sampled or ended. Returns false when nothing was pending. Text and stop
    /// strings need the `tokenizer` (and GPT-2's vocabulary); without it events carry
    /// tokens only and stop strings are not looked for.
    pub fn step(
        &mut self,
        tokenizer: Option<&Gpt2Tokenizer>,
        events: &mut Vec<Event>,
    ) -> Result<bool, String> {
        events.clear();
        if tokenizer.is_some() {
            check_vocab(self.vocab)?;
        }
        for slot in self.slots.iter_mut().filter(|s| s.is_none()) {
            match self.waiting.pop_front() {
                Some(a) => *slot = Some(a),
                None => break,
            }
        }
        if self.caches.len() < self.slots.len() {
            let used = self
                .slots
                .iter()
                .rposition(Option::is_some)
                .map_or(0, |i| i + 1);
            while self.caches.len() < used {
                self.caches.push(self.model.new_cache());
            }
        }
        self.ids.clear();
        self.segments.clear();
        self.owners.clear();
        let n_slots = self.slots.len();
        let mut rows = 0;
        for k in 0..n_slots {
            let s = (self.turn + k) % n_slots;
            let Some(a) = &mut self.slots[s] else {
                continue;
            };
            let Some(window) = a.seq.window() else {
                // Ended before this step (its last token reached `max_tokens`).
                events.push(finished(a, a.seq.finish));
                self.slots[s] = None;
                continue;
            };
            // Only the rows the cache lacks, as `Runner::next_logits` computes them.
            let n = window.len();
            let p0 = crate::runner::cached_rows(window, &a.cached);
            if rows + n - p0 > self.ctx {
                continue; // it waits for the next step, whole
            }
            rows += n - p0;
            self.ids.extend(window[p0..].iter().map(|&t| t as i64));
            a.cached.truncate(p0);
            a.cached.extend_from_slice(&window[p0..]);
            self.segments.push(Segment {
                cache: s,
                pos: p0,
                rows: n - p0,
            });
            self.owners.push(s);
        }
        self.turn = (self.turn + 1) % n_slots;
        if self.segments.is_empty() {
            return Ok(!events.is_empty() || self.pending() > 0);
        }
        self.model
            .forward_batch(&self.ids, &self.segments, &mut self.caches, true)?;
        for (i, &s) in self.owners.iter().enumerate() {
            let logits = &self.model.logits()[i * self.vocab..(i + 1) * self.vocab];
            let a = self.slots[s].as_mut().expect("a running sequence");
            match a.seq.accept(logits) {
                Some(t) => {
                    let (piece, stop) = match tokenizer {
                        Some(tok) => a.text.push(tok, t)?,
                        None => (String::new(), None),
                    };
                    let mut e = Event {
                        id: a.id,
                        token: Some(t),
                        text: piece,
                        finish: None,
                        generated: a.seq.generated(),
                    };
                    if stop.is_some() {
                        a.seq.finish = stop;
                    }
                    // Ended: at a stop string, or with its last allowed token.
                    if a.seq.window().is_none() {
                        e.text.push_str(&a.text.end());
                        e.finish = a.seq.finish;
                        self.slots[s] = None;
                    }
                    events.push(e);
                }
                None => {
                    events.push(finished(a, Some(Finish::EndToken)));
                    self.slots[s] = None;
                }
            }
        }
        Ok(true)
    }
}

/// The last event of a sequence that ended with `finish`.
fn finished(a: &mut Active, finish: Option<Finish>) -> Event {
    Event {
        id: a.id,
        token: None,
        text: a.text.end(),
        finish,
        generated: a.seq.generated(),
    }
}
