//! `gpt2 serve` as clients see it: each status it answers, streamed and whole completions,
//! a request's text equal to the CLI's whatever else runs, a vanished client's slot freed,
//! slow clients timed out, and SIGTERM draining. Each test starts its own server on a free
//! port (`--port 0`) and waits on what the server reports (its ready line, `/metrics`),
//! never on fixed sleeps.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any awaited condition may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    key: Option<String>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gpt2"))
            .args(["serve", "--port", "0", "--threads", "1"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gpt2 serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        // Reads the log to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no ready line; log: {:?}", log.lock().unwrap()));
        let key = args
            .iter()
            .position(|a| *a == "--api-key")
            .map(|i| args[i + 1].to_string());
        Server {
            child,
            addr,
            log,
            key,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(PATIENCE))
            .build()
            .into()
    }

    /// `GET path`: status and body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut r = Self::agent().get(&self.url(path));
        if let Some(k) = &self.key {
            r = r.header("Authorization", &format!("Bearer {k}"));
        }
        let mut resp = r.call().expect("GET");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().expect("body"))
    }

    /// `POST /v1/completions` with `body`: status, headers we look at, and the body.
    fn complete(&self, body: &str) -> (u16, Option<String>, String) {
        let mut r = Self::agent()
            .post(&self.url("/v1/completions"))
            .header("Content-Type", "application/json");
        if let Some(k) = &self.key {
            r = r.header("Authorization", &format!("Bearer {k}"));
        }
        let mut resp = r.send(body).expect("POST");
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (
            status,
            retry,
            resp.body_mut().read_to_string().expect("body"),
        )
    }

    /// A whole completion's JSON, which must be a 200.
    fn completion(&self, body: Value) -> Value {
        let (status, _, text) = self.complete(&body.to_string());
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("JSON")
    }

    /// The value of metric `name` (without labels).
    fn metric(&self, name: &str) -> f64 {
        let (status, text) = self.get("/metrics");
        assert_eq!(status, 200);
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
    }

    /// Waits until metric `name` is `value`.
    fn wait_metric(&self, name: &str, value: f64) {
        let t = Instant::now();
        loop {
            let v = self.metric(name);
            if v == value {
                return;
            }
            assert!(t.elapsed() < PATIENCE, "{name} stayed {v}, not {value}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok);
    }

    /// Waits for the process to exit; its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code();
            }
            assert!(t.elapsed() < PATIENCE, "the server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn assert_no_panic(&self) {
        let log = self.log.lock().unwrap();
        assert!(
            !log.iter().any(|l| l.contains("panicked")),
            "the server panicked: {log:?}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A streaming request on a raw socket, read event by event.
struct Stream {
    reader: BufReader<TcpStream>,
}

impl Stream {
    fn open(server: &Server, body: Value) -> Stream {
        let body = body.to_string();
        let mut s = TcpStream::connect(&server.addr).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        write!(
            s,
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
        }
        Stream { reader }
    }

    /// The next event's data (`data: ` stripped), across chunked framing; None at the end.
    fn next(&mut self) -> Option<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if let Some(data) = l.strip_prefix("data: ") {
                return Some(data.to_string());
            }
        }
    }

    /// Every remaining event's text for choice `index`, and whether `[DONE]` came.
    fn rest(&mut self, index: u64) -> (String, bool) {
        let mut text = String::new();
        while let Some(d) = self.next() {
            if d == "[DONE]" {
                return (text, true);
            }
            let v: Value = serde_json::from_str(&d).expect("event JSON");
            for c in v["choices"].as_array().expect("choices") {
                if c["index"] == index {
                    text.push_str(c["text"].as_str().expect("text"));
                }
            }
        }
        (text, false)
    }
}

/// What `gpt2 PROMPT --seed S -n N` prints after the prompt.
fn cli_text(prompt: &str, seed: u64, n: usize) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gpt2"))
        .args([prompt, "--seed", &seed.to_string(), "-n", &n.to_string()])
        .output()
        .expect("run gpt2");
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).expect("UTF-8");
    s.strip_prefix(prompt)
        .and_then(|s| s.strip_suffix('\n'))
        .expect("prompt echoed")
        .to_string()
}

/// Long generations that keep slots busy until their client goes away.
fn long_request(seed: u64) -> Value {
    json!({"prompt": "And it came to pass", "max_tokens": 4096, "seed": seed,
           "ignore_eos": true, "stream": true})
}

#[test]
fn a_request_s_text_is_the_cli_s_alone_and_batched() {
    let prompt = "In the beginning God";
    let expected = cli_text(prompt, 42, 24);
    let server = Server::start(&["--slots", "4", "--max-tokens-limit", "5000"]);
    let request = json!({"prompt": prompt, "max_tokens": 24, "seed": 42});
    // Alone.
    let alone = server.completion(request.clone());
    assert_eq!(alone["choices"][0]["text"], expected.as_str());
    assert_eq!(alone["object"], "text_completion");
    assert_eq!(alone["usage"]["prompt_tokens"], 4);
    let n = alone["usage"]["completion_tokens"].as_u64().expect("count");
    assert_eq!(alone["usage"]["total_tokens"], 4 + n);
    assert_eq!(
        alone["choices"][0]["finish_reason"],
        if n == 24 { "length" } else { "stop" }
    );
    // While three long sequences decode, streamed and whole.
    let mut others: Vec<Stream> = (0..3)
        .map(|i| Stream::open(&server, long_request(i)))
        .collect();
    for o in &mut others {
        o.next().expect("a first event");
    }
    server.wait_metric("gpt2_slots_busy", 3.0);
    let batched = server.completion(request.clone());
    assert_eq!(batched["choices"][0]["text"], expected.as_str());
    let mut streamed = Stream::open(
        &server,
        json!({"prompt": prompt, "max_tokens": 24, "seed": 42, "stream": true}),
    );
    let (text, done) = streamed.rest(0);
    assert!(done);
    assert_eq!(text, expected);
    // A list: prompt i uses seed S + i, as `gpt2 generate --prompts` does.
    let list = server
        .completion(json!({"prompt": ["And the LORD said", prompt], "max_tokens": 24, "seed": 41}));
    assert_eq!(list["choices"][1]["text"], expected.as_str());
    assert_eq!(list["choices"][1]["index"], 1);
    assert_eq!(
        list["choices"][0]["text"],
        cli_text("And the LORD said", 41, 24).as_str()
    );
    drop(others);
    server.wait_metric("gpt2_slots_busy", 0.0);
    server.assert_no_panic();
}

#[test]
fn streams_end_with_finish_usage_and_done() {
    let server = Server::start(&[]);
    let stop_free = cli_text("Blessed are", 5, 12);
    let mut s = Stream::open(
        &server,
        json!({"prompt": "Blessed are", "max_tokens": 12, "seed": 5, "stream": true,
               "stream_options": {"include_usage": true}}),
    );
    let mut events = Vec::new();
    while let Some(d) = s.next() {
        events.push(d);
    }
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let parsed: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("JSON"))
        .collect();
    let usage = parsed.last().expect("usage event");
    assert_eq!(usage["choices"], json!([]));
    let u = &usage["usage"];
    let prompt = u["prompt_tokens"].as_u64().expect("prompt tokens");
    let completion = u["completion_tokens"].as_u64().expect("completion tokens");
    assert!(prompt > 0 && completion > 0);
    assert_eq!(u["total_tokens"], prompt + completion);
    let finishes: Vec<&Value> = parsed[..parsed.len() - 1]
        .iter()
        .map(|e| &e["choices"][0]["finish_reason"])
        .collect();
    assert!(finishes[..finishes.len() - 1].iter().all(|f| f.is_null()));
    assert!(!finishes[finishes.len() - 1].is_null());
    let text: String = parsed[..parsed.len() - 1]
        .iter()
        .map(|e| e["choices"][0]["text"].as_str().expect("text"))
        .collect();
    assert_eq!(text, stop_free);
    // A stop string cuts the text before it, finish_reason "stop".
    let cut = stop_free.find(' ').filter(|&i| i > 0).unwrap_or(1);
    let stop = &stop_free[cut..cut + 1];
    let stopped = server
        .completion(json!({"prompt": "Blessed are", "max_tokens": 12, "seed": 5, "stop": stop}));
    let before = &stop_free[..stop_free.find(stop).expect("stop in text")];
    assert_eq!(stopped["choices"][0]["text"], before);
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");
    server.assert_no_panic();
}

#[test]
fn each_status_with_an_openai_error_object() {
    let server = Server::start(&["--max-body", "2000", "--max-tokens-limit", "100"]);
    assert_eq!(server.get("/health"), (200, r#"{"status":"ok"}"#.into()));
    let (status, models) = server.get("/v1/models");
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).expect("JSON");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["object"], "model");
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "gpt2_http_responses_total{code=\"200\"}",
        "gpt2_completion_tokens_total",
        "gpt2_queue_depth",
        "gpt2_slots_busy",
        "gpt2_request_duration_seconds_bucket{le=\"+Inf\"}",
        "gpt2_time_to_first_token_seconds_count",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
    // 400: each bad field named.
    for (body, param) in [
        (r#"{"prompt": "a", "max_tokens": -1}"#, "max_tokens"),
        (r#"{"prompt": "a", "max_tokens": 101}"#, "max_tokens"),
        (r#"{"prompt": "a", "temperature": "hot"}"#, "temperature"),
        (r#"{"prompt": "a", "top_p": 1.5}"#, "top_p"),
        (r#"{"prompt": "a", "n": 2}"#, "n"),
        (r#"{"prompt": "a", "logprobs": 2}"#, "logprobs"),
        (r#"{"prompt": "a", "echo": true}"#, "echo"),
        (r#"{"prompt": "a", "stop": [""]}"#, "stop"),
        (r#"{"prompt": 5}"#, "prompt"),
        (r#"{"prompt": "a", "frobnicate": 1}"#, "frobnicate"),
    ] {
        let (status, _, text) = server.complete(body);
        assert_eq!(status, 400, "{body}: {text}");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["error"]["param"], param, "{body}: {text}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, _, text) = server.complete("{\"prompt\": ");
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("JSON")["error"]["code"],
        "invalid_json"
    );
    // 404 and 405 (with Allow).
    assert_eq!(server.get("/v1/chat/completions").0, 404);
    assert_eq!(server.get("/v1/models/nope").0, 404);
    let mut resp = Server::agent()
        .get(&server.url("/v1/completions"))
        .call()
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(
        resp.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let _ = resp.body_mut().read_to_string();
    // 413, by Content-Length and by what arrives.
    let big = format!(r#"{{"prompt": "{}"}}"#, "a".repeat(3000));
    let (status, _, text) = server.complete(&big);
    assert_eq!(status, 413, "{text}");
    let mut s = TcpStream::connect(&server.addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .expect("send");
    for _ in 0..3 {
        write!(s, "3e8\r\n{}\r\n", "a".repeat(1000)).expect("send");
    }
    let mut head = [0; 12];
    s.read_exact(&mut head).expect("a response");
    assert_eq!(&head, b"HTTP/1.1 413");
    server.assert_no_panic();
}

#[test]
fn a_wrong_or_missing_key_is_401() {
    let mut server = Server::start(&["--api-key", "sesame"]);
    assert_eq!(server.get("/v1/models").0, 200);
    let good = server.completion(json!({"prompt": "a", "max_tokens": 2, "seed": 1}));
    assert!(good["choices"][0]["text"].is_string());
    for key in [None, Some("sesamE"), Some("sesame2")] {
        server.key = key.map(str::to_string);
        let (status, _, text) = server.complete(r#"{"prompt": "a"}"#);
        assert_eq!(status, 401, "{key:?}");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(server.get("/v1/models").0, 401);
    }
    // /health stays open to probes.
    assert_eq!(server.get("/health").0, 200);
}

#[test]
fn a_full_queue_is_503_with_retry_after() {
    let server = Server::start(&["--slots", "1", "--queue", "1", "--max-tokens-limit", "5000"]);
    let mut running = Stream::open(&server, long_request(1));
    running.next().expect("running");
    let queued = Stream::open(&server, long_request(2));
    server.wait_metric("gpt2_queue_depth", 1.0);
    let (status, retry, text) = server.complete(r#"{"prompt": "a", "max_tokens": 1}"#);
    assert_eq!(status, 503, "{text}");
    assert_eq!(retry.as_deref(), Some("1"));
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["error"]["code"], "queue_full");
    // Places come back as clients leave.
    drop(running);
    drop(queued);
    server.wait_metric("gpt2_requests_in_flight", 0.0);
    let ok = server.completion(json!({"prompt": "a", "max_tokens": 1, "seed": 3}));
    assert_eq!(ok["usage"]["completion_tokens"], 1);
    server.assert_no_panic();
}

#[test]
fn a_client_that_disconnects_frees_its_slot() {
    let server = Server::start(&["--slots", "1", "--queue", "0", "--max-tokens-limit", "5000"]);
    let mut s = Stream::open(&server, long_request(9));
    for _ in 0..3 {
        s.next().expect("an event");
    }
    server.wait_metric("gpt2_slots_busy", 1.0);
    drop(s);
    server.wait_metric("gpt2_cancelled_total", 1.0);
    server.wait_metric("gpt2_slots_busy", 0.0);
    server.wait_metric("gpt2_requests_in_flight", 0.0);
    let ok = server.completion(json!({"prompt": "a", "max_tokens": 4, "seed": 3}));
    assert!(ok["choices"][0]["text"].is_string());
    // A client that gives up on a whole (non-streamed) completion frees its slot too.
    let body = json!({"prompt": "a", "max_tokens": 4096, "ignore_eos": true}).to_string();
    let mut s = TcpStream::connect(&server.addr).expect("connect");
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    server.wait_metric("gpt2_slots_busy", 1.0);
    drop(s);
    server.wait_metric("gpt2_cancelled_total", 2.0);
    server.wait_metric("gpt2_slots_busy", 0.0);
    server.wait_metric("gpt2_requests_in_flight", 0.0);
    let ok = server.completion(json!({"prompt": "a", "max_tokens": 4, "seed": 3}));
    assert!(ok["choices"][0]["text"].is_string());
    server.assert_no_panic();
}

#[test]
fn slow_clients_time_out() {
    let server = Server::start(&["--read-timeout", "0.5"]);
    let t = Instant::now();
    // A head that never ends: the connection is closed.
    let mut s = TcpStream::connect(&server.addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.write_all(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    // A body that never arrives: 408.
    let mut s = TcpStream::connect(&server.addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.write_all(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
        .expect("send");
    let mut head = [0; 12];
    s.read_exact(&mut head).expect("a response");
    assert_eq!(&head, b"HTTP/1.1 408");
    assert!(t.elapsed() < Duration::from_secs(10));
    // The server still serves.
    assert_eq!(server.get("/health").0, 200);
    server.assert_no_panic();
}

#[test]
fn sigterm_finishes_what_is_in_flight_then_exits_0() {
    let mut server = Server::start(&["--max-tokens-limit", "5000"]);
    let mut s = Stream::open(
        &server,
        json!({"prompt": "For God so loved", "max_tokens": 1000, "seed": 11, "stream": true,
               "ignore_eos": true, "stream_options": {"include_usage": true}}),
    );
    s.next().expect("a first event");
    server.sigterm();
    let t = Instant::now();
    while TcpStream::connect(&server.addr).is_ok() {
        assert!(t.elapsed() < PATIENCE, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut last = None;
    while let Some(d) = s.next() {
        last = Some(d.clone());
        if d == "[DONE]" {
            break;
        }
        if d.contains("\"usage\"") {
            let v: Value = serde_json::from_str(&d).expect("JSON");
            assert_eq!(v["usage"]["completion_tokens"], 1000);
        }
    }
    assert_eq!(last.as_deref(), Some("[DONE]"), "the stream was cut");
    assert_eq!(server.wait_exit(), Some(0));
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("finishing 1 sequence(s) in flight"), "{log}");
    drop(log);
    server.assert_no_panic();
}
