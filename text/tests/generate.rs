//! The text layer on a scripted model: a `Gpt2Model` whose logits put all mass on the
//! token a script gives for each position, so streaming, stop strings, UTF-8 boundaries,
//! the end token and the context-window policy are checked exactly, independently of any
//! trained weights (generated/tests/text.rs runs the same API on the compiled model).

use gpt2rt::io::Gpt2Config;
use gpt2rt::Gpt2Model;
use gpt2text::{
    Finish, GenerateOptions, Generator, Gpt2Tokenizer, Runner, SamplerConfig, Tokens, END_OF_TEXT,
    VOCAB,
};
use std::sync::OnceLock;

const CTX: usize = 8;

/// Predicts `script(position, previous token)`: row r's logits are one-hot.
struct Scripted {
    script: fn(usize, u32) -> u32,
    logits: Vec<f32>,
    /// (p0, rows) of every call, to check the runner's use of the cache.
    calls: Vec<(usize, usize)>,
}

impl Scripted {
    fn new(script: fn(usize, u32) -> u32) -> Scripted {
        Scripted {
            script,
            logits: vec![0.0; CTX * VOCAB],
            calls: Vec::new(),
        }
    }
}

impl Gpt2Model for Scripted {
    fn create() -> Scripted {
        Scripted::new(|_, t| t)
    }
    fn config(&self) -> Gpt2Config {
        Gpt2Config {
            n_layer: 1,
            n_head: 1,
            n_embd: 4,
            vocab: VOCAB,
            n_ctx: CTX,
        }
    }
    fn context(&self) -> usize {
        CTX
    }
    fn incremental(&self) -> bool {
        true
    }
    fn forward_rows(&mut self, ids: &[i64], p0: usize, _last_only: bool) -> Result<(), String> {
        assert!(p0 + ids.len() <= CTX, "rows beyond the context");
        self.calls.push((p0, ids.len()));
        for (i, &t) in ids.iter().enumerate() {
            let row = &mut self.logits[(p0 + i) * VOCAB..(p0 + i + 1) * VOCAB];
            row.fill(-10.0);
            row[(self.script)(p0 + i, t as u32) as usize] = 10.0;
        }
        Ok(())
    }
    fn logits(&self) -> &[f32] {
        &self.logits
    }
}

fn tok() -> &'static Gpt2Tokenizer {
    static TOK: OnceLock<Gpt2Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Gpt2Tokenizer::new().expect("tokenizer builds"))
}

fn greedy(max_tokens: usize, stop: &[&str]) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampling: SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        },
        seed: 1,
        end_token: Some(END_OF_TEXT),
        stop: stop.iter().map(|s| s.to_string()).collect(),
    }
}

/// The tokens of " the cat sat on the mat", repeated.
fn cat_script(pos: usize, _prev: u32) -> u32 {
    const IDS: [u32; 6] = [262, 3797, 3332, 319, 262, 2603];
    IDS[pos % IDS.len()]
}

fn run(script: fn(usize, u32) -> u32, prompt: &[u32], options: &GenerateOptions) -> Run {
    let mut runner = Runner::new(Scripted::new(script));
    let mut g = Generator::new(&mut runner, tok(), prompt, options).unwrap();
    let pieces: Vec<String> = g.by_ref().map(|p| p.unwrap()).collect();
    let finish = g.tokens().finish();
    let generated = g.tokens().generated_tokens().to_vec();
    Run {
        text: pieces.concat(),
        pieces,
        finish,
        generated,
    }
}

struct Run {
    pieces: Vec<String>,
    text: String,
    finish: Option<Finish>,
    generated: Vec<u32>,
}

#[test]
fn script_decodes_as_expected() {
    assert_eq!(
        tok()
            .decode_bytes(&[262, 3797, 3332, 319, 262, 2603])
            .unwrap(),
        b" the cat sat on the mat"
    );
}

#[test]
fn streams_one_piece_per_token_and_stops_after_max_tokens() {
    let r = run(cat_script, &[464], &greedy(6, &[]));
    assert_eq!(r.text, " the cat sat on the mat");
    assert_eq!(r.pieces.len(), 6, "{:?}", r.pieces);
    assert_eq!(r.finish, Some(Finish::MaxTokens));
    assert_eq!(r.generated.len(), 6);
}

#[test]
fn stop_string_across_tokens_is_cut_and_never_printed() {
    // "sat on" spans two tokens: " sat" is held until " on" shows it is the stop string.
    let r = run(cat_script, &[464], &greedy(20, &["sat on"]));
    assert_eq!(r.text, " the cat ");
    assert_eq!(r.finish, Some(Finish::StopString(0)));
    for p in &r.pieces {
        assert!(!p.contains("sat"), "{:?}", r.pieces);
    }
    // A held prefix that turns out not to be the stop string is released intact.
    let r = run(cat_script, &[464], &greedy(6, &["sat in", "zzz"]));
    assert_eq!(r.text, " the cat sat on the mat");
    assert_eq!(r.finish, Some(Finish::MaxTokens));
    // The earliest of several stop strings wins.
    let r = run(cat_script, &[464], &greedy(20, &["mat", " on"]));
    assert_eq!(r.text, " the cat sat");
    assert_eq!(r.finish, Some(Finish::StopString(1)));
}

#[test]
fn end_token_ends_generation_unprinted() {
    fn script(pos: usize, _: u32) -> u32 {
        if pos == 3 {
            END_OF_TEXT
        } else {
            cat_script(pos, 0)
        }
    }
    let r = run(script, &[464], &greedy(20, &[]));
    assert_eq!(r.text, " the cat sat");
    assert_eq!(r.finish, Some(Finish::EndToken));
    let mut keep_going = greedy(5, &[]);
    keep_going.end_token = None;
    let r = run(script, &[464], &keep_going);
    assert_eq!(r.generated[3], END_OF_TEXT);
    assert_eq!(r.finish, Some(Finish::MaxTokens));
}

#[test]
fn pieces_never_split_a_character() {
    // "日本" as byte tokens: E6 97 A5, E6 9C AC. A piece appears only when a character
    // is complete.
    fn script(pos: usize, _: u32) -> u32 {
        let bytes = "日本".as_bytes();
        let b = bytes[pos % bytes.len()];
        tok().encode_bytes(&[b]).unwrap()[0]
    }
    let r = run(script, &[464], &greedy(6, &[]));
    assert_eq!(r.text, "日本");
    let nonempty: Vec<&String> = r.pieces.iter().filter(|p| !p.is_empty()).collect();
    assert_eq!(nonempty, ["日", "本"]);
    // Cut in the middle of a character: the end flushes U+FFFD, as a lossy decode does.
    let r = run(script, &[464], &greedy(4, &[]));
    assert_eq!(r.text, "日\u{FFFD}");
}

#[test]
fn window_slides_by_half_a_context_and_reuses_the_cache() {
    let mut runner = Runner::new(Scripted::new(cat_script));
    let mut options = greedy(12, &[]);
    options.end_token = None;
    let mut tokens = Tokens::new(&mut runner, &[464, 262], &options).unwrap();
    let ids: Vec<u32> = tokens.by_ref().map(|t| t.unwrap()).collect();
    assert_eq!(ids.len(), 12);
    assert_eq!(tokens.tokens().len(), 14);
    let calls = &runner.model().calls;
    // Prefill 2 rows, then one row per token until the window (8) is full; then the
    // window restarts on the most recent 4 tokens (one prefill of 4 rows), and so on.
    assert_eq!(calls[0], (0, 2));
    assert!(calls[1..7].iter().all(|&(_, n)| n == 1), "{calls:?}");
    assert_eq!(calls[7], (0, CTX / 2), "{calls:?}");
    assert!(calls.iter().all(|&(p0, n)| p0 + n <= CTX));
}

#[test]
fn same_seed_same_tokens_and_bad_requests_are_errors() {
    fn spread(_: usize, prev: u32) -> u32 {
        (prev * 7 + 1) % 1000
    }
    let sampled = |seed| {
        let mut runner = Runner::new(Scripted::new(spread));
        let options = GenerateOptions {
            seed,
            max_tokens: 10,
            ..GenerateOptions::default()
        };
        Tokens::new(&mut runner, &[1, 2], &options)
            .unwrap()
            .map(|t| t.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(sampled(3), sampled(3));
    let mut runner = Runner::new(Scripted::new(spread));
    let o = GenerateOptions::default();
    assert!(Tokens::new(&mut runner, &[], &o).is_err());
    let e = Tokens::new(&mut runner, &[1, VOCAB as u32], &o)
        .err()
        .unwrap();
    assert!(e.contains("position 1"), "{e}");
    let bad_stop = greedy(3, &["ok", ""]);
    let e = Generator::new(&mut runner, tok(), &[1], &bad_stop)
        .err()
        .unwrap();
    assert!(e.contains("stop string 1 is empty"), "{e}");
}

#[test]
fn score_text_reads_the_script() {
    // The script predicts " the cat sat ..." with near certainty: tiny perplexity; a text
    // against it scores badly.
    let mut runner = Runner::new(Scripted::new(|pos, _| {
        if pos == 0 {
            262
        } else {
            cat_script(pos, 0)
        }
    }));
    let good = gpt2text::score_text(&mut runner, tok(), b" the cat sat").unwrap();
    assert_eq!(good.tokens, 3);
    assert!(good.perplexity() < 1.01, "{good:?}");
    let bad = gpt2text::score_text(&mut runner, tok(), b" a dog ran").unwrap();
    assert!(bad.perplexity() > 1e3, "{bad:?}");
    assert!(gpt2text::score_text(&mut runner, tok(), b"").is_err());
}

#[test]
fn score_reports_progress_window_by_window() {
    let mut runner = Runner::new(Scripted::new(cat_script));
    // 20 tokens with a context of 8: windows end at 8, 12, 16 and 20.
    let ids: Vec<u32> = (0..20).map(|i| cat_script(i, 0)).collect();
    let mut seen = Vec::new();
    let s = gpt2text::score_with_progress(&mut runner, &ids, |p| seen.push(p)).unwrap();
    let scored: Vec<usize> = seen.iter().map(|p| p.scored).collect();
    assert_eq!(scored, [7, 11, 15, 19]);
    assert!(seen.iter().all(|p| p.total == 19));
    assert_eq!(s.tokens, 19);
}
