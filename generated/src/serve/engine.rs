//! The engine: one thread that owns the model (it is not `Sync`) in a
//! [`gpt2text::Batch`] and runs every request's sequences in its continuous batch.
//!
//! The loop: take the jobs that arrived (blocking only when nothing is pending, and then
//! gathering those that come within a few milliseconds), drop the
//! sequences whose receiver is gone (the client disconnected, or its handler died), run one
//! batched step, and send each event to its request. A request that arrives while others
//! decode joins at the next step; its text is what it would be alone (see `Batch`).
//! A step that fails or panics fails the requests in flight, not the server: the engine
//! starts again on a fresh batch.

use super::metrics::Metrics;
use gpt2text::{Batch, Event, Finish, GenerateOptions, Gpt2Tokenizer};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// When the engine was idle and a request arrives, it waits this long for another before
/// the first step (again after each one that comes, `GATHER_MAX` in all): requests sent
/// together then share one prefill step, instead of all but the first waiting a whole step
/// for theirs. It delays a lone request by `GATHER`.
const GATHER: Duration = Duration::from_millis(2);
/// The longest the engine gathers requests before a step.
const GATHER_MAX: Duration = Duration::from_millis(10);

/// One request's sequences, submitted together.
pub struct Job {
    /// Each prompt's token ids and options, in the request's order.
    pub prompts: Vec<(Vec<u32>, GenerateOptions)>,
    /// Where its updates go; dropping the receiver cancels the job at the next step.
    pub reply: UnboundedSender<Update>,
}

/// What happened to one sequence of a job in a step.
#[derive(Debug)]
pub struct Update {
    /// The prompt's index in its job.
    pub index: usize,
    /// Text that became final (possibly empty).
    pub text: String,
    /// Tokens generated so far.
    pub generated: usize,
    /// Set on the sequence's last update: why it ended, or the error that ended it.
    pub end: Option<Result<Finish, String>>,
}

/// Where a sequence's events go.
struct Route {
    reply: UnboundedSender<Update>,
    index: usize,
}

/// Starts the engine thread with `slots` slots; returns the sender for jobs (dropping every
/// clone of it ends the thread once the last sequence finished) and the thread's handle.
pub fn spawn(
    slots: usize,
    tokenizer: Arc<Gpt2Tokenizer>,
    metrics: Arc<Metrics>,
) -> Result<(Sender<Job>, std::thread::JoinHandle<()>), String> {
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handle = std::thread::Builder::new()
        .name("gpt2-engine".into())
        .spawn(move || {
            let batch = match Batch::new(gpt2::Model::new(), slots) {
                Ok(b) => b,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            run(batch, slots, &jobs_rx, &tokenizer, &metrics);
        })
        .map_err(|e| format!("cannot start the engine thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((jobs_tx, handle)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the engine thread died while starting".into()),
    }
}

fn run(
    mut batch: Batch<gpt2::Model>,
    slots: usize,
    jobs: &Receiver<Job>,
    tokenizer: &Gpt2Tokenizer,
    metrics: &Metrics,
) {
    let mut routes: HashMap<usize, Route> = HashMap::new();
    let mut events: Vec<Event> = Vec::new();
    loop {
        if batch.pending() == 0 {
            publish(metrics, &batch, slots);
            match jobs.recv() {
                Ok(job) => submit(&mut batch, &mut routes, job),
                Err(_) => return, // every sender dropped: the server is shutting down
            }
            let until = Instant::now() + GATHER_MAX;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match jobs.recv_timeout(GATHER.min(left)) {
                    Ok(job) => submit(&mut batch, &mut routes, job),
                    Err(_) => break,
                }
            }
        }
        while let Ok(job) = jobs.try_recv() {
            submit(&mut batch, &mut routes, job);
        }
        // Sequences whose client went away free their slot before this step.
        routes.retain(|&id, r| {
            let keep = !r.reply.is_closed();
            if !keep {
                batch.cancel(id);
                metrics.cancelled.fetch_add(1, Relaxed);
            }
            keep
        });
        if batch.pending() == 0 {
            continue;
        }
        publish(metrics, &batch, slots);
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            batch.step(Some(tokenizer), &mut events)
        }));
        let error = match stepped {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(panic) => Some(panic_message(&*panic)),
        };
        if let Some(e) = error {
            eprintln!("error: a batched step failed: {e}; failing the requests in flight");
            for (_, r) in routes.drain() {
                let _ = r.reply.send(Update {
                    index: r.index,
                    text: String::new(),
                    generated: 0,
                    end: Some(Err(format!("generation failed: {e}"))),
                });
            }
            match Batch::new(gpt2::Model::new(), slots) {
                Ok(b) => batch = b,
                Err(e) => {
                    eprintln!("error: cannot start a new batch: {e}; the engine stops");
                    return;
                }
            }
            continue;
        }
        metrics.steps.fetch_add(1, Relaxed);
        for e in events.drain(..) {
            if e.token.is_some() {
                metrics.completion_tokens.fetch_add(1, Relaxed);
            }
            let Some(r) = routes.get(&e.id) else { continue };
            let update = Update {
                index: r.index,
                text: e.text,
                generated: e.generated,
                end: e.finish.map(Ok),
            };
            let gone = r.reply.send(update).is_err();
            if e.finish.is_some() {
                routes.remove(&e.id);
            } else if gone {
                batch.cancel(e.id);
                routes.remove(&e.id);
                metrics.cancelled.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Submits every prompt of `job`; on an error, none of them runs and the job hears why.
fn submit(batch: &mut Batch<gpt2::Model>, routes: &mut HashMap<usize, Route>, job: Job) {
    let mut ids = Vec::with_capacity(job.prompts.len());
    for (index, (prompt, options)) in job.prompts.iter().enumerate() {
        match batch.submit(prompt, options) {
            Ok(id) => ids.push((id, index)),
            Err(e) => {
                for (id, _) in ids {
                    batch.cancel(id);
                }
                let _ = job.reply.send(Update {
                    index,
                    text: String::new(),
                    generated: 0,
                    end: Some(Err(e)),
                });
                return;
            }
        }
    }
    for (id, index) in ids {
        routes.insert(
            id,
            Route {
                reply: job.reply.clone(),
                index,
            },
        );
    }
}

/// Slot use and queue depth after the last step (free slots take waiting sequences at the
/// start of the next one, so a sequence counts as holding a slot as soon as one is free).
fn publish(metrics: &Metrics, batch: &Batch<gpt2::Model>, slots: usize) {
    let pending = batch.pending();
    let busy = pending.min(slots);
    metrics.slots_busy.store(busy, Relaxed);
    metrics.queue_depth.store(pending - busy, Relaxed);
}

/// The message of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".into()
    }
}
