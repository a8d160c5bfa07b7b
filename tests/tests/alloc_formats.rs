//! Decoding through the bf16, int8 and 4-bit kernels allocates nothing once warm: their
//! rounded inputs live in scratch space sized once per thread (`gpt2rt::bf16`, `gpt2rt::q8`,
//! `gpt2rt::q4`).
//!
//! Runs without the libtest harness (`harness = false`): the counter sees every thread of
//! the process, and libtest's own threads allocate when they please.

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

/// 24 single-row steps after a 5-row prompt, the last row's logits only.
macro_rules! steps_do_not_allocate {
    ($m:ident) => {{
        use gpt2c_tests::compiled::$m as m;
        for threads in [1, 2] {
            gpt2rt::set_threads(threads);
            let mut model = m::Model::new();
            model.forward_rows(&[1, 2, 3, 4, 5], 0, true).unwrap();
            model.forward_rows(&[6], 5, true).unwrap();
            let before = ALLOCS.load(Ordering::Relaxed);
            for p in 6..30 {
                model.forward_rows(&[p as i64 % 7], p, true).unwrap();
            }
            let n = ALLOCS.load(Ordering::Relaxed) - before;
            // A pool worker may size its own scratch space once, after the warm-up.
            assert!(
                n < threads,
                "24 {} steps on {threads} thread(s): {n} allocations",
                stringify!($m)
            );
        }
    }};
}

fn main() {
    steps_do_not_allocate!(tiny_q8);
    steps_do_not_allocate!(tiny_q4);
    steps_do_not_allocate!(tiny_bf16);
    // Narrow attention caches: rows rounded into the cache and widened from it each step.
    steps_do_not_allocate!(tiny_kv_f16);
    steps_do_not_allocate!(tiny_kv_bf16);
    steps_do_not_allocate!(tiny_kv_q8);
    steps_do_not_allocate!(wide_q8_kv_q8);
    println!("narrow_format_decode_steps_do_not_allocate: 1 passed, 0 failed");
}
