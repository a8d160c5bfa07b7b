//! Decoding a token allocates nothing: a counting global allocator watches the steps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_steps_do_not_allocate() {
    if !gpt2::INCREMENTAL {
        return;
    }
    for threads in [1, 2] {
        decode_steps_with(threads);
    }
    batched_decode_steps();
}

fn decode_steps_with(threads: usize) {
    gpt2rt::set_threads(threads);
    let mut runner = gpt2::runner();
    let mut sampler = gpt2text::sampling::Sampler::new(
        gpt2text::sampling::SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
        },
        1,
        runner.vocab(),
    );
    let mut tokens: Vec<u32> = Vec::with_capacity(runner.context());
    tokens.extend([464, 2068, 7586].iter().map(|&t| t % runner.vocab() as u32));
    // Warm up: the first calls may size thread-local scratch space once.
    for _ in 0..2 {
        let t = sampler.sample(runner.next_logits(&tokens).unwrap());
        tokens.push(t);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..20 {
        let t = sampler.sample(runner.next_logits(&tokens).unwrap());
        tokens.push(t);
    }
    let n = ALLOCS.load(Ordering::Relaxed) - before;
    // With more threads, a pool worker may first run an attention task (and size its
    // scratch space, once) after the warm-up: at most one allocation per worker, ever.
    assert!(
        n < threads,
        "20 decode steps on {threads} thread(s) made {n} heap allocations"
    );
}

/// Batched steps of four sequences, one token each (tests in one binary run at once and
/// would count each other's allocations, so `decode_steps_do_not_allocate` calls this).
fn batched_decode_steps() {
    if gpt2::BATCHING.is_err() {
        return;
    }
    use gpt2rt::batch::Segment;
    use gpt2rt::Gpt2Model;
    gpt2rt::set_threads(2);
    let mut model = gpt2::Model::new();
    let vocab = model.config().vocab;
    let mut caches = vec![model.new_cache(); 4];
    // Four sequences, prefilled together (prompts of 3 to 6 tokens).
    let mut ids: Vec<i64> = Vec::with_capacity(64);
    let mut segments: Vec<Segment> = Vec::with_capacity(4);
    for s in 0..4 {
        ids.extend((0..3 + s).map(|i| ((i * 7919 + s * 31 + 13) % vocab) as i64));
        segments.push(Segment {
            cache: s,
            pos: 0,
            rows: 3 + s,
        });
    }
    model
        .forward_batch(&ids, &segments, &mut caches, true)
        .unwrap();
    let mut step = |model: &mut gpt2::Model, ids: &mut Vec<i64>, segments: &mut Vec<Segment>| {
        ids.clear();
        for (i, s) in segments.iter_mut().enumerate() {
            s.pos += s.rows;
            s.rows = 1;
            let row = &model.logits()[i * vocab..(i + 1) * vocab];
            ids.push(gpt2text::sampling::argmax(row) as i64);
        }
        model
            .forward_batch(ids, segments, &mut caches, true)
            .unwrap();
    };
    // Warm up: thread-local scratch space is sized once.
    for _ in 0..2 {
        step(&mut model, &mut ids, &mut segments);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..20 {
        step(&mut model, &mut ids, &mut segments);
    }
    let n = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(
        n < 2,
        "20 batched decode steps of 4 sequences made {n} heap allocations"
    );
}
