//! The server's counters and gauges, shared by the HTTP side and the engine thread as
//! atomics (no lock on the per-token path), rendered for `GET /metrics` in the Prometheus
//! text format (version 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Status codes counted one by one; any other is counted as `other`.
const STATUSES: [u16; 10] = [200, 400, 401, 404, 405, 408, 413, 500, 503, 0];

/// Upper bounds (seconds) of the latency histograms' buckets.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A cumulative histogram of durations with fixed buckets.
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `d`.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn render(&self, o: &mut String, name: &str, help: &str) {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, n) in BOUNDS.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(o, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Everything `/metrics` reports.
pub struct Metrics {
    /// Responses by status code (the index of the code in `STATUSES`; the last is `other`).
    responses: [AtomicU64; STATUSES.len()],
    /// Prompt tokens of the completions accepted.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated (by the engine, including those of requests cancelled later).
    pub completion_tokens: AtomicU64,
    /// Sequences cancelled because their client went away.
    pub cancelled: AtomicU64,
    /// Sequences admitted and not finished (running or waiting), as the HTTP side counts.
    pub admitted: AtomicUsize,
    /// Sequences waiting for a slot, as of the engine's last step.
    pub queue_depth: AtomicUsize,
    /// Slots holding a sequence, as of the engine's last step.
    pub slots_busy: AtomicUsize,
    /// Batched steps the engine ran.
    pub steps: AtomicU64,
    /// Slots in all.
    pub slots: usize,
    /// Completion requests from arrival to their last byte.
    pub latency: Histogram,
    /// Completion requests from arrival to their first generated text.
    pub ttft: Histogram,
}

impl Metrics {
    /// Zeroed metrics for a server of `slots` slots.
    pub fn new(slots: usize) -> Metrics {
        Metrics {
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            admitted: AtomicUsize::new(0),
            queue_depth: AtomicUsize::new(0),
            slots_busy: AtomicUsize::new(0),
            steps: AtomicU64::new(0),
            slots,
            latency: Histogram::new(),
            ttft: Histogram::new(),
        }
    }

    /// Counts a response with `status`.
    pub fn response(&self, status: u16) {
        let i = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.responses[i].fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(4096);
        let _ = writeln!(
            o,
            "# HELP gpt2_http_responses_total HTTP responses by status code.\n# TYPE gpt2_http_responses_total counter"
        );
        for (s, n) in STATUSES.iter().zip(&self.responses) {
            let code = if *s == 0 {
                "other".to_string()
            } else {
                s.to_string()
            };
            let _ = writeln!(
                o,
                "gpt2_http_responses_total{{code=\"{code}\"}} {}",
                n.load(Relaxed)
            );
        }
        let counters = [
            (
                "gpt2_prompt_tokens_total",
                "Prompt tokens of accepted completion requests.",
                self.prompt_tokens.load(Relaxed),
            ),
            (
                "gpt2_completion_tokens_total",
                "Tokens generated.",
                self.completion_tokens.load(Relaxed),
            ),
            (
                "gpt2_cancelled_total",
                "Sequences cancelled because their client went away.",
                self.cancelled.load(Relaxed),
            ),
            (
                "gpt2_steps_total",
                "Batched model steps run.",
                self.steps.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let gauges = [
            (
                "gpt2_requests_in_flight",
                "Sequences admitted and not finished (running or queued).",
                self.admitted.load(Relaxed),
            ),
            (
                "gpt2_queue_depth",
                "Sequences waiting for a slot.",
                self.queue_depth.load(Relaxed),
            ),
            (
                "gpt2_slots_busy",
                "Slots holding a sequence.",
                self.slots_busy.load(Relaxed),
            ),
            ("gpt2_slots", "Slots in all.", self.slots),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        self.latency.render(
            &mut o,
            "gpt2_request_duration_seconds",
            "Completion requests, from arrival to the last byte of the response.",
        );
        self.ttft.render(
            &mut o,
            "gpt2_time_to_first_token_seconds",
            "Completion requests, from arrival to their first generated token.",
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_everything() {
        let m = Metrics::new(4);
        m.latency.observe(Duration::from_millis(3));
        m.latency.observe(Duration::from_millis(70));
        m.latency.observe(Duration::from_secs(1000));
        m.response(200);
        m.response(418);
        let text = m.render();
        assert!(text.contains("gpt2_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("gpt2_request_duration_seconds_bucket{le=\"0.1\"} 2\n"));
        assert!(text.contains("gpt2_request_duration_seconds_bucket{le=\"120\"} 2\n"));
        assert!(text.contains("gpt2_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("gpt2_request_duration_seconds_count 3\n"));
        assert!(text.contains("gpt2_http_responses_total{code=\"200\"} 1\n"));
        assert!(text.contains("gpt2_http_responses_total{code=\"other\"} 1\n"));
        assert!(text.contains("gpt2_slots 4\n"));
    }
}
