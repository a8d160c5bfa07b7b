//! GPT-2 tokenizer: known encodings (checked against a reimplementation of OpenAI's
//! `encoder.py`), exact round trips over text and arbitrary bytes, streaming decoding.

use std::sync::OnceLock;

use gpt2text::tokenizer::{
    Gpt2Tokenizer, StreamDecoder, ENCODER_JSON, END_OF_TEXT, VOCAB, VOCAB_BPE,
};

fn tok() -> &'static Gpt2Tokenizer {
    static TOK: OnceLock<Gpt2Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Gpt2Tokenizer::new().expect("tokenizer builds"))
}

/// SplitMix64: a small seeded generator, so the random cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Strings exercising the pre-tokenizer regex and multi-byte characters.
const SAMPLES: &[&str] = &[
    "",
    "a",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\n\n\n",
    "\t \t",
    "   leading and trailing   ",
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "I'm here, aren't you? We'll see. They've gone; she'd know. It's John's.",
    "12345 67.89 1,000,000 3.14159",
    "🤗",
    "😀 ok",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs",
    "你好，世界",
    "日本語のテキストと한국어 텍스트",
    "e\u{301} a\u{308} n\u{303}\u{323}",
    "Ünïcödé çàfé naïve résumé",
    "Здравствуй, мир! Γειά σου Κόσμε! مرحبا بالعالم שלום עולם",
    "mixed\u{a0}nbsp\u{2003}em space\u{200b}zero width\u{feff}bom",
    "line one\r\nline two\r\n\r\n",
    "code:\n    fn main() {\n        println!(\"hi\");\n    }\n",
    "\u{0}\u{1}\u{7f}\u{80}\u{ff}\u{10ffff}",
    "((((((((((!!!!!!!!!??????...,,,;;;",
    "wordwordwordwordwordwordwordwordwordwordwordwordwordwordwordword",
];

#[test]
fn constants() {
    assert_eq!(END_OF_TEXT, 50256);
    assert_eq!(VOCAB, 50257);
    assert_eq!(tok().token_bytes(END_OF_TEXT), Some(&b"<|endoftext|>"[..]));
    assert_eq!(tok().token_bytes(VOCAB as u32), None);
    assert_eq!(tok().token_bytes(u32::MAX), None);
}

#[test]
fn embedded_file_sizes() {
    assert_eq!(ENCODER_JSON.len(), 1_042_301);
    assert_eq!(VOCAB_BPE.len(), 456_318);
    assert!(VOCAB_BPE.starts_with("#version"));
}

#[test]
fn known_encodings() {
    // Expected ids from OpenAI's encoder.py algorithm on the same files.
    let cases: &[(&str, &[u32])] = &[
        ("Hello world", &[15496, 995]),
        (" the", &[262]),
        ("The quick brown fox", &[464, 2068, 7586, 21831]),
        ("Hello, world!", &[15496, 11, 995, 0]),
        ("<|endoftext|>", &[27, 91, 437, 1659, 5239, 91, 29]),
        ("\n\n", &[628]),
        ("  ", &[220, 220]),
        (" \t\n  x", &[220, 197, 198, 220, 2124]),
        ("🤗", &[8582, 97, 245]),
        ("😀 ok", &[47249, 222, 12876]),
        (
            "你好，世界",
            &[
                19526, 254, 25001, 121, 171, 120, 234, 10310, 244, 45911, 234,
            ],
        ),
        ("e\u{301}", &[68, 136, 223]),
        (
            "I'm here, aren't you?",
            &[40, 1101, 994, 11, 3588, 470, 345, 30],
        ),
        ("12345 67.89", &[10163, 2231, 8275, 13, 4531]),
    ];
    for (text, ids) in cases {
        assert_eq!(tok().encode(text).unwrap(), *ids, "encode({text:?})");
        assert_eq!(tok().encode_bytes(text.as_bytes()).unwrap(), *ids);
        assert_eq!(tok().decode_bytes(ids).unwrap(), text.as_bytes());
    }
    assert_eq!(tok().encode("").unwrap(), Vec::<u32>::new());
}

#[test]
fn end_of_text_is_plain_text() {
    let ids = tok().encode("a<|endoftext|>b").unwrap();
    assert!(!ids.contains(&END_OF_TEXT), "{ids:?}");
}

#[test]
fn round_trip_text() {
    for text in SAMPLES {
        let ids = tok().encode(text).unwrap();
        assert!(ids.iter().all(|&id| (id as usize) < VOCAB));
        assert_eq!(
            tok().decode_bytes(&ids).unwrap(),
            text.as_bytes(),
            "{text:?}"
        );
    }
    // Long runs: whitespace (the regex's lookahead), one long word, everything at once.
    let long = [
        " ".repeat(20_000) + "x",
        "\n".repeat(5_000),
        "ab".repeat(10_000),
        SAMPLES.concat().repeat(20),
    ];
    for text in &long {
        let ids = tok().encode(text).unwrap();
        assert_eq!(tok().decode_bytes(&ids).unwrap(), text.as_bytes());
    }
}

#[test]
fn round_trip_random_text() {
    let pieces: &[&str] = &[
        "a",
        "the",
        " ",
        "  ",
        "\n",
        "\t",
        "'s",
        "'t",
        "'re",
        "1",
        "42",
        ".",
        "!",
        "?",
        "é",
        "e\u{301}",
        "ß",
        "中",
        "文",
        "字",
        "😀",
        "🤗",
        "👍🏽",
        "\u{200d}",
        "\u{a0}",
        "\u{feff}",
        "\u{1c}",
        "Ж",
        "ا",
        "\r\n",
        "<|endoftext|>",
        "\u{10ffff}",
    ];
    let mut rng = Rng(0x5EED_0001);
    for _ in 0..500 {
        let n = rng.below(40);
        let text: String = (0..n).map(|_| pieces[rng.below(pieces.len())]).collect();
        let ids = tok().encode(&text).unwrap();
        assert_eq!(
            tok().decode_bytes(&ids).unwrap(),
            text.as_bytes(),
            "{text:?}"
        );
    }
}

#[test]
fn round_trip_random_bytes() {
    let mut rng = Rng(0x5EED_0002);
    for i in 0..500 {
        let n = rng.below(200);
        let bytes: Vec<u8> = (0..n)
            .map(|_| {
                // Bias towards ASCII and UTF-8 lead/continuation bytes so valid and invalid
                // runs alternate.
                match (i % 3, rng.below(4)) {
                    (0, _) => rng.next() as u8,
                    (_, 0) => 0x80 | (rng.next() as u8 & 0x3F),
                    (_, 1) => 0xC0 | (rng.next() as u8 & 0x3F),
                    _ => b' ' + (rng.next() % 95) as u8,
                }
            })
            .collect();
        let ids = tok().encode_bytes(&bytes).unwrap();
        assert_eq!(tok().decode_bytes(&ids).unwrap(), bytes, "{bytes:?}");
    }
    // Every single byte, and all of them at once.
    for b in 0..=255u8 {
        let ids = tok().encode_bytes(&[b]).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(tok().token_bytes(ids[0]), Some(&[b][..]));
    }
    let all: Vec<u8> = (0..=255u8).collect();
    let ids = tok().encode_bytes(&all).unwrap();
    assert_eq!(tok().decode_bytes(&ids).unwrap(), all);
}

#[test]
fn token_bytes_cover_the_vocabulary() {
    let mut total = 0;
    for id in 0..VOCAB as u32 {
        let bytes = tok().token_bytes(id).unwrap();
        assert!(!bytes.is_empty(), "token {id}");
        total += bytes.len();
    }
    assert!(total > VOCAB);
    assert_eq!(tok().token_bytes(15496), Some(&b"Hello"[..]));
    assert_eq!(tok().token_bytes(995), Some(&b" world"[..]));
}

#[test]
fn decode_rejects_out_of_range_ids() {
    assert!(tok().decode_bytes(&[15496, VOCAB as u32]).is_err());
    assert!(tok().decode_bytes(&[u32::MAX]).is_err());
    let mut stream = StreamDecoder::new();
    assert!(stream.push(tok(), VOCAB as u32).is_err());
}

/// Streams the tokens of `text` one at a time; returns the pieces (including `finish`'s).
fn stream(text: &str) -> Vec<String> {
    let ids = tok().encode(text).unwrap();
    let mut decoder = StreamDecoder::new();
    let mut pieces: Vec<String> = ids
        .iter()
        .map(|&id| decoder.push(tok(), id).unwrap())
        .collect();
    pieces.push(decoder.finish());
    pieces
}

#[test]
fn stream_decoder_holds_split_characters() {
    for text in SAMPLES
        .iter()
        .copied()
        .chain(["🤗", "😀 ok", "你好，世界", "a🤗b🤗🤗 c"])
    {
        let pieces = stream(text);
        assert_eq!(pieces.concat(), text, "{pieces:?}");
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    }
    // "🤗" is three tokens: nothing until the last one completes the character.
    let pieces = stream("🤗");
    assert_eq!(pieces, ["", "", "🤗", ""]);
    // "😀 ok": the emoji completes with the second token, " ok" is the third.
    assert_eq!(stream("😀 ok"), ["", "😀", " ok", ""]);
}

#[test]
fn stream_decoder_random_text() {
    let pieces: &[&str] = &["a", " ", "\n", "é", "中文", "😀", "🤗", "👍🏽", "e\u{301}"];
    let mut rng = Rng(0x5EED_0003);
    for _ in 0..300 {
        let n = rng.below(30);
        let text: String = (0..n).map(|_| pieces[rng.below(pieces.len())]).collect();
        let out = stream(&text);
        assert_eq!(out.concat(), text);
    }
}

#[test]
fn stream_decoder_invalid_bytes() {
    let t = tok();
    let byte = |b: u8| t.encode_bytes(&[b]).unwrap()[0];
    // A stray continuation byte can never become valid: U+FFFD at once.
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(t, byte(0x80)).unwrap(), "\u{FFFD}");
    assert_eq!(d.push(t, byte(b'a')).unwrap(), "a");
    // A lead byte followed by a non-continuation: U+FFFD, then the next character.
    assert_eq!(d.push(t, byte(0xE4)).unwrap(), "");
    assert_eq!(d.push(t, byte(b'x')).unwrap(), "\u{FFFD}x");
    // An incomplete character at the end is flushed by finish.
    assert_eq!(d.push(t, byte(0xF0)).unwrap(), "");
    assert_eq!(d.push(t, byte(0x9F)).unwrap(), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    assert_eq!(d.finish(), "");
    // Streaming arbitrary bytes gives what from_utf8_lossy gives on the whole.
    let mut rng = Rng(0x5EED_0004);
    for _ in 0..300 {
        let n = rng.below(60);
        let bytes: Vec<u8> = (0..n)
            .map(|_| match rng.below(4) {
                0 => 0x80 | (rng.next() as u8 & 0x3F),
                1 => 0xC0 | (rng.next() as u8 & 0x3F),
                2 => rng.next() as u8,
                _ => b'a' + (rng.next() % 26) as u8,
            })
            .collect();
        let ids = t.encode_bytes(&bytes).unwrap();
        let mut d = StreamDecoder::new();
        let mut out = String::new();
        for &id in &ids {
            out += &d.push(t, id).unwrap();
        }
        out += &d.finish();
        assert_eq!(out, String::from_utf8_lossy(&bytes), "{bytes:?}");
    }
}
