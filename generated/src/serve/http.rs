//! HTTP: hyper's HTTP/1 server on the current-thread tokio runtime. Routing, the API key,
//! body limits and read timeouts, admission into the bounded queue, the responses (whole
//! or streamed as server-sent events) and the per-request log line. Each request is handled
//! in its own task, so a panic there answers 500 and harms nothing else.

use super::api::{self, ApiError, CompletionRequest, Head, Limits, Usage};
use super::engine::{panic_message, Job, Update};
use super::metrics::Metrics;
use bytes::Bytes;
use gpt2text::{Finish, Gpt2Tokenizer, END_OF_TEXT};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// A response body: whole, or a stream of events.
pub type Body = BoxBody<Bytes, Infallible>;

/// What the server was started with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Sequences that run at once.
    pub slots: usize,
    /// Sequences that may wait for a slot; past it requests get 503.
    pub queue: usize,
    /// `Authorization: Bearer KEY` required on every endpoint but `/health`.
    pub api_key: Option<String>,
    /// Bound on reading a request's head, and its body.
    pub read_timeout: Duration,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// The largest `max_tokens` a request may ask for.
    pub max_tokens: usize,
}

/// State every connection shares.
pub struct Shared {
    /// The settings.
    pub settings: Settings,
    /// The counters of `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Encodes prompts (the engine decodes with its own reference to the same one).
    pub tokenizer: Arc<Gpt2Tokenizer>,
    /// The engine's inbox; taken (closed) when the server stops.
    pub jobs: Mutex<Option<Sender<Job>>>,
    /// The model's name in responses and `/v1/models`.
    pub model: String,
    /// When the server started (Unix seconds).
    pub created: u64,
    /// Set once SIGTERM arrived: `/health` says so.
    pub draining: AtomicBool,
    /// Numbers response ids.
    pub next_id: AtomicU64,
}

/// Marks a streamed response: its body logs and counts itself when it ends.
#[derive(Clone, Copy)]
struct Streamed;

/// Serves one request: its own task, so a panic in handling it becomes a 500.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut task = Handler {
        task: tokio::spawn(route(shared.clone(), req, start)),
        done: false,
        method: method.clone(),
        path: path.clone(),
        start,
    };
    let result = (&mut task.task).await;
    task.done = true;
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            let why = if e.is_panic() {
                panic_message(&*e.into_panic())
            } else {
                "cancelled".into()
            };
            eprintln!("error: {method} {path}: the handler failed: {why}");
            error(&ApiError::new(
                500,
                "server_error",
                "internal_error",
                "the server failed to handle this request".into(),
            ))
        }
    };
    if response.extensions().get::<Streamed>().is_none() {
        let status = response.status().as_u16();
        shared.metrics.response(status);
        log_line(&method, &path, status, start, "");
    }
    Ok(response)
}

/// A request's handler task. hyper drops the future awaiting it when the client goes away
/// before the response (it reads the connection's end while a request is in flight); the
/// task is then aborted, which drops its receiver, and the engine cancels its sequences at
/// the next step.
struct Handler {
    task: tokio::task::JoinHandle<Response<Body>>,
    done: bool,
    method: Method,
    path: String,
    start: Instant,
}

impl Drop for Handler {
    fn drop(&mut self) {
        if !self.done {
            self.task.abort();
            log_line(
                &self.method,
                &self.path,
                499,
                self.start,
                " (the client went away before the response)",
            );
        }
    }
}

fn log_line(method: &Method, path: &str, status: u16, start: Instant, note: &str) {
    let ms = start.elapsed().as_secs_f64() * 1e3;
    eprintln!("{method} {path} {status} {ms:.1} ms{note}");
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>, start: Instant) -> Response<Body> {
    let path = req.uri().path();
    let allowed: &str = match path {
        "/health" | "/metrics" | "/v1/models" => "GET, HEAD",
        "/v1/completions" => "POST",
        p if p.starts_with("/v1/models/") => "GET, HEAD",
        _ => {
            return error(&ApiError::new(
                404,
                "invalid_request_error",
                "not_found",
                format!(
                    "no route {path}: this server has POST /v1/completions, GET /v1/models, /health and /metrics"
                ),
            ))
        }
    };
    let method_ok = match *req.method() {
        Method::POST => allowed == "POST",
        Method::GET | Method::HEAD => allowed != "POST",
        _ => false,
    };
    if !method_ok {
        let mut r = error(&ApiError::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!(
                "{} is not allowed on {path} (allowed: {allowed})",
                req.method()
            ),
        ));
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allowed));
        return r;
    }
    if path != "/health" && !authorized(&shared.settings, &req) {
        return error(&ApiError::new(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "a wrong or missing API key: send the header 'Authorization: Bearer KEY'".into(),
        ));
    }
    match path {
        "/health" => {
            if shared.draining.load(Ordering::Relaxed) {
                json(503, r#"{"status":"draining"}"#.into())
            } else {
                json(200, r#"{"status":"ok"}"#.into())
            }
        }
        "/metrics" => {
            let mut r = Response::new(full(shared.metrics.render()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/v1/models" => json(200, api::models(&shared.model, shared.created)),
        "/v1/completions" => completions(shared, req, start).await,
        p => {
            let name = &p["/v1/models/".len()..];
            if name == shared.model {
                json(
                    200,
                    api::model_object(&shared.model, shared.created).to_string(),
                )
            } else {
                error(&ApiError::new(
                    404,
                    "invalid_request_error",
                    "model_not_found",
                    format!("no model '{name}' (this server has '{}')", shared.model),
                ))
            }
        }
    }
}

/// The API key check, in time independent of where the key differs.
fn authorized(settings: &Settings, req: &Request<Incoming>) -> bool {
    let Some(key) = &settings.api_key else {
        return true;
    };
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    let key = key.as_bytes();
    given.len() == key.len() && given.iter().zip(key).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn full(s: String) -> Body {
    Full::new(Bytes::from(s)).boxed()
}

fn json(status: u16, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(e: &ApiError) -> Response<Body> {
    let mut r = json(e.status, e.body());
    match e.status {
        503 => {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        // The rest of the request may still be on the wire: do not read it as a next one.
        408 | 413 => {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    r
}

/// The request body, at most `max_body` bytes, read within the read timeout.
async fn read_body(settings: &Settings, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_big = || {
        ApiError::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is over {} bytes", settings.max_body),
        )
    };
    if req
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n > settings.max_body as u64)
    {
        return Err(too_big());
    }
    let limited = Limited::new(req.into_body(), settings.max_body);
    match tokio::time::timeout(settings.read_timeout, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            408,
            "invalid_request_error",
            "timeout",
            format!(
                "the request body did not arrive within {} s",
                settings.read_timeout.as_secs_f64()
            ),
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_big()),
        Ok(Err(e)) => Err(ApiError::new(
            400,
            "invalid_request_error",
            "bad_body",
            format!("cannot read the request body: {e}"),
        )),
        Ok(Ok(body)) => Ok(body.to_bytes()),
    }
}

/// Sequences admitted and not finished; dropping it gives their places back.
struct Admission {
    metrics: Arc<Metrics>,
    n: usize,
}

impl Admission {
    /// Places for `n` sequences, if running and queued sequences leave that many.
    fn take(metrics: &Arc<Metrics>, settings: &Settings, n: usize) -> Option<Admission> {
        let capacity = settings.slots + settings.queue;
        metrics
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a + n <= capacity).then_some(a + n)
            })
            .ok()
            .map(|_| Admission {
                metrics: metrics.clone(),
                n,
            })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.metrics.admitted.fetch_sub(self.n, Ordering::AcqRel);
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn completions(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    start: Instant,
) -> Response<Body> {
    match start_completion(&shared, req, start).await {
        Ok(r) => r,
        Err(e) => error(&e),
    }
}

async fn start_completion(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    start: Instant,
) -> Result<Response<Body>, ApiError> {
    let settings = &shared.settings;
    let body = read_body(settings, req).await?;
    let limits = Limits {
        max_tokens: settings.max_tokens,
        prompts: settings.slots + settings.queue,
    };
    let request = api::parse_completion(&body, limits, clock_seed)?;
    let mut prompts = Vec::with_capacity(request.prompts.len());
    let mut prompt_tokens = 0;
    for (i, p) in request.prompts.iter().enumerate() {
        let mut ids = shared
            .tokenizer
            .encode(p)
            .map_err(|e| ApiError::field("prompt", format!("prompt {i}: {e}")))?;
        if ids.is_empty() {
            ids.push(END_OF_TEXT);
        }
        prompt_tokens += ids.len();
        prompts.push((ids, request.options_for(i)));
    }
    let n = prompts.len();
    let admission = Admission::take(&shared.metrics, settings, n).ok_or_else(|| {
        ApiError::new(
            503,
            "server_error",
            "queue_full",
            format!(
                "the server is busy ({} slots and {} queued places are taken); retry later",
                settings.slots, settings.queue
            ),
        )
    })?;
    let (reply, updates) = unbounded_channel();
    let sent = match &*shared.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(jobs) => jobs.send(Job { prompts, reply }).is_ok(),
        None => false,
    };
    if !sent {
        return Err(ApiError::new(
            503,
            "server_error",
            "shutting_down",
            "the server is shutting down".into(),
        ));
    }
    shared
        .metrics
        .prompt_tokens
        .fetch_add(prompt_tokens as u64, Ordering::Relaxed);
    let id = format!(
        "cmpl-{:x}{:04x}",
        shared.created,
        shared.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let usage = Usage {
        prompt: prompt_tokens,
        completion: 0,
    };
    if request.stream {
        let stream = Stream {
            updates,
            shared: shared.clone(),
            id,
            n,
            done: 0,
            usage,
            include_usage: request.include_usage,
            first: None,
            finished: false,
            start,
            _admission: admission,
        };
        let mut r = Response::new(stream.boxed());
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r.extensions_mut().insert(Streamed);
        shared.metrics.response(200);
        return Ok(r);
    }
    whole(shared, &request, updates, id, usage, start, admission).await
}

/// A non-streamed completion: waits for every choice, then answers at once.
async fn whole(
    shared: &Arc<Shared>,
    request: &CompletionRequest,
    mut updates: UnboundedReceiver<Update>,
    id: String,
    mut usage: Usage,
    start: Instant,
    admission: Admission,
) -> Result<Response<Body>, ApiError> {
    let n = request.prompts.len();
    let mut choices: Vec<(String, Option<Finish>)> = vec![(String::new(), None); n];
    let mut done = 0;
    let mut first = true;
    while done < n {
        let Some(u) = updates.recv().await else {
            return Err(engine_gone());
        };
        if first && u.generated > 0 {
            first = false;
            shared.metrics.ttft.observe(start.elapsed());
        }
        let c = &mut choices[u.index];
        c.0.push_str(&u.text);
        match u.end {
            None => {}
            Some(Ok(f)) => {
                c.1 = Some(f);
                usage.completion += u.generated;
                done += 1;
            }
            Some(Err(e)) => return Err(ApiError::new(500, "server_error", "generation_failed", e)),
        }
    }
    drop(admission);
    let choices: Vec<(String, Finish)> = choices
        .into_iter()
        .map(|(t, f)| (t, f.unwrap_or(Finish::MaxTokens)))
        .collect();
    let head = Head {
        id: &id,
        created: shared.created,
        model: &shared.model,
    };
    let body = api::completion(&head, &choices, usage);
    shared.metrics.latency.observe(start.elapsed());
    Ok(json(200, body))
}

fn engine_gone() -> ApiError {
    ApiError::new(
        500,
        "server_error",
        "engine_stopped",
        "the engine stopped before this request finished".into(),
    )
}

/// A streamed completion's body: one event per text piece, each choice's last with its
/// `finish_reason`, then usage if asked and `data: [DONE]`. Dropped early (the client went
/// away), it drops the receiver, and the engine cancels its sequences at the next step.
struct Stream {
    updates: UnboundedReceiver<Update>,
    shared: Arc<Shared>,
    id: String,
    n: usize,
    done: usize,
    usage: Usage,
    include_usage: bool,
    first: Option<Instant>,
    finished: bool,
    start: Instant,
    _admission: Admission,
}

impl Stream {
    /// Appends the events of `u` to `out`.
    fn events(&mut self, u: Update, out: &mut String) {
        let head = Head {
            id: &self.id,
            created: self.shared.created,
            model: &self.shared.model,
        };
        match u.end {
            Some(Err(e)) => {
                let e = ApiError::new(500, "server_error", "generation_failed", e);
                out.push_str("data: ");
                out.push_str(&e.body());
                out.push_str("\n\n");
                self.done += 1;
            }
            end => {
                let finish = end.and_then(Result::ok);
                if !u.text.is_empty() || finish.is_some() {
                    if self.first.is_none() && !u.text.is_empty() {
                        let now = Instant::now();
                        self.first = Some(now);
                        self.shared.metrics.ttft.observe(now - self.start);
                    }
                    out.push_str(&api::chunk(&head, u.index, &u.text, finish));
                }
                if finish.is_some() {
                    self.usage.completion += u.generated;
                    self.done += 1;
                }
            }
        }
        if self.done == self.n {
            if self.include_usage {
                out.push_str(&api::usage_chunk(&head, self.usage));
            }
            out.push_str(api::DONE);
            self.finished = true;
        }
    }
}

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        // Everything that is ready goes out in one frame.
        let mut out = String::new();
        while !this.finished {
            match this.updates.poll_recv(cx) {
                Poll::Ready(Some(u)) => this.events(u, &mut out),
                Poll::Ready(None) => {
                    out.push_str("data: ");
                    out.push_str(&engine_gone().body());
                    out.push_str("\n\n");
                    out.push_str(api::DONE);
                    this.finished = true;
                }
                Poll::Pending => break,
            }
        }
        if out.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let note = if self.finished {
            self.shared.metrics.latency.observe(self.start.elapsed());
            " (stream)".to_string()
        } else {
            format!(
                " (stream; the client went away after {} of {} choices)",
                self.done, self.n
            )
        };
        log_line(&Method::POST, "/v1/completions", 200, self.start, &note);
    }
}
