//! Batched steps (`forward_batch`, continuous batching) on every compiled GPT-2 fixture:
//! the rows of several sequences in one call give bit for bit the logits each sequence
//! gets alone through `forward_rows`, whatever else is in the step, including prompts
//! prefilled beside other sequences' one-token steps, and every format's kernels.

use gpt2c_tests::compiled::*;
use gpt2rt::batch::Segment;
use gpt2rt::elem::{Bf16, F16};
use gpt2rt::kv::KvCache;
use gpt2rt::Gpt2Model;

/// Token ids of sequence `s`, `len` of them, below `vocab`.
fn ids(s: usize, len: usize, vocab: usize) -> Vec<i64> {
    (0..len)
        .map(|i| ((i * 379 + s * 7919 + 11) % vocab) as i64)
        .collect()
}

/// Logits of the last row after each call, alone: a prefill of `prefill` ids, then one
/// row per call.
fn alone<M: Gpt2Model>(ids: &[i64], prefill: usize) -> Vec<Vec<f32>> {
    let mut m = M::create();
    m.forward_rows(&ids[..prefill], 0, true).unwrap();
    let mut rows = vec![m.logits_row(prefill - 1).to_vec()];
    for t in prefill..ids.len() {
        m.forward_rows(&ids[t..t + 1], t, true).unwrap();
        rows.push(m.logits_row(t).to_vec());
    }
    rows
}

/// `cache` with every value NaN (a q8 cache's scales), so a row read before it is written
/// shows.
fn poisoned(cache: KvCache) -> KvCache {
    let n = cache.len();
    match cache {
        KvCache::F32(_) => KvCache::F32(vec![f32::NAN; n]),
        KvCache::F16(_) => KvCache::F16(vec![F16(0x7e00); n]),
        KvCache::Bf16(_) => KvCache::Bf16(vec![Bf16(0x7fc0); n]),
        KvCache::Q8 { q, scales, block } => KvCache::Q8 {
            q,
            scales: vec![f32::NAN; scales.len()],
            block,
        },
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Three sequences started at different steps with different prompt lengths, in caches
/// given out of order, against each alone. Returns false when the model cannot batch.
fn check<M: Gpt2Model>(name: &str) -> bool {
    let mut m = M::create();
    if let Err(e) = m.batching() {
        eprintln!("{name}: no batched steps: {e}");
        return false;
    }
    let (ctx, vocab) = (m.context(), m.config().vocab);
    // (prompt length, total length, first step, cache)
    let plan = [
        (5, ctx.min(20), 0, 2),
        (9, ctx.min(16), 0, 0),
        (ctx / 2, ctx, 2, 1),
    ];
    let seqs: Vec<Vec<i64>> = plan
        .iter()
        .enumerate()
        .map(|(s, &(_, len, _, _))| ids(s, len, vocab))
        .collect();
    let want: Vec<Vec<Vec<f32>>> = plan
        .iter()
        .zip(&seqs)
        .map(|(&(p, _, _, _), s)| alone::<M>(s, p))
        .collect();
    let mut caches = vec![poisoned(m.new_cache()); 3];
    let mut done = [0usize; 3]; // rows computed per sequence
    let mut got: Vec<Vec<Vec<f32>>> = vec![Vec::new(); 3];
    for step in 0.. {
        let (mut input, mut segs, mut who) = (Vec::new(), Vec::new(), Vec::new());
        for (s, &(p, len, first, cache)) in plan.iter().enumerate() {
            if step < first || done[s] == len {
                continue;
            }
            let n = if done[s] == 0 { p } else { 1 };
            input.extend_from_slice(&seqs[s][done[s]..done[s] + n]);
            segs.push(Segment {
                cache,
                pos: done[s],
                rows: n,
            });
            who.push(s);
            done[s] += n;
        }
        if segs.is_empty() {
            break;
        }
        m.forward_batch(&input, &segs, &mut caches, true)
            .unwrap_or_else(|e| panic!("{name} step {step}: {e}"));
        for (i, &s) in who.iter().enumerate() {
            got[s].push(m.logits_row(i).to_vec());
        }
    }
    for s in 0..3 {
        assert_eq!(got[s].len(), want[s].len(), "{name} sequence {s}");
        for (t, (g, w)) in got[s].iter().zip(&want[s]).enumerate() {
            assert!(
                same_bits(g, w),
                "{name}: sequence {s} call {t} differs from alone"
            );
        }
    }
    // Every row at once (`last_only` false): two prompts stacked, against full forwards.
    let (a, b) = (ids(3, ctx.min(11), vocab), ids(4, ctx.min(6), vocab));
    let input: Vec<i64> = a.iter().chain(&b).copied().collect();
    let segs = [
        Segment {
            cache: 1,
            pos: 0,
            rows: a.len(),
        },
        Segment {
            cache: 0,
            pos: 0,
            rows: b.len(),
        },
    ];
    m.forward_batch(&input, &segs, &mut caches, false).unwrap();
    let all: Vec<f32> = m.logits()[..input.len() * vocab].to_vec();
    for (off, s) in [(0, &a), (a.len(), &b)] {
        let mut one = M::create();
        one.forward_rows(s, 0, false).unwrap();
        assert!(
            same_bits(
                &all[off * vocab..(off + s.len()) * vocab],
                &one.logits()[..s.len() * vocab]
            ),
            "{name}: all rows of a stacked prompt differ from alone"
        );
    }
    // Bad steps are errors, not panics.
    assert!(m
        .forward_batch(&input, &segs[..1], &mut caches, true)
        .is_err());
    assert!(m
        .forward_batch(
            &[1],
            &[Segment {
                cache: 7,
                pos: 0,
                rows: 1
            }],
            &mut caches,
            true
        )
        .is_err());
    true
}

#[test]
fn batched_steps_equal_each_sequence_alone() {
    let mut ok = Vec::new();
    macro_rules! each {
        ($($m:ident),*) => {
            $(if check::<$m::Model>(stringify!($m)) { ok.push(stringify!($m)); })*
        };
    }
    each!(
        tiny,
        tiny_bf16,
        tiny_f16,
        tiny_q8,
        tiny_q4,
        tiny_kv_f16,
        tiny_kv_bf16,
        tiny_kv_q8,
        wide_kv_q8,
        wide_q8_kv_q8,
        x_hf_eager_cache_kv_f16,
        wide,
        deep,
        static_ctx,
        matmul_add,
        x_pt12_opset17,
        x_hf_eager,
        x_hf_sdpa,
        x_hf_eager_cache,
        x_dynamo,
        x_optimum
    );
    eprintln!("batched: {ok:?}");
    // Every GPT-2 fixture, from every exporter, in every weight and cache format.
    assert_eq!(ok.len(), 21, "some fixtures cannot batch: only {ok:?}");
}
