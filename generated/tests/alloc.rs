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
