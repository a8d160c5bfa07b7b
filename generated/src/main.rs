//! `gpt2`: the compiled model as a command-line tool.

use clap::{Args, Parser, Subcommand};
use gpt2::{build_info, GPT2, INPUTS, OUTPUTS, WEIGHT_BYTES};
use gpt2text::{
    score_text_with_progress, GenerateOptions, Generator, Gpt2Tokenizer, SamplerConfig, Tokens,
    END_OF_TEXT, VOCAB,
};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod serve;

/// `writeln!` into a String (the report is printed at once; see `emit`).
macro_rules! outln {
    ($o:expr, $($t:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($t)*);
    }};
}

const ABOUT: &str = "GPT-2 compiled to native code by gpt2c, with the model embedded.

`gpt2 \"prompt\"` is `gpt2 generate \"prompt\"`: it prints the prompt, then streams the
continuation. When the text outgrows the model's context window, the oldest half of the
window is dropped and generation continues on the most recent half.";

#[derive(Parser)]
#[command(name = "gpt2", version, about = ABOUT, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    generate: GenerateArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate text from a prompt (the default command).
    Generate(GenerateArgs),
    /// Run the full forward pass on token ids; write the logits [L, vocab] as raw
    /// little-endian f32 (row-major), exactly the ONNX model's output 0.
    ///
    /// `--ids` given B times (rows of the same length L) is the batch [B, 1, L]: the file
    /// holds the logits [B, L, vocab], the rows' logits one after the other.
    Logits {
        #[command(flatten)]
        ids: IdRows,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        threads: Threads,
    },
    /// Print the perplexity of text files (`-` reads stdin) under the model; several files
    /// are scored together, each as alone, then all of them.
    Score {
        /// The text files, or `-` for stdin. Any bytes are valid.
        #[arg(required = true, num_args = 1.., value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        threads: Threads,
    },
    /// Print the model's dimensions, weight format and bytes, and where its source is.
    Info,
    /// Measure prefill and decode speed and the full forward; the last line is JSON.
    Bench(BenchArgs),
    /// Serve the OpenAI completions API over HTTP (POST /v1/completions, streaming or not;
    /// GET /v1/models, /health, /metrics); every request runs in one continuous batch.
    ///
    /// A request's fields default to the CLI's (64 tokens, temperature 0.8, top-k 40,
    /// top-p 0.95, a seed from the clock), so with the same seed and options its text is
    /// what `gpt2 "prompt" --seed S` prints after the prompt. SIGTERM stops accepting,
    /// finishes the requests in flight and exits 0.
    Serve(ServeArgs),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// IP address to listen on (loopback by default; 0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one (the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Sequences decoded together (each holds an attention cache).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    slots: u32,
    /// Sequences that may wait for a slot; past that, requests get 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=65536))]
    queue: u32,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health.
    #[arg(long, value_name = "KEY", value_parser = non_empty_key)]
    api_key: Option<String>,
    /// Seconds a client has to send a request's head, and then its body (else 408 or a
    /// closed connection).
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    read_timeout: f64,
    /// The largest request body in bytes (else 413).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_body: usize,
    /// The largest `max_tokens` one request may ask for (else 400).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_tokens_limit: usize,
    /// On SIGTERM, seconds to wait for the requests in flight before closing them.
    #[arg(long, value_name = "SECS", default_value_t = 300.0, value_parser = positive_secs)]
    drain_timeout: f64,
    #[command(flatten)]
    threads: Threads,
}

fn non_empty_key(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("the API key cannot be empty".into())
    } else {
        Ok(s.to_string())
    }
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 1e6 => Ok(x),
        _ => Err(format!("expected seconds > 0, got '{s}'")),
    }
}

/// `gpt2 serve`.
fn serve_command(args: &ServeArgs) -> Result<(), String> {
    if !gpt2_vocab() {
        return Err(format!(
            "serve needs GPT-2's vocabulary of {VOCAB} tokens (this model's has {})",
            GPT2.map_or(0, |c| c.vocab)
        ));
    }
    if let Err(why) = gpt2::BATCHING {
        return Err(format!(
            "serve runs requests together, and this model cannot batch ({why})"
        ));
    }
    let settings = serve::Settings {
        slots: args.slots as usize,
        queue: args.queue as usize,
        api_key: args.api_key.clone(),
        read_timeout: Duration::from_secs_f64(args.read_timeout),
        max_body: args.max_body,
        max_tokens: args.max_tokens_limit,
    };
    serve::run(
        &args.host,
        args.port,
        settings,
        Duration::from_secs_f64(args.drain_timeout),
    )
}

/// Sequences `--prompts` runs at once at most, unless `--batch` says otherwise.
const MAX_SLOTS: usize = 64;

/// The `--ids` of `gpt2 logits`: one row of token ids per occurrence of the flag.
///
/// A hand-written `Args` because clap's derive cannot yet group a flag's values by
/// occurrence (`Vec<Vec<T>>` needs its `unstable-v5` feature); the argument is the one the
/// derive writes for `Vec<i64>`, so parsing and its errors are unchanged.
struct IdRows(Vec<Vec<i64>>);

impl clap::FromArgMatches for IdRows {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let rows = m
            .get_occurrences::<i64>("ids")
            .map(|rows| rows.map(|row| row.copied().collect()).collect())
            .unwrap_or_default();
        Ok(IdRows(rows))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for IdRows {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            clap::Arg::new("ids")
                .long("ids")
                .value_name("IDS")
                .help("Comma-separated token ids, e.g. 464,2068,7586; repeat for a batch (the same number of ids each time)")
                .value_parser(clap::value_parser!(i64))
                .action(clap::ArgAction::Append)
                .value_delimiter(',')
                .num_args(1..)
                .required(true)
                .allow_negative_numbers(true),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[derive(Args, Clone, Copy)]
struct Threads {
    /// Worker threads [default: the number of cores]. Output never depends on it.
    #[arg(long, default_value_t = default_threads(), value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
}

/// What `gpt2 bench` measures.
#[derive(Args, Clone, Copy)]
struct BenchArgs {
    /// Prompt tokens to prefill.
    #[arg(long, default_value_t = 8)]
    prompt_len: usize,
    /// Tokens to decode after the prompt.
    #[arg(long, default_value_t = 56)]
    gen: usize,
    /// Full-forward runs to time (the median is reported); 0 skips the full forward.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Profile the full-forward runs, and the batched decode of `--streams` (per layer, op
    /// and node; stderr).
    #[arg(long)]
    profile: bool,
    /// Decode this many sequences at once (batched steps) and report their aggregate
    /// speed too.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    streams: u32,
    /// Time the decode this many times, one stream and `--streams` alternated, each from
    /// its own prompt, and report medians: on a machine whose memory bandwidth swings,
    /// the ratio of the two from one round means little.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    #[command(flatten)]
    threads: Threads,
}

#[derive(Args, Clone)]
struct GenerateArgs {
    /// The prompt. Empty (or absent) starts from <|endoftext|>.
    prompt: Option<String>,
    /// Token ids instead of a text prompt (comma-separated); prints ids back. The only mode
    /// for models whose vocabulary is not GPT-2's.
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "prompt", allow_negative_numbers = true)]
    ids: Option<Vec<i64>>,
    /// Tokens to generate.
    #[arg(short = 'n', long, default_value_t = 64)]
    max_tokens: usize,
    /// Sampling temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.8, value_parser = non_negative, allow_negative_numbers = true)]
    temperature: f32,
    /// Sample from the k most likely tokens only; 0 disables.
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Sample from the smallest set of tokens whose probability reaches p; 1 disables.
    #[arg(long, default_value_t = 0.95, value_parser = unit_interval, allow_negative_numbers = true)]
    top_p: f32,
    /// Random seed [default: from the clock]. Same seed and options give the same text.
    #[arg(long)]
    seed: Option<u64>,
    /// Keep going after <|endoftext|>.
    #[arg(long)]
    ignore_eos: bool,
    /// Stop when the text contains this string (not printed); may be given more than once.
    #[arg(long, value_name = "TEXT", value_parser = non_empty)]
    stop: Vec<String>,
    /// Generate for every line of FILE (`-`: stdin) at once, in batched steps; print one
    /// JSON line per prompt, in input order: {"index", "prompt", "text", "tokens"}. With
    /// --seed S, prompt i uses seed S + i.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "ids"])]
    prompts: Option<PathBuf>,
    /// With --prompts: how many run at once at most [default: all, up to 64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: Option<u32>,
    /// Print token counts and speeds to stderr.
    #[arg(long)]
    stats: bool,
    /// Time every layer and op of the forward pass and print where the time went (stderr).
    #[arg(long)]
    profile: bool,
    #[command(flatten)]
    threads: Threads,
}

fn default_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

fn non_negative(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x >= 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("expected a number >= 0, got '{s}'")),
    }
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("a stop string cannot be empty".into())
    } else {
        Ok(s.to_string())
    }
}

fn unit_interval(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x > 0.0 && x <= 1.0 => Ok(x),
        _ => Err(format!("expected a number in (0, 1], got '{s}'")),
    }
}

fn main() -> ExitCode {
    START.get_or_init(Instant::now);
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        None => cli.generate.threads,
        Some(Cmd::Generate(a)) => a.threads,
        Some(
            Cmd::Logits { threads, .. }
            | Cmd::Score { threads, .. }
            | Cmd::Bench(BenchArgs { threads, .. }),
        ) => *threads,
        Some(Cmd::Info) => Threads { threads: 1 },
        Some(Cmd::Serve(a)) => a.threads,
    };
    gpt2rt::set_threads(threads.threads as usize);
    // `GPT2_AMX=0` keeps the kernels off AMX tiles, for comparisons; they are used by
    // default where the CPU and OS allow.
    if std::env::var_os("GPT2_AMX").is_some_and(|v| v == "0") {
        gpt2rt::amx::set_enabled(false);
    }
    let result = match cli.cmd {
        None => generate(&cli.generate),
        Some(Cmd::Generate(args)) => generate(&args),
        Some(Cmd::Logits { ids, out, .. }) => logits(&ids, &out),
        Some(Cmd::Score { files, .. }) => score_files(&files),
        Some(Cmd::Bench(args)) => bench(&args),
        Some(Cmd::Info) => {
            info();
            Ok(())
        }
        Some(Cmd::Serve(args)) => serve_command(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn gpt2_vocab() -> bool {
    GPT2.is_some_and(|c| c.vocab == VOCAB)
}

fn check_ids(ids: &[i64], vocab: usize) -> Result<Vec<u32>, String> {
    if ids.is_empty() {
        return Err("--ids is empty".into());
    }
    ids.iter()
        .enumerate()
        .map(|(i, &t)| {
            if t < 0 || t as usize >= vocab {
                Err(format!(
                    "token id {t} at position {i} is outside the vocabulary [0, {vocab})"
                ))
            } else {
                Ok(t as u32)
            }
        })
        .collect()
}

/// The options of `args`, with `seed`.
fn generate_options(args: &GenerateArgs, seed: u64, text: bool) -> GenerateOptions {
    GenerateOptions {
        max_tokens: args.max_tokens,
        sampling: SamplerConfig {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
        },
        seed,
        // Token ids of another vocabulary have no <|endoftext|>; --ids never stops early.
        end_token: (text && !args.ignore_eos).then_some(END_OF_TEXT),
        stop: args.stop.clone(),
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `gpt2 generate --prompts FILE`: every line a prompt, generated together in batched steps
/// (or one after another when the model cannot batch); one JSON line per prompt, in order.
fn generate_many(args: &GenerateArgs, file: &Path) -> Result<(), String> {
    if !gpt2_vocab() {
        return Err(format!(
            "--prompts needs GPT-2's vocabulary of {VOCAB} tokens (this model's has {})",
            GPT2.map_or(0, |c| c.vocab)
        ));
    }
    let bytes = read_input(file)?;
    let text =
        String::from_utf8(bytes).map_err(|e| format!("{}: not UTF-8 text: {e}", file.display()))?;
    let prompts: Vec<&str> = text.lines().collect();
    let tok = Gpt2Tokenizer::new()?;
    let base = args.seed.unwrap_or_else(clock_seed);
    let mut jobs = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        let mut ids = tok.encode(p).map_err(|e| format!("prompt {i}: {e}"))?;
        if ids.is_empty() {
            ids.push(END_OF_TEXT);
        }
        jobs.push((
            ids,
            generate_options(args, base.wrapping_add(i as u64), true),
        ));
    }
    let t0 = Instant::now();
    let mut texts = vec![String::new(); jobs.len()];
    let mut counts = vec![None; jobs.len()];
    let mut printed = 0;
    let mut out = std::io::stdout().lock();
    // Prints the finished prompts at the front, in order.
    let mut flush = |texts: &mut [String], counts: &[Option<usize>], printed: &mut usize| {
        while *printed < counts.len() {
            let Some(n) = counts[*printed] else { break };
            let line = serde_json::json!({
                "index": *printed,
                "prompt": prompts[*printed],
                "text": std::mem::take(&mut texts[*printed]),
                "tokens": n,
            });
            writeln!(out, "{line}")
                .and_then(|_| out.flush())
                .map_err(|e| format!("cannot write output: {e}"))?;
            *printed += 1;
        }
        Ok::<(), String>(())
    };
    let slots = args
        .batch
        .map_or(MAX_SLOTS.min(jobs.len()), |b| b as usize)
        .max(1);
    match gpt2::BATCHING {
        Ok(()) => {
            let mut batch = gpt2text::Batch::new(gpt2::Model::new(), slots)?;
            for (ids, options) in &jobs {
                batch.submit(ids, options)?;
            }
            let mut events = Vec::new();
            while batch.step(Some(&tok), &mut events)? {
                for e in &events {
                    texts[e.id].push_str(&e.text);
                    if e.finish.is_some() {
                        counts[e.id] = Some(e.generated);
                    }
                }
                flush(&mut texts, &counts, &mut printed)?;
            }
        }
        Err(why) => {
            eprintln!("note: prompts run one after another: this model cannot batch ({why})");
            let mut runner = gpt2::runner();
            for (i, (ids, options)) in jobs.iter().enumerate() {
                let mut g = Generator::new(&mut runner, &tok, ids, options)?;
                for piece in g.by_ref() {
                    texts[i].push_str(&piece?);
                }
                counts[i] = Some(g.tokens().generated());
                flush(&mut texts, &counts, &mut printed)?;
            }
        }
    }
    if args.stats {
        let n: usize = counts.iter().flatten().sum();
        let s = t0.elapsed().as_secs_f64();
        eprintln!(
            "{} prompts, {n} tokens generated in {s:.2} s ({:.1} tokens/s), up to {slots} at once; seeds from {base}",
            jobs.len(),
            n as f64 / s.max(1e-9)
        );
    }
    Ok(())
}

fn generate(args: &GenerateArgs) -> Result<(), String> {
    if let Some(file) = &args.prompts {
        return generate_many(args, file);
    }
    if args.batch.is_some() {
        return Err("--batch bounds how many of --prompts run at once: give --prompts FILE".into());
    }
    if args.profile {
        gpt2rt::profile::enable(gpt2::PROFILE.len());
    }
    let t_start = Instant::now();
    let mut runner = gpt2::runner();
    let vocab = runner.vocab();
    let tok = match (&args.ids, gpt2_vocab()) {
        (Some(_), _) => None,
        (None, false) => {
            return Err(format!(
                "this model's vocabulary has {vocab} tokens, not GPT-2's {VOCAB}, so it has no text tokenizer: give the prompt as --ids"
            ))
        }
        (None, true) => Some(Gpt2Tokenizer::new()?),
    };
    if tok.is_none() && !args.stop.is_empty() {
        return Err("--stop needs a text prompt (it matches text, and --ids prints ids)".into());
    }
    let prompt = match (&tok, &args.ids) {
        (Some(tok), _) => {
            let mut ids = tok.encode(args.prompt.as_deref().unwrap_or(""))?;
            if ids.is_empty() {
                ids.push(END_OF_TEXT);
            }
            ids
        }
        (None, Some(ids)) => check_ids(ids, vocab)?,
        (None, None) => unreachable!("no tokenizer without --ids"),
    };
    let seed = args.seed.unwrap_or_else(clock_seed);
    let options = generate_options(args, seed, tok.is_some());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let write = |out: &mut std::io::StdoutLock, s: &str| -> Result<(), String> {
        out.write_all(s.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| format!("cannot write output: {e}"))
    };
    let mut t_first = None;
    // Echo the prompt, as llama.cpp and ggml's gpt-2 example do; then stream the rest.
    let generated = match &tok {
        Some(tok) => {
            write(&mut out, args.prompt.as_deref().unwrap_or(""))?;
            let mut pieces = Generator::new(&mut runner, tok, &prompt, &options)?;
            for piece in pieces.by_ref() {
                t_first.get_or_insert_with(Instant::now);
                write(&mut out, &piece?)?;
            }
            pieces.tokens().generated()
        }
        None => {
            let ids: Vec<String> = prompt.iter().map(|t| t.to_string()).collect();
            write(&mut out, &ids.join(" "))?;
            let mut tokens = Tokens::new(&mut runner, &prompt, &options)?;
            for t in tokens.by_ref() {
                t_first.get_or_insert_with(Instant::now);
                write(&mut out, &format!(" {}", t?))?;
            }
            tokens.generated()
        }
    };
    write(&mut out, "\n")?;
    if args.stats {
        let t_end = Instant::now();
        let first = t_first.unwrap_or(t_end);
        let prefill = first.duration_since(t_start).as_secs_f64();
        let decode = t_end.duration_since(first).as_secs_f64();
        eprintln!(
            "prompt {} tokens, generated {generated} tokens; prefill {:.3} s ({:.1} tokens/s), decode {:.1} tokens/s; seed {seed}",
            prompt.len(),
            prefill,
            prompt.len() as f64 / prefill.max(1e-9),
            generated.saturating_sub(1) as f64 / decode.max(1e-9)
        );
    }
    if args.profile {
        eprint!("{}", gpt2rt::profile::report(gpt2::PROFILE));
    }
    Ok(())
}

/// The bytes of `file`, or of stdin for `-`.
fn read_input(file: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
    } else {
        bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    }
    Ok(bytes)
}

fn score_files(files: &[PathBuf]) -> Result<(), String> {
    let mut o = String::new();
    let tok = Gpt2Tokenizer::new()?;
    let t = Instant::now();
    let mut shown = ScoreProgress::new();
    if let [file] = files {
        let bytes = read_input(file)?;
        let mut runner = gpt2::runner();
        let score = score_text_with_progress(&mut runner, &tok, &bytes, |p| shown.update(p));
        shown.clear();
        let score = score?;
        outln!(
            o,
            "perplexity {:.4} over {} tokens (mean negative log-likelihood {:.4} nats; {:.1} s)",
            score.perplexity(),
            score.tokens,
            score.mean_nll,
            t.elapsed().as_secs_f64()
        );
        emit(&o);
        return Ok(());
    }
    // Several files: scored together in batched steps, each exactly as alone.
    gpt2text::tokenizer::check_vocab(GPT2.map_or(0, |c| c.vocab))?;
    if files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        return Err("stdin (-) can be read only once".into());
    }
    let mut docs = Vec::with_capacity(files.len());
    for f in files {
        let bytes = read_input(f)?;
        let ids = gpt2text::document(&tok, &bytes).map_err(|e| format!("{}: {e}", f.display()))?;
        docs.push(ids);
    }
    let scores = match gpt2::BATCHING {
        Ok(()) => {
            let r = gpt2text::score_many(&mut gpt2::Model::new(), &docs, |p| shown.update(p));
            shown.clear();
            r?
        }
        Err(_) => {
            let mut runner = gpt2::runner();
            let total: usize = docs.iter().map(|d| d.len() - 1).sum();
            let mut done = 0;
            let mut all = Vec::new();
            for d in &docs {
                let sc = gpt2text::score_with_progress(&mut runner, d, |p| {
                    shown.update(gpt2text::Progress {
                        scored: done + p.scored,
                        total,
                    })
                })?;
                done += sc.tokens;
                all.push(sc);
            }
            shown.clear();
            all
        }
    };
    let (mut sum, mut n) = (0.0, 0);
    for (f, sc) in files.iter().zip(&scores) {
        outln!(
            o,
            "perplexity {:.4} over {} tokens (mean negative log-likelihood {:.4} nats): {}",
            sc.perplexity(),
            sc.tokens,
            sc.mean_nll,
            f.display()
        );
        sum += sc.mean_nll * sc.tokens as f64;
        n += sc.tokens;
    }
    let mean = sum / n as f64;
    outln!(
        o,
        "perplexity {:.4} over {n} tokens in {} files (mean negative log-likelihood {mean:.4} nats; {:.1} s)",
        mean.exp(),
        files.len(),
        t.elapsed().as_secs_f64()
    );
    emit(&o);
    Ok(())
}

/// `gpt2 score`'s progress line on stderr, redrawn in place at most every 200 ms: only
/// when stderr is a terminal (`GPT2C_PROGRESS=0` turns it off, `=1` forces it on, as for
/// the compiler), so pipes and logs stay clean.
struct ScoreProgress {
    on: bool,
    start: Instant,
    last: Option<Instant>,
}

impl ScoreProgress {
    fn new() -> ScoreProgress {
        use std::io::IsTerminal;
        let on = match std::env::var("GPT2C_PROGRESS").as_deref() {
            Ok("0") => false,
            Ok("1") => true,
            _ => std::io::stderr().is_terminal(),
        };
        ScoreProgress {
            on,
            start: Instant::now(),
            last: None,
        }
    }

    fn update(&mut self, p: gpt2text::Progress) {
        let now = Instant::now();
        let due = match self.last {
            None => true,
            Some(t) => now.duration_since(t).as_millis() >= 200,
        };
        if !self.on || !(due || p.scored == p.total) {
            return;
        }
        self.last = Some(now);
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        let rate = p.scored as f64 / secs;
        let left = (p.total - p.scored) as f64 / rate.max(1e-9);
        eprint!(
            "\r\x1b[2Kscoring: {}/{} tokens ({:.0}%), {:.0} tokens/s, {:.0} s left",
            p.scored,
            p.total,
            100.0 * p.scored as f64 / p.total.max(1) as f64,
            rate,
            left
        );
    }

    fn clear(&self) {
        if self.on && self.last.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

/// `gpt2 logits`: the full forward of each row of ids (a batch's entries are independent, and
/// the model is compiled for one sequence), its logits written to `out` one row after the
/// other. Every row is checked before anything runs.
fn logits(ids: &IdRows, out: &Path) -> Result<(), String> {
    let mut runner = gpt2::runner();
    let (ctx, vocab) = (runner.context(), runner.vocab());
    let batch = ids.0.len();
    let lens: Vec<usize> = ids.0.iter().map(Vec::len).collect();
    if lens.windows(2).any(|w| w[0] != w[1]) {
        let lens: Vec<String> = lens.iter().map(usize::to_string).collect();
        return Err(format!(
            "a batch needs the same number of ids in every --ids (its input is [B, 1, L]); got {}",
            lens.join(", ")
        ));
    }
    let rows = ids
        .0
        .iter()
        .enumerate()
        .map(|(b, row)| match check_ids(row, vocab) {
            Err(e) if batch > 1 => Err(format!("--ids #{}: {e}", b + 1)),
            r => r,
        })
        .collect::<Result<Vec<_>, _>>()?;
    let len = lens.first().copied().unwrap_or(0);
    if len > ctx {
        return Err(format!(
            "{len} ids given{}; the model's context is {ctx} tokens",
            if batch > 1 { " per --ids" } else { "" }
        ));
    }
    let mut f =
        std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut bytes = Vec::with_capacity(len * vocab * 4);
    for row in &rows {
        bytes.clear();
        for x in runner.eval(row)? {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        f.write_all(&bytes)
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(())
}

/// The median of `xs` (the upper one of an even count); 0 for none.
fn median_of(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

/// Seconds to read the embedded weights once on every thread (`weights::read_through`):
/// the floor for a decode step, which reads nearly all of them once.
fn read_weights() -> f64 {
    let t = Instant::now();
    std::hint::black_box(gpt2rt::weights::read_through(gpt2::weight_blob()));
    t.elapsed().as_secs_f64()
}

/// Seconds to decode `gen` tokens greedily after `tokens` (which end with the prompt's
/// first pick), each appended.
fn decode_greedy(
    runner: &mut gpt2text::Runner<gpt2::Model>,
    tokens: &mut Vec<u32>,
    gen: usize,
) -> Result<f64, String> {
    let t = Instant::now();
    for _ in 0..gen {
        let next = gpt2text::sampling::argmax(runner.next_logits(tokens)?) as u32;
        tokens.push(next);
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Prefill `prompt_len` tokens, decode `gen` more greedily, time the full forward.
fn bench(args: &BenchArgs) -> Result<(), String> {
    let (prompt_len, gen, runs, profile) = (args.prompt_len, args.gen, args.runs, args.profile);
    let (streams, rounds) = (args.streams as usize, args.rounds as usize);
    let threads = args.threads.threads;
    let mut o = String::new();
    let start = START.get().copied().unwrap_or_else(Instant::now);
    let mut runner = gpt2::runner();
    let (ctx, vocab) = (runner.context(), runner.vocab());
    if prompt_len == 0 || prompt_len.saturating_add(gen) > ctx {
        return Err(format!(
            "need 1 <= --prompt-len and --prompt-len + --gen <= {ctx} (the context)"
        ));
    }
    let (mut prefill, mut first_token) = (0.0, 0.0);
    let (mut decodes, mut batched) = (Vec::new(), Vec::new());
    // With rounds: a plain read of the weights after each round's single-stream decode.
    let (mut reads, mut over_read) = (Vec::new(), Vec::new());
    // Per round: the batched steps' aggregate speed over the single stream's.
    let mut gains = Vec::new();
    for round in 0..rounds {
        // A fixed pseudo-random prompt (the speed does not depend on the text), each
        // round's its own, so the cache holds none of it.
        let mut tokens: Vec<u32> = (0..prompt_len)
            .map(|i| ((i * 7919 + 13 + round * 15_485_863) % vocab) as u32)
            .collect();
        let t0 = Instant::now();
        let first = gpt2text::sampling::argmax(runner.next_logits(&tokens)?) as u32;
        if round == 0 {
            prefill = t0.elapsed().as_secs_f64();
            first_token = start.elapsed().as_secs_f64();
        }
        tokens.push(first);
        let decode = decode_greedy(&mut runner, &mut tokens, gen)?;
        decodes.push(decode);
        if rounds > 1 {
            let r = read_weights();
            over_read.push(decode / gen.max(1) as f64 / r);
            reads.push(r);
        }
        if streams > 1 {
            // The profile covers the first batched run only.
            let s = decode_streams(streams, prompt_len, gen, vocab, profile && round == 0)?;
            gains.push(streams as f64 * decode / s);
            batched.push(s);
        }
    }
    // What the rounds say, when there are several: the gains' median and range, the best
    // read and the decode-over-read median.
    gains.sort_by(f64::total_cmp);
    let gain =
        (!gains.is_empty()).then(|| (median_of(gains.clone()), gains[0], gains[gains.len() - 1]));
    let floor = (!reads.is_empty()).then(|| {
        let best = reads.iter().copied().fold(f64::INFINITY, f64::min);
        (best, median_of(over_read))
    });
    let decode = median_of(decodes);
    let many = (streams > 1).then(|| median_of(batched));
    // The same prefill again: weights paged in and caches warm.
    let t2 = Instant::now();
    let prompt: Vec<u32> = (0..prompt_len)
        .map(|i| ((i * 7919 + 13) % vocab) as u32)
        .rev()
        .collect();
    runner.next_logits(&prompt)?;
    let prefill_warm = t2.elapsed().as_secs_f64();
    let full: Vec<u32> = (0..ctx).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
    // The median of `runs` timed full forwards of `ids` (None when `runs` is 0).
    let mut median = |ids: &[u32]| -> Result<Option<f64>, String> {
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            runner.eval(ids)?;
            times.push(t.elapsed().as_secs_f64());
        }
        Ok((runs > 0).then(|| median_of(times)))
    };
    if profile {
        gpt2rt::profile::enable(gpt2::PROFILE.len());
    }
    let full_s = median(&full)?;
    if profile {
        eprintln!("full forward, {runs} run(s):");
        eprint!("{}", gpt2rt::profile::report(gpt2::PROFILE));
    }
    // The full forward of a 128-token sequence too (every row's logits), when it fits.
    let full_128 = if ctx >= 128 {
        median(&full[..128])?
    } else {
        None
    };
    let single_ms = decode * 1e3 / gen.max(1) as f64;
    // With several streams, the decode figures are per stream of the batched run.
    let ms_per_token = many.map_or(single_ms, |s| s * 1e3 / gen.max(1) as f64);
    let total_tok_s = streams as f64 * 1e3 / ms_per_token;
    outln!(
        o,
        "threads     {threads} ({:?} GEMV kernels)",
        gpt2rt::gemv::detected()
    );
    outln!(
        o,
        "prefill     {prompt_len} tokens in {:.1} ms ({:.1} tokens/s); again, warm: {:.1} ms",
        prefill * 1e3,
        prompt_len as f64 / prefill,
        prefill_warm * 1e3
    );
    outln!(
        o,
        "decode      {gen} tokens at {single_ms:.2} ms/token ({:.1} tokens/s), context {}..{}",
        1e3 / single_ms,
        prompt_len,
        prompt_len + gen
    );
    if many.is_some() {
        outln!(
            o,
            "streams     {streams} decoding together: {ms_per_token:.2} ms per step ({:.1} tokens/s each, {total_tok_s:.1} tokens/s in all, {:.2}x one stream)",
            1e3 / ms_per_token,
            total_tok_s * single_ms / 1e3
        );
        if let (true, Some((median, low, high))) = (rounds > 1, gain) {
            outln!(
                o,
                "rounds      {rounds}, one stream and {streams} alternated: the figures above are medians; {streams} streams over one, round by round: median {median:.2}x (from {low:.2}x to {high:.2}x)"
            );
        }
    }
    if let Some((best, over)) = floor {
        outln!(
            o,
            "weights     a plain read of the {:.0} MB blob after each round: best {:.2} ms ({:.1} GB/s); a decode step over it, round by round: median {over:.2}x",
            gpt2::WEIGHT_BYTES as f64 / 1e6,
            best * 1e3,
            gpt2::WEIGHT_BYTES as f64 / best / 1e9,
        );
    }
    if let Some(t) = full_s {
        outln!(
            o,
            "full        [1,1,{ctx}] forward in {t:.3} s (median of {runs})"
        );
    }
    if let Some(t) = full_128 {
        outln!(
            o,
            "full        [1,1,128] forward in {:.1} ms (median)",
            t * 1e3
        );
    }
    outln!(o, "first token {:.3} s after process start", first_token);
    let full_json = full_s.map_or(String::new(), |t| {
        format!(",\"full_forward_len\":{ctx},\"full_forward_s\":{t:.6}")
    });
    let read_json = floor.map_or(String::new(), |(best, over)| {
        format!(",\"weights_read_best_s\":{best:.6},\"decode_over_read_median\":{over:.3}")
    });
    let gain_json = gain.map_or(String::new(), |(median, ..)| {
        format!(",\"streams_gain_median\":{median:.3}")
    });
    let full_128_json =
        full_128.map_or(String::new(), |t| format!(",\"full_forward_128_s\":{t:.6}"));
    outln!(o, "{{\"prompt_tokens\":{prompt_len},\"gen_tokens\":{gen},\"threads\":{threads},\"prefill_s\":{prefill:.6},\"prefill_tok_s\":{:.3},\"prefill_warm_s\":{prefill_warm:.6},\"decode_ms_per_token\":{ms_per_token:.4},\"decode_tok_s\":{:.3}{full_json},\"first_token_s\":{first_token:.6}{full_128_json},\"incremental\":{},\"kv\":\"{}\",\"streams\":{streams},\"decode_tokens_per_s_total\":{total_tok_s:.3},\"single_stream_decode_tok_s\":{:.3},\"rounds\":{rounds}{gain_json}{read_json},\"amx\":{}}}",
        prompt_len as f64 / prefill,
        1e3 / ms_per_token,
        gpt2::INCREMENTAL,
        gpt2::KV_FORMAT.name(),
        1e3 / single_ms,
        amx_used()
    );
    emit(&o);
    Ok(())
}

/// Seconds `streams` sequences take to decode `gen` tokens each together, greedily, after
/// prompts of `prompt_len` tokens (each its own, `bench`'s prompt shifted) and their first
/// token.
fn decode_streams(
    streams: usize,
    prompt_len: usize,
    gen: usize,
    vocab: usize,
    profile: bool,
) -> Result<f64, String> {
    let mut batch = gpt2text::Batch::new(gpt2::Model::new(), streams)?;
    let options = GenerateOptions {
        max_tokens: gen + 1,
        sampling: SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        },
        seed: 0,
        end_token: None,
        stop: Vec::new(),
    };
    for s in 0..streams {
        let prompt: Vec<u32> = (0..prompt_len)
            .map(|i| ((i * 7919 + 13 + s * 104_729) % vocab) as u32)
            .collect();
        batch.submit(&prompt, &options)?;
    }
    let mut events = Vec::new();
    let mut started = 0;
    while started < streams {
        batch.step(None, &mut events)?;
        started += events.iter().filter(|e| e.generated == 1).count();
    }
    if profile {
        gpt2rt::profile::enable(gpt2::PROFILE.len());
    }
    let t = Instant::now();
    while batch.step(None, &mut events)? {}
    let s = t.elapsed().as_secs_f64();
    if profile {
        eprintln!("{streams} streams decoding together, {gen} steps:");
        eprint!("{}", gpt2rt::profile::report(gpt2::PROFILE));
    }
    Ok(s)
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Prints a report; a closed pipe (`gpt2 info | head`) is not an error worth a panic.
fn emit(o: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(o.as_bytes()).and_then(|_| out.flush());
}

/// `path` relative to the checkout the binary was built in, when it is inside it.
fn in_checkout(path: &str) -> &str {
    std::path::Path::new(path)
        .strip_prefix(build_info::CHECKOUT)
        .ok()
        .and_then(|p| p.to_str())
        .unwrap_or(path)
}

/// Whether this model's Linears use AMX tiles here: bf16 and q8 weights, a CPU and OS that
/// allow them, and not `GPT2_AMX=0`.
fn amx_used() -> bool {
    matches!(gpt2::WEIGHT_FORMAT, "bf16" | "q8") && gpt2rt::amx::enabled()
}

fn info() {
    let mut o = String::new();
    let t = Instant::now();
    let _ = gpt2::Weights::new();
    let startup = t.elapsed();
    outln!(o, "model      {}", in_checkout(build_info::MODEL_PATH));
    outln!(o, "sha256     {}", build_info::MODEL_SHA256);
    if let Some(c) = GPT2 {
        outln!(
            o,
            "config     {} layers, {} heads, embedding width {}, vocabulary {}, context {}",
            c.n_layer,
            c.n_head,
            c.n_embd,
            c.vocab,
            c.n_ctx
        );
    }
    for t in INPUTS {
        outln!(o, "input      {} {:?}{:?}", t.name, t.dtype, t.shape);
    }
    for t in OUTPUTS {
        outln!(o, "output     {} {:?}{:?}", t.name, t.dtype, t.shape);
    }
    outln!(
        o,
        "weights    {}, {} bytes ({:.2} MB), embedded in the binary",
        match (gpt2::WEIGHT_FORMAT, gpt2::F16_TABLES) {
            ("f32", _) => "f32".to_string(),
            (f, []) => format!("{f} matrices, f32 biases and norms"),
            (f, t) => format!(
                "{f} matrices, f16 tables ({}), f32 biases and norms",
                t.join(", ")
            ),
        },
        WEIGHT_BYTES,
        WEIGHT_BYTES as f64 / 1e6
    );
    let isa = match gpt2rt::gemv::detected() {
        gpt2rt::gemv::Isa::Avx512 => "AVX-512",
        gpt2rt::gemv::Isa::Avx2 => "AVX2+FMA",
        gpt2rt::gemv::Isa::Scalar => "portable (no AVX2)",
    };
    let products = match gpt2::WEIGHT_FORMAT {
        "q8" if amx_used() => &format!(
            ", int8 products with AVX-512 VNNI, AMX tiles for products of {} to {} rows",
            gpt2rt::q8::AMX_MIN_ROWS,
            gpt2rt::q8::AMX_MAX_ROWS
        ),
        "bf16" if amx_used() => ", bf16 products with AMX tiles",
        "q8" if gpt2rt::q8::vnni() => ", int8 products with AVX-512 VNNI",
        "q8" => ", int8 products without VNNI",
        "q4" => &format!(
            ", 4-bit weights (an int8 scale per {} rows, an f32 unit per column) times int8 inputs, {}",
            gpt2rt::q4::BLOCK,
            if gpt2rt::q8::vnni() {
                "with AVX-512 VNNI"
            } else {
                "without VNNI"
            }
        ),
        "bf16" if gpt2rt::bf16::dot_instructions() => ", bf16 products with AVX-512 BF16",
        "bf16" => ", bf16 products widened to f32",
        _ => "",
    };
    outln!(o, "kernels    {isa}{products}");
    let c = GPT2.map_or(1, |c| c.n_embd / c.n_head.max(1));
    outln!(
        o,
        "kv cache   {}, {} bytes per sequence at full context{}",
        gpt2::KV_FORMAT.name(),
        (gpt2::CACHE_LEN as f64 * gpt2::KV_FORMAT.bytes_per_value(c)) as usize,
        match gpt2::KV_FORMAT {
            gpt2rt::kv::KvFormat::F32 => "",
            gpt2rt::kv::KvFormat::Q8 => ", int8 with an f32 scale per block, widened as read",
            _ => ", widened to f32 as read",
        }
    );
    outln!(
        o,
        "arena      {} bytes of activations",
        gpt2::ARENA_F32 * 4 + gpt2::ARENA_I64 * 8
    );
    outln!(
        o,
        "source     {} ({} lines)",
        in_checkout(build_info::SOURCE_PATH),
        build_info::SOURCE_LINES
    );
    outln!(
        o,
        "start-up   weight views in {:.1} us",
        startup.as_secs_f64() * 1e6
    );
    emit(&o);
}
