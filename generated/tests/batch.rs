//! Continuous batching on the embedded model: a sequence's text does not depend on what else
//! runs with it. Each prompt is generated alone (`Generator` on a `Runner`) and then in
//! batches of several sizes and compositions (prompts of different lengths, started and
//! finished at different steps, some past the context window), at 1 and 2 threads; every
//! text and token list must be identical.

use gpt2text::{Batch, Event, Finish, GenerateOptions, Generator, Gpt2Tokenizer, END_OF_TEXT};

struct Case {
    prompt: Vec<u32>,
    options: GenerateOptions,
}

fn cases(tok: &Gpt2Tokenizer, ctx: usize) -> Vec<Case> {
    let texts = [
        "In the beginning",
        "And the LORD said unto Moses,",
        "",
        "Blessed are the meek: for they shall inherit the earth. And",
        "The",
        "Then came Jesus to them, and spake unto them, saying, All power is given unto me",
        "For God so loved the world",
    ];
    let mut out: Vec<Case> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut prompt = tok.encode(t).expect("encode");
            if prompt.is_empty() {
                prompt.push(END_OF_TEXT);
            }
            let options = GenerateOptions {
                max_tokens: 8 + 7 * i,
                seed: 100 + i as u64,
                stop: if i == 1 { vec![",".into()] } else { Vec::new() },
                ..GenerateOptions::default()
            };
            Case { prompt, options }
        })
        .collect();
    // One that runs past the context window (the window slides and is prefilled again),
    // greedy and without an end token so it certainly does.
    let long = tok
        .encode("And God said, Let there be light")
        .expect("encode");
    out.push(Case {
        prompt: long,
        options: GenerateOptions {
            max_tokens: ctx + 10,
            seed: 7,
            end_token: None,
            sampling: gpt2text::SamplerConfig {
                temperature: 0.0,
                top_k: 0,
                top_p: 1.0,
            },
            ..GenerateOptions::default()
        },
    });
    out
}

/// Text, tokens and finish of each case, generated alone.
fn alone(tok: &Gpt2Tokenizer, cases: &[Case]) -> Vec<(String, usize, Option<Finish>)> {
    cases
        .iter()
        .map(|c| {
            let mut runner = gpt2::runner();
            let mut g = Generator::new(&mut runner, tok, &c.prompt, &c.options).expect("start");
            let mut text = String::new();
            for piece in g.by_ref() {
                text.push_str(&piece.expect("piece"));
            }
            let t = g.tokens();
            (text, t.generated(), t.finish())
        })
        .collect()
}

/// The same, with the cases submitted to one batch of `slots` slots in `order`, some of them
/// only after `late` steps.
fn batched(
    tok: &Gpt2Tokenizer,
    cases: &[Case],
    slots: usize,
    order: &[usize],
    late: usize,
) -> Vec<(String, usize, Option<Finish>)> {
    let mut batch = Batch::new(gpt2::Model::new(), slots).expect("batch");
    let mut out = vec![(String::new(), 0, None); cases.len()];
    let mut ids = vec![usize::MAX; cases.len()];
    let (first, rest) = order.split_at(order.len() / 2);
    for &i in first {
        ids[i] = batch
            .submit(&cases[i].prompt, &cases[i].options)
            .expect("submit");
    }
    let mut events: Vec<Event> = Vec::new();
    let mut steps = 0;
    loop {
        if steps == late {
            for &i in rest {
                ids[i] = batch
                    .submit(&cases[i].prompt, &cases[i].options)
                    .expect("submit");
            }
        }
        let more = batch.step(Some(tok), &mut events).expect("step");
        steps += 1;
        for e in &events {
            let i = ids.iter().position(|&x| x == e.id).expect("known id");
            out[i].0.push_str(&e.text);
            out[i].1 = e.generated;
            if e.finish.is_some() {
                out[i].2 = e.finish;
            }
        }
        if !more && steps > late {
            break;
        }
        assert!(steps < 10_000, "the batch does not finish");
    }
    out
}

#[test]
fn a_sequence_generates_the_same_alone_and_in_any_batch() {
    if gpt2::GPT2.map(|c| c.vocab) != Some(gpt2text::VOCAB) {
        eprintln!("skipped: the embedded model does not have GPT-2's vocabulary");
        return;
    }
    assert!(gpt2::BATCHING.is_ok(), "{:?}", gpt2::BATCHING);
    let tok = Gpt2Tokenizer::new().expect("tokenizer");
    let ctx = gpt2::INPUTS[0].numel();
    let cases = cases(&tok, ctx);
    for threads in [1, 2] {
        gpt2rt::set_threads(threads);
        let want = alone(&tok, &cases);
        assert!(want.iter().any(|w| w.2 == Some(Finish::StopString(0))));
        assert!(want.iter().any(|w| w.1 > ctx));
        let n = cases.len();
        let forward: Vec<usize> = (0..n).collect();
        let backward: Vec<usize> = (0..n).rev().collect();
        for (slots, order, late) in [
            (n, &forward, 0),
            (n, &backward, 3),
            (3, &forward, 5),
            (1, &backward, 0),
            (2, &forward, 1),
        ] {
            let got = batched(&tok, &cases, slots, order, late);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g, w,
                    "case {i} at {threads} thread(s), {slots} slots, order {order:?}, late {late}"
                );
            }
        }
    }
}

#[test]
fn bad_batches_are_refused() {
    let e = |r: Result<Batch<gpt2::Model>, String>| r.err().expect("an error");
    assert!(e(Batch::new(gpt2::Model::new(), 0)).contains("at least one slot"));
    let mut b = Batch::new(gpt2::Model::new(), 2).expect("batch");
    let vocab = gpt2::GPT2.expect("gpt2").vocab as u32;
    assert!(b
        .submit(&[vocab], &GenerateOptions::default())
        .unwrap_err()
        .contains("outside the vocabulary"));
    assert!(b
        .submit(&[], &GenerateOptions::default())
        .unwrap_err()
        .contains("no tokens"));
    let id = b
        .submit(&[1, 2], &GenerateOptions::default())
        .expect("submit");
    assert!(b.cancel(id));
    assert!(!b.cancel(id));
    assert_eq!(b.pending(), 0);
}
