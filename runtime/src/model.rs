//! The interface every generated GPT-2 module implements (`gpt2c` emits the `impl` for a
//! graph it recognised as a GPT-2 LM head), so code that handles text is written once,
//! generic over the compiled model, and one program may hold several models.

use crate::batch::Segment;
use crate::io::Gpt2Config;
use crate::kv::{KvCache, KvFormat};

/// A compiled GPT-2 LM head: token ids in, logits out, with the attention cache the
/// compiler derived when it proved the graph causal.
pub trait Gpt2Model {
    /// A model with its weights viewed in place in the binary and a zeroed arena.
    fn create() -> Self
    where
        Self: Sized;

    /// Layers, heads, width, vocabulary and context, read from the graph.
    fn config(&self) -> Gpt2Config;

    /// Tokens one sequence holds: the length the code was specialized to.
    fn context(&self) -> usize;

    /// Whether rows may run a few at a time against the attention cache (prefill, then
    /// one-token steps). Otherwise every call computes the whole context.
    fn incremental(&self) -> bool;

    /// Computes rows `p0..p0 + ids.len()` of the sequence, reading the cached rows
    /// `0..p0` of earlier calls; with `last_only`, the logits of the last row alone. A model
    /// that is not incremental takes only `p0 = 0` with `context()` ids.
    fn forward_rows(&mut self, ids: &[i64], p0: usize, last_only: bool) -> Result<(), String>;

    /// The logits `[context, vocab]` (row r at `r·vocab`); the rows of the last call are
    /// valid (its last row only, with `last_only`).
    fn logits(&self) -> &[f32];

    /// Row `row` of `logits`.
    fn logits_row(&self, row: usize) -> &[f32] {
        let v = self.config().vocab;
        &self.logits()[row * v..(row + 1) * v]
    }

    /// Elements of one sequence's attention cache in `forward_batch`; 0 when the model
    /// cannot run sequences together (see `batching`).
    fn cache_len(&self) -> usize {
        0
    }

    /// How the attention cache stores its values (`GPT2_KV`).
    fn kv_format(&self) -> KvFormat {
        KvFormat::F32
    }

    /// Values per scale of a q8 attention cache (`kv::q8_block` of the head size).
    fn kv_block(&self) -> usize {
        1
    }

    /// An empty attention cache for one sequence of `forward_batch`: `cache_len` values in
    /// the model's `kv_format`.
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.kv_format(), self.cache_len(), self.kv_block())
    }

    /// Whether rows of several sequences can run in one step, and why not when they
    /// cannot: what the compiler found.
    fn batching(&self) -> Result<(), String> {
        Err("this model does not implement batched steps".into())
    }

    /// One step over several sequences: the rows of each segment (their ids stacked in
    /// order in `ids`) are computed against `caches[segment.cache]`, which holds that
    /// sequence's rows `0..segment.pos` and receives the new ones. Afterwards `logits` row
    /// `i` is the last row of segment `i` with `last_only`, else row `r` is row `r` of the
    /// stack. A sequence's results do not depend on what else is in the step. The default
    /// sequence of `forward_rows` must start again from row 0 after a batched step.
    fn forward_batch(
        &mut self,
        ids: &[i64],
        segments: &[Segment],
        caches: &mut [KvCache],
        last_only: bool,
    ) -> Result<(), String> {
        let _ = (ids, segments, caches, last_only);
        Err(self.batching().err().unwrap_or_default())
    }

    /// Forgets the sequence. Generated models keep no state but the cached rows, which the
    /// next call from row 0 overwrites, so this is free.
    fn reset(&mut self) {}
}
