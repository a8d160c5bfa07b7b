//! A persistent pool of worker threads for the kernels' parallel loops.
//!
//! One decode step runs about 70 parallel loops (every matrix-vector product, every
//! attention), each a few hundred microseconds long; spawning threads per loop cost tens of
//! microseconds each and allocated. Workers here live for the whole process: between jobs
//! they spin briefly (the next loop usually follows within microseconds), then sleep on a
//! condition variable.
//!
//! A job is `tasks` calls `f(0)`, …, `f(tasks − 1)`; any thread may run any task, so tasks
//! must write disjoint outputs (the kernels split outputs, never a reduction, which is why
//! results do not depend on the thread count). The caller runs tasks too and returns only
//! when every task has finished, so `f` may borrow from the caller's stack.
//!
//! Bottom layer, beside `cpu`: it depends on nothing in the crate but its thread count.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

type TaskFn = dyn Fn(usize) + Sync;

/// The published job. `f` points at the caller's closure with its lifetime erased; it is
/// only dereferenced for tasks claimed under the job's epoch, all of which finish before
/// `run` returns (see `run`).
#[derive(Clone, Copy)]
struct Job {
    f: *const TaskFn,
    tasks: usize,
}

// SAFETY: `Job` is a pointer to a `Sync` closure; it is shared only while the closure is
// alive (the publishing `run` call waits for every claimed task before returning).
unsafe impl Send for Job {}

struct Shared {
    /// The current job and the count of sleeping workers, under one lock so that a worker
    /// going to sleep cannot miss a wake-up.
    slot: Mutex<Slot>,
    wake: Condvar,
    /// `epoch << 32 | next task`: a worker claims task `next` of the job it read only if
    /// the epoch is still that job's, so a late worker never runs a task of a newer job
    /// with an older closure.
    claim: AtomicU64,
    /// Tasks of the current job that have finished.
    done: AtomicUsize,
    /// A task panicked (the caller re-raises it).
    panicked: AtomicBool,
}

struct Slot {
    epoch: u32,
    job: Option<Job>,
    sleepers: usize,
}

struct Pool {
    shared: &'static Shared,
    workers: Mutex<usize>,
    /// One job at a time: callers from different threads take turns.
    busy: Mutex<()>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        shared: Box::leak(Box::new(Shared {
            slot: Mutex::new(Slot {
                epoch: 0,
                job: None,
                sleepers: 0,
            }),
            wake: Condvar::new(),
            claim: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        })),
        workers: Mutex::new(0),
        busy: Mutex::new(()),
    })
}

/// Runs `f(i)` for every `i < tasks` on up to `crate::threads()` threads (this one
/// included) and returns when all have finished.
pub fn run(tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    let t = crate::threads().min(tasks);
    if t <= 1 {
        (0..tasks).for_each(f);
        return;
    }
    let pool = pool();
    pool.ensure_workers(t - 1);
    // A nested or concurrent call runs inline rather than waiting for the pool.
    let Ok(_turn) = pool.busy.try_lock() else {
        (0..tasks).for_each(f);
        return;
    };
    let shared = pool.shared;
    // SAFETY: only the lifetime is erased. Every dereference of `f` happens in a task
    // claimed under this epoch, and this function does not return before `done` counts all
    // `tasks` of them, so `f` outlives every use.
    let f_static: *const TaskFn =
        unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static TaskFn>(f) };
    let epoch;
    {
        let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.epoch = slot.epoch.wrapping_add(1);
        epoch = slot.epoch;
        slot.job = Some(Job { f: f_static, tasks });
        shared.done.store(0, Ordering::Relaxed);
        shared.claim.store((epoch as u64) << 32, Ordering::Release);
        if slot.sleepers > 0 {
            shared.wake.notify_all();
        }
    }
    work(shared, epoch, f, tasks);
    // Wait for the tasks other threads claimed.
    let mut spins = 0u32;
    while shared.done.load(Ordering::Acquire) < tasks {
        spins += 1;
        if spins < 1 << 16 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    shared.slot.lock().unwrap_or_else(|e| e.into_inner()).job = None;
    if shared.panicked.swap(false, Ordering::AcqRel) {
        panic!("a kernel task panicked on a worker thread");
    }
}

/// Claims and runs tasks of job `epoch` until none are left.
fn work(shared: &Shared, epoch: u32, f: &(dyn Fn(usize) + Sync + '_), tasks: usize) {
    loop {
        let cur = shared.claim.load(Ordering::Acquire);
        if (cur >> 32) as u32 != epoch || (cur as u32 as usize) >= tasks {
            return;
        }
        if shared
            .claim
            .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        let i = cur as u32 as usize;
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i))).is_err() {
            shared.panicked.store(true, Ordering::Release);
        }
        shared.done.fetch_add(1, Ordering::AcqRel);
    }
}

impl Pool {
    fn ensure_workers(&self, n: usize) {
        let mut have = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        while *have < n {
            let shared = self.shared;
            let spawned = std::thread::Builder::new()
                .name(format!("gpt2rt-{}", *have + 1))
                .spawn(move || worker(shared));
            if spawned.is_err() {
                // No more threads: the caller runs whatever the existing workers don't.
                break;
            }
            *have += 1;
        }
    }
}

fn worker(shared: &'static Shared) {
    let mut seen = 0u32;
    loop {
        // Spin until a new epoch appears, then sleep.
        let start = Instant::now();
        let mut spins = 0u32;
        while (shared.claim.load(Ordering::Acquire) >> 32) as u32 == seen {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && start.elapsed() > SPIN {
                let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
                slot.sleepers += 1;
                while slot.epoch == seen {
                    slot = shared.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
                }
                slot.sleepers -= 1;
                break;
            }
            std::hint::spin_loop();
        }
        let (epoch, job) = {
            let slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            (slot.epoch, slot.job)
        };
        seen = epoch;
        if let Some(job) = job {
            // SAFETY: `job.f` is alive while any task of its epoch can still be claimed
            // (`run` waits for all of them), and `work` claims only tasks of `epoch`, the
            // epoch `job` was published under (both read under the same lock).
            let f = unsafe { &*job.f };
            work(shared, epoch, f, job.tasks);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_task_runs_once_across_many_jobs() {
        crate::set_threads(2);
        for tasks in [0usize, 1, 2, 3, 7, 64] {
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                super::run(tasks, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn a_panicking_task_is_reported_not_hung() {
        crate::set_threads(2);
        let r = std::panic::catch_unwind(|| {
            super::run(4, &|i| {
                if i == 3 {
                    panic!("task 3");
                }
            })
        });
        assert!(r.is_err());
        // The pool still works afterwards.
        let n = AtomicUsize::new(0);
        super::run(4, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }
}
