//! `gpt2 serve`: the model as a local service speaking the OpenAI completions API.
//!
//! Two threads do the work: the engine ([`engine`]) owns the model and runs every request
//! as a sequence of one continuous batch; the HTTP side ([`http`]) is hyper on a
//! current-thread tokio runtime, which accepts connections, parses and checks requests
//! ([`api`]), admits them into the bounded queue and streams the engine's updates back.
//! [`metrics`] holds the counters both sides update. SIGTERM (or SIGINT) stops accepting,
//! lets the requests in flight finish, stops the engine and returns.

mod api;
mod engine;
mod http;
mod metrics;

pub use http::Settings;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Serves on `host:port` until SIGTERM or SIGINT; then waits up to `drain` for the
/// requests in flight, and returns.
pub fn run(host: &str, port: u16, settings: Settings, drain: Duration) -> Result<(), String> {
    let tokenizer = Arc::new(gpt2text::Gpt2Tokenizer::new()?);
    let metrics = Arc::new(metrics::Metrics::new(settings.slots));
    // An address, not a name to resolve: no resolver (getaddrinfo) in a static binary.
    let ip: std::net::IpAddr = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                format!("--host {host}: expected an IP address such as 127.0.0.1, 0.0.0.0 or ::1")
            })?,
    };
    let listener = std::net::TcpListener::bind((ip, port))
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot make the listener non-blocking: {e}"))?;
    let (jobs, engine) = engine::spawn(settings.slots, tokenizer.clone(), metrics.clone())?;
    let model = std::path::Path::new(gpt2::build_info::MODEL_PATH)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("gpt2")
        .to_string();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let shared = Arc::new(http::Shared {
        settings,
        metrics,
        tokenizer,
        jobs: Mutex::new(Some(jobs)),
        model,
        created,
        draining: AtomicBool::new(false),
        next_id: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    let s = &shared.settings;
    eprintln!(
        "gpt2 serve: listening on http://{addr} (model {}, {} slots, queue {}, {} threads{})",
        shared.model,
        s.slots,
        s.queue,
        gpt2rt::threads(),
        if s.api_key.is_some() {
            ", API key required"
        } else {
            ""
        }
    );
    let served = runtime.block_on(serve(listener, shared.clone(), drain));
    // Connections left after the drain deadline go with the runtime.
    drop(runtime);
    shared.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
    if engine.join().is_err() {
        return Err("the engine thread panicked".into());
    }
    eprintln!("gpt2 serve: stopped");
    served
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<http::Shared>,
    drain: Duration,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| format!("cannot register the listener: {e}"))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.settings.read_timeout);
    let why = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Events are small writes that must leave at once.
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let service = hyper::service::service_fn(move |req| {
                        http::handle(shared.clone(), req)
                    });
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        // A client that vanished or timed out: nothing to answer.
                        let _ = conn.await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    eprintln!("gpt2 serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
        }
    };
    drop(listener);
    shared.draining.store(true, Ordering::Relaxed);
    eprintln!(
        "gpt2 serve: {why}: no new connections; finishing {} sequence(s) in flight",
        shared.metrics.admitted.load(Ordering::Relaxed)
    );
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => {
            eprintln!("gpt2 serve: connections still open after {} s; closing them", drain.as_secs_f64());
        }
    }
    Ok(())
}
