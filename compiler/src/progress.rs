//! Progress on stderr for the compiler's long stages (reading, hashing, decoding, the
//! passes, codegen, writing the weights): one line redrawn in place, as cargo does.
//!
//! Library code marks stages with `stage` and counts bytes with `advance`; both cost one
//! atomic load while nothing is shown. Only a front end (the `gpt2c` command) turns the
//! display on, with `Progress::start`, and only when stderr is a terminal, so build
//! scripts, pipes and logs stay silent. `GPT2C_PROGRESS=0` switches it off and `=1` forces
//! it on even without a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

static ON: AtomicBool = AtomicBool::new(false);
static DONE: AtomicU64 = AtomicU64::new(0);
static STATE: Mutex<State> = Mutex::new(State {
    name: String::new(),
    total: None,
    since: None,
});

struct State {
    name: String,
    /// Bytes the stage will process, when known.
    total: Option<u64>,
    since: Option<Instant>,
}

/// Width of the bar, in characters.
const BAR: usize = 24;
/// How often the line is redrawn while a stage runs.
const TICK: Duration = Duration::from_millis(100);

/// Starts a stage; `total` is the number of bytes it will `advance` by, if known.
pub fn stage(name: &str, total: Option<u64>) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    if let Ok(mut s) = STATE.lock() {
        s.name = name.to_string();
        s.total = total;
        s.since = Some(Instant::now());
        DONE.store(0, Ordering::Relaxed);
        draw(&s);
    }
}

/// Counts `n` more bytes of the current stage.
pub fn advance(n: u64) {
    if ON.load(Ordering::Relaxed) {
        DONE.fetch_add(n, Ordering::Relaxed);
    }
}

/// Whether a display is on.
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The line for a stage: a bar filled to `done / total`, or a block sweeping back and
/// forth when the total is unknown; then the stage, the bytes and the seconds it has run.
pub fn render(name: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let (bar, detail) = match total {
        Some(t) if t > 0 => {
            let done = done.min(t);
            let fill = (done as u128 * BAR as u128 / t as u128) as usize;
            let mut bar = "=".repeat(fill);
            if fill < BAR {
                bar.push('>');
                bar.push_str(&" ".repeat(BAR - fill - 1));
            }
            let mb = |b: u64| b as f64 / 1e6;
            (bar, format!(" {:.1}/{:.1} MB", mb(done), mb(t)))
        }
        _ => {
            let width = 3;
            let span = BAR - width;
            let step = (secs / TICK.as_secs_f64()) as usize % (2 * span);
            let at = if step < span { step } else { 2 * span - step };
            (
                format!(
                    "{}{}{}",
                    " ".repeat(at),
                    "<=>",
                    " ".repeat(BAR - at - width)
                ),
                String::new(),
            )
        }
    };
    let name: String = name.chars().take(32).collect();
    format!("{:>12} [{bar}] {name}{detail} {secs:.1}s", "gpt2c")
}

fn draw(s: &State) {
    let elapsed = s.since.map_or(Duration::ZERO, |t| t.elapsed());
    let line = render(&s.name, DONE.load(Ordering::Relaxed), s.total, elapsed);
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\r\x1b[2K{line}");
    let _ = e.flush();
}

/// The display, while it lives: a thread redraws the line; dropping it clears the line.
pub struct Progress {
    ticker: Option<(std::thread::JoinHandle<()>, mpsc::Sender<()>)>,
}

impl Progress {
    /// Turns the display on when stderr is a terminal (see the module doc).
    pub fn start() -> Progress {
        let on = match std::env::var("GPT2C_PROGRESS").as_deref() {
            Ok("0") => false,
            Ok("1") => true,
            _ => std::io::stderr().is_terminal(),
        };
        if !on || ON.swap(true, Ordering::SeqCst) {
            return Progress { ticker: None };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TICK) {
                if let Ok(s) = STATE.lock() {
                    if s.since.is_some() {
                        draw(&s);
                    }
                }
            }
        });
        Progress {
            ticker: Some((h, tx)),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((h, tx)) = self.ticker.take() {
            let _ = tx.send(());
            let _ = h.join();
            if let Ok(mut s) = STATE.lock() {
                ON.store(false, Ordering::SeqCst);
                s.since = None;
                let mut e = std::io::stderr().lock();
                let _ = write!(e, "\r\x1b[2K");
                let _ = e.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_with_the_bytes_done() {
        let l = render(
            "writing weights",
            250_000_000,
            Some(500_000_000),
            Duration::from_millis(1500),
        );
        assert_eq!(
            l,
            "       gpt2c [============>           ] writing weights 250.0/500.0 MB 1.5s"
        );
        let full = render("reading", 9, Some(9), Duration::ZERO);
        assert!(full.contains(&format!("[{}]", "=".repeat(BAR))), "{full}");
        // More than the total (a file that grew) stays a full bar.
        assert_eq!(render("reading", 20, Some(9), Duration::ZERO), full);
    }

    #[test]
    fn unknown_totals_sweep_inside_the_bar() {
        for ms in (0..5000).step_by(100) {
            let l = render("decoding", 0, None, Duration::from_millis(ms));
            let bar = &l[l.find('[').unwrap() + 1..l.find(']').unwrap()];
            assert_eq!(bar.chars().count(), BAR, "{l}");
            assert!(bar.contains("<=>"), "{l}");
        }
        let a = render("decoding", 0, None, Duration::from_millis(0));
        let b = render("decoding", 0, None, Duration::from_millis(300));
        assert_ne!(a[..40], b[..40]);
    }

    #[test]
    fn silent_until_started() {
        // No display: stages and byte counts are ignored.
        stage("hashing", Some(10));
        advance(10);
        assert_eq!(DONE.load(Ordering::Relaxed), 0);
    }
}
