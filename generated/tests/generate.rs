//! Text generation and scoring through the real binary.

use std::io::Write;
use std::process::{Command, Stdio};

fn gpt2(args: &[&str], stdin: Option<&[u8]>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpt2"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "gpt2 {args:?} panicked: {err}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

fn gpt2_vocab() -> bool {
    std::env::var_os("GPT2_ONNX").is_none()
}

#[test]
fn same_seed_same_text_at_any_thread_count() {
    if !gpt2_vocab() {
        return;
    }
    let run = |threads: &str, seed: &str| {
        let (ok, out, err) = gpt2(
            &[
                "Once upon a time",
                "-n",
                "24",
                "--seed",
                seed,
                "--threads",
                threads,
            ],
            None,
        );
        assert!(ok, "{err}");
        out
    };
    let a = run("1", "7");
    assert_eq!(a, run("2", "7"));
    assert_eq!(a, run("1", "7"));
    assert!(
        a.starts_with("Once upon a time"),
        "the prompt is echoed: {a}"
    );
    assert_ne!(a, run("1", "8"), "another seed gives other text");
    // `gpt2 "prompt"` is `gpt2 generate "prompt"`.
    let (ok, b, _) = gpt2(
        &["generate", "Once upon a time", "-n", "24", "--seed", "7"],
        None,
    );
    assert!(ok);
    assert_eq!(a, b);
}

#[test]
fn greedy_generation_runs_past_the_context_window() {
    if !gpt2_vocab() {
        return;
    }
    // The default model's context is 128 tokens: 200 new tokens slide the window.
    let (ok, out, err) = gpt2(
        &[
            "Hello world",
            "-n",
            "200",
            "--temperature",
            "0",
            "--ignore-eos",
            "--stats",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("prompt 2 tokens, generated 200 tokens"),
        "{err}"
    );
    assert!(out.starts_with("Hello world") && out.len() > 200);
    let (ok2, out2, _) = gpt2(
        &[
            "Hello world",
            "-n",
            "200",
            "--temperature",
            "0",
            "--ignore-eos",
        ],
        None,
    );
    assert!(ok2);
    assert_eq!(out, out2, "greedy decoding is deterministic");
}

#[test]
fn empty_prompt_and_ids_mode() {
    let (ok, out, err) = gpt2(
        &["--ids", "464,2068,7586", "-n", "5", "--temperature", "0"],
        None,
    );
    assert!(ok, "{err}");
    let ids: Vec<u32> = out.split_whitespace().map(|t| t.parse().unwrap()).collect();
    assert_eq!(&ids[..3], &[464, 2068, 7586]);
    assert!(ids.len() <= 8);
    if gpt2_vocab() {
        let (ok, _, err) = gpt2(&["", "-n", "3", "--seed", "1", "--stats"], None);
        assert!(
            ok && err.contains("prompt 1 tokens"),
            "an empty prompt starts from <|endoftext|>: {err}"
        );
    }
}

#[test]
fn score_reads_files_and_stdin() {
    if !gpt2_vocab() {
        return;
    }
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(40); // ~400 tokens > context
    let (ok, out, err) = gpt2(&["score", "-"], Some(text.as_bytes()));
    assert!(ok, "{err}");
    assert!(out.starts_with("perplexity "), "{out}");
    let n: usize = out
        .split(" over ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        n, 401,
        "every token after <|endoftext|> is scored once: {out}"
    );
    let path = std::env::temp_dir().join(format!("gpt2-score-{}.txt", std::process::id()));
    std::fs::write(&path, text.as_bytes()).unwrap();
    let (ok, out2, _) = gpt2(&["score", path.to_str().unwrap()], None);
    assert!(ok);
    assert_eq!(out.split(" nats").next(), out2.split(" nats").next());
    // Arbitrary bytes are valid input.
    let (ok, out3, err) = gpt2(&["score", "-"], Some(&[0xff, 0xfe, b'a', 0x80, b'\n']));
    assert!(ok && out3.starts_with("perplexity"), "{err}");
    std::fs::remove_file(path).ok();
}

/// (Bad options and their errors: the table in tests/cli.rs.)
#[test]
fn help_lists_the_options() {
    let (ok, out, _) = gpt2(&["--help"], None);
    assert!(ok);
    for opt in [
        "--max-tokens",
        "--temperature",
        "--top-k",
        "--top-p",
        "--seed",
        "--threads",
        "--ignore-eos",
        "--stats",
        "default",
    ] {
        assert!(out.contains(opt), "--help lacks {opt}");
    }
}

#[test]
fn stop_strings_cut_the_text() {
    if !gpt2_vocab() {
        return;
    }
    let base = [
        "--seed",
        "7",
        "-n",
        "40",
        "--temperature",
        "0",
        "--threads",
        "1",
    ];
    let (ok, full, err) = gpt2(&[&base[..], &["And the"]].concat(), None);
    assert!(ok, "{err}");
    let generated = &full["And the".len()..full.len() - 1];
    // Stop at the third word of the continuation (it spans tokens with its space).
    let word: String = generated.split_whitespace().nth(2).unwrap().to_string();
    let stop = format!(" {word}");
    let cut = generated.find(&stop).unwrap();
    let (ok, out, err) = gpt2(&[&base[..], &["--stop", &stop, "And the"]].concat(), None);
    assert!(ok, "{err}");
    assert_eq!(out, format!("And the{}\n", &generated[..cut]));
    // A stop string that never appears changes nothing; an empty one is refused.
    let (ok, out, _) = gpt2(&[&base[..], &["--stop", "@@@", "And the"]].concat(), None);
    assert!(ok);
    assert_eq!(out, full);
    let (ok, _, err) = gpt2(&[&base[..], &["--stop", "", "And the"]].concat(), None);
    assert!(!ok && err.contains("cannot be empty"), "{err}");
    let (ok, _, err) = gpt2(&["--ids", "1,2", "--stop", "x"], None);
    assert!(!ok && err.contains("--stop needs a text prompt"), "{err}");
}

#[test]
fn score_shows_progress_only_on_a_terminal_or_when_asked() {
    if !gpt2_vocab() {
        return;
    }
    let run = |progress: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpt2"));
        cmd.args(["score", "../models/heldout-sample.txt", "--threads", "1"]);
        cmd.env_remove("GPT2C_PROGRESS");
        if let Some(p) = progress {
            cmd.env("GPT2C_PROGRESS", p);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // Not a terminal here: silent unless forced on.
    let (quiet_out, quiet_err) = run(None);
    assert_eq!(quiet_err, "");
    let (out, err) = run(Some("1"));
    assert!(
        err.contains("scoring: ") && err.contains("/4831 tokens"),
        "{err}"
    );
    assert!(err.contains("4831/4831 tokens (100%)"), "{err}");
    let strip_time = |s: &str| s.split(';').next().unwrap().to_string();
    assert_eq!(strip_time(&out), strip_time(&quiet_out));
    assert!(out.starts_with("perplexity "), "{out}");
}

#[test]
fn prompts_file_gives_each_prompt_its_own_text_in_order() {
    if !gpt2_vocab() {
        return;
    }
    let prompts =
        "In the beginning\nAnd the LORD spake unto Moses, saying,\n\nThe\nBlessed are they\n";
    let common = ["-n", "20", "--stop", ";", "--threads", "2"];
    for batch in [None, Some("2")] {
        let mut args = vec!["generate", "--prompts", "-", "--seed", "40"];
        args.extend(common);
        if let Some(b) = batch {
            args.extend(["--batch", b]);
        }
        let (ok, out, err) = gpt2(&args, Some(prompts.as_bytes()));
        assert!(ok, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        for (i, (line, prompt)) in lines.iter().zip(prompts.lines()).enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert_eq!(v["index"], i);
            assert_eq!(v["prompt"], prompt);
            // Alone, with seed 40 + i: the same text after the echoed prompt.
            let seed = (40 + i).to_string();
            let mut one = vec![prompt, "--seed", &seed];
            one.extend(common);
            let (ok, alone, err) = gpt2(&one, None);
            assert!(ok, "{err}");
            let text = v["text"].as_str().expect("text");
            assert_eq!(
                format!("{prompt}{text}\n"),
                alone,
                "prompt {i}, batch {batch:?}"
            );
            assert!(v["tokens"].as_u64().expect("tokens") <= 20);
        }
    }
    let (ok, _, err) = gpt2(&["generate", "--batch", "2", "x"], None);
    assert!(!ok && err.contains("--prompts"), "{err}");
    let (ok, _, err) = gpt2(&["generate", "--prompts", "/nonexistent/prompts.txt"], None);
    assert!(!ok && err.contains("cannot read"), "{err}");
}

#[test]
fn several_files_score_as_each_alone() {
    if !gpt2_vocab() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("gpt2-score-many-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let texts = [
        "In the beginning God created the heaven and the earth.",
        "And the earth was without form, and void; and darkness was upon the face of the deep.",
    ];
    let mut files = Vec::new();
    let mut alone = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let f = dir.join(format!("{i}.txt"));
        std::fs::write(&f, t).unwrap();
        let (ok, out, err) = gpt2(&["score", f.to_str().unwrap()], None);
        assert!(ok, "{err}");
        // "perplexity P over N tokens (...)": the figures alone.
        alone.push(out.split(" (").next().unwrap().to_string());
        files.push(f);
    }
    let mut args = vec!["score"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let (ok, out, err) = gpt2(&args, None);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, a) in lines.iter().zip(&alone) {
        assert!(line.starts_with(a.as_str()), "{line} vs alone {a}");
    }
    assert!(lines[2].contains("in 2 files"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_with_streams_reports_the_aggregate() {
    let (ok, out, err) = gpt2(
        &[
            "bench",
            "--streams",
            "3",
            "--prompt-len",
            "4",
            "--gen",
            "6",
            "--runs",
            "0",
        ],
        None,
    );
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(json["streams"], 3);
    let total = json["decode_tokens_per_s_total"].as_f64().unwrap();
    let each = json["decode_tok_s"].as_f64().unwrap();
    assert!((total - 3.0 * each).abs() <= 1e-3 * total, "{json}");
    assert!(json["single_stream_decode_tok_s"].as_f64().unwrap() > 0.0);
    assert!(out.contains("streams     3 decoding together"), "{out}");
}
