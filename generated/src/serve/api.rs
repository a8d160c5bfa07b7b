//! The OpenAI completions API without the I/O: a request body parsed and checked into what
//! the engine runs (every bad field named, as OpenAI's error objects do), and the JSON the
//! API answers with.
//!
//! A field the request leaves out takes the `gpt2` CLI's default (`GenerateOptions::default`:
//! 64 tokens, temperature 0.8, top-k 40, top-p 0.95), so a request equals
//! `gpt2 "prompt" --seed S` with the same options. Fields OpenAI defines that would change
//! the result if ignored (`n`, `best_of`, `echo`, `logprobs`, `suffix`, penalties,
//! `logit_bias`) are accepted only at their neutral value; unknown fields are refused.
//! Extensions: `top_k`, and `ignore_eos` (the CLI's `--ignore-eos`: go on after
//! `<|endoftext|>`, as llama.cpp's server also allows).

use gpt2text::{Finish, GenerateOptions, SamplerConfig};
use serde_json::{json, Map, Value};

/// An error answered as OpenAI does: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// A short machine-readable code, if any.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 naming the field `param`.
    pub fn field(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.to_string()),
            code: None,
        }
    }

    /// An error with `status` that names no field.
    pub fn new(status: u16, kind: &'static str, code: &'static str, message: String) -> ApiError {
        ApiError {
            status,
            message,
            kind,
            param: None,
            code: Some(code),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
        .to_string()
    }
}

/// Server-side bounds on what one request may ask for.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest `max_tokens`.
    pub max_tokens: usize,
    /// The most prompts in one request.
    pub prompts: usize,
}

/// A checked `POST /v1/completions` request.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    /// The prompts, one choice each (a string prompt is a list of one).
    pub prompts: Vec<String>,
    /// Options of prompt 0; prompt i uses seed `options.seed + i`.
    pub options: GenerateOptions,
    /// Stream server-sent events.
    pub stream: bool,
    /// With `stream`: send a last chunk with `usage` (`stream_options.include_usage`).
    pub include_usage: bool,
}

impl CompletionRequest {
    /// The options of prompt `i`: seed `S + i`, as `gpt2 generate --prompts` does.
    pub fn options_for(&self, i: usize) -> GenerateOptions {
        GenerateOptions {
            seed: self.options.seed.wrapping_add(i as u64),
            ..self.options.clone()
        }
    }
}

/// Parses and checks a completions request body; `fresh_seed` is called when it gives none.
pub fn parse_completion(
    body: &[u8],
    limits: Limits,
    fresh_seed: impl FnOnce() -> u64,
) -> Result<CompletionRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request_error",
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            "invalid_json",
            "the body must be a JSON object".into(),
        ));
    };
    for (name, v) in &fields {
        check_known(name, v)?;
    }
    let defaults = GenerateOptions::default();
    let prompts = match fields.get("prompt") {
        None | Some(Value::Null) => vec![String::new()],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(ApiError::field("prompt", "prompt is an empty list"));
            }
            items
                .iter()
                .map(|p| match p {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ApiError::field(
                        "prompt",
                        "prompt must be a string or a list of strings (token-id prompts are not supported)",
                    )),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => {
            return Err(ApiError::field(
                "prompt",
                "prompt must be a string or a list of strings",
            ))
        }
    };
    if prompts.len() > limits.prompts {
        return Err(ApiError::field(
            "prompt",
            format!(
                "{} prompts in one request; this server takes at most {}",
                prompts.len(),
                limits.prompts
            ),
        ));
    }
    let max_tokens = match uint(&fields, "max_tokens")? {
        None => defaults.max_tokens,
        Some(n) if n as u128 > limits.max_tokens as u128 => {
            return Err(ApiError::field(
                "max_tokens",
                format!(
                    "max_tokens is {n}; this server allows at most {}",
                    limits.max_tokens
                ),
            ))
        }
        Some(n) => n as usize,
    };
    let temperature = match number(&fields, "temperature")? {
        None => defaults.sampling.temperature,
        Some(t) if t >= 0.0 && t.is_finite() && t <= 1e6 => t as f32,
        Some(t) => {
            return Err(ApiError::field(
                "temperature",
                format!("temperature must be a number >= 0 (0 is greedy), got {t}"),
            ))
        }
    };
    let top_p = match number(&fields, "top_p")? {
        None => defaults.sampling.top_p,
        Some(p) if p > 0.0 && p <= 1.0 => p as f32,
        Some(p) => {
            return Err(ApiError::field(
                "top_p",
                format!("top_p must be in (0, 1], got {p}"),
            ))
        }
    };
    let top_k = match uint(&fields, "top_k")? {
        None => defaults.sampling.top_k,
        Some(k) => usize::try_from(k).unwrap_or(usize::MAX),
    };
    let seed = match uint(&fields, "seed")? {
        Some(s) => s,
        None => fresh_seed(),
    };
    let stop = match fields.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| match s {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ApiError::field(
                    "stop",
                    "stop must be a string or a list of strings",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::field(
                "stop",
                "stop must be a string or a list of strings",
            ))
        }
    };
    if stop.len() > 4 {
        return Err(ApiError::field("stop", "at most 4 stop strings"));
    }
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::field("stop", "a stop string cannot be empty"));
    }
    let stream = boolean(&fields, "stream")?.unwrap_or(false);
    let end_token = match boolean(&fields, "ignore_eos")? {
        Some(true) => None,
        _ => defaults.end_token,
    };
    let include_usage = match fields.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => {
            if let Some(k) = o.keys().find(|k| *k != "include_usage") {
                return Err(ApiError::field(
                    "stream_options",
                    format!("unknown stream option '{k}' (only include_usage)"),
                ));
            }
            match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ApiError::field(
                        "stream_options",
                        "stream_options.include_usage must be a boolean",
                    ))
                }
            }
        }
        Some(_) => {
            return Err(ApiError::field(
                "stream_options",
                "stream_options must be an object",
            ))
        }
    };
    Ok(CompletionRequest {
        prompts,
        options: GenerateOptions {
            max_tokens,
            sampling: SamplerConfig {
                temperature,
                top_k,
                top_p,
            },
            seed,
            stop,
            end_token,
        },
        stream,
        include_usage,
    })
}

/// Refuses fields that are unknown, or known but asking for what this server does not do.
fn check_known(name: &str, v: &Value) -> Result<(), ApiError> {
    let neutral = match name {
        "prompt" | "max_tokens" | "temperature" | "top_p" | "top_k" | "seed" | "stop"
        | "stream" | "stream_options" | "ignore_eos" => return Ok(()),
        // Names only: one model, and the caller's id for abuse tracking.
        "model" | "user" => return Ok(()),
        "n" | "best_of" => matches!(v, Value::Null) || v.as_u64() == Some(1),
        "echo" => matches!(v, Value::Null | Value::Bool(false)),
        "logprobs" => matches!(v, Value::Null),
        "suffix" => matches!(v, Value::Null) || v.as_str() == Some(""),
        "presence_penalty" | "frequency_penalty" => {
            matches!(v, Value::Null) || v.as_f64() == Some(0.0)
        }
        "logit_bias" => matches!(v, Value::Null) || v.as_object().is_some_and(Map::is_empty),
        _ => return Err(ApiError::field(name, format!("unknown field '{name}'"))),
    };
    if neutral {
        Ok(())
    } else {
        Err(ApiError::field(
            name,
            format!("'{name}' is not supported by this server (only its default value is)"),
        ))
    }
}

fn uint(fields: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::field(name, format!("{name} must be an integer >= 0"))),
    }
}

fn number(fields: &Map<String, Value>, name: &str) -> Result<Option<f64>, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| ApiError::field(name, format!("{name} must be a number"))),
    }
}

fn boolean(fields: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::field(name, format!("{name} must be a boolean"))),
    }
}

/// OpenAI's `finish_reason` for `finish`.
pub fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::EndToken | Finish::StopString(_) => "stop",
        Finish::MaxTokens => "length",
    }
}

/// Token counts of a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (an empty prompt is one: `<|endoftext|>`).
    pub prompt: usize,
    /// Tokens generated.
    pub completion: usize,
}

impl Usage {
    fn json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        })
    }
}

/// What a response is about: its id, creation time and model.
pub struct Head<'a> {
    /// `cmpl-...`.
    pub id: &'a str,
    /// Unix seconds.
    pub created: u64,
    /// The model's name.
    pub model: &'a str,
}

/// The `text_completion` object of a whole response: one choice per prompt, in order.
pub fn completion(head: &Head, choices: &[(String, Finish)], usage: Usage) -> String {
    let choices: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, (text, finish))| {
            json!({"text": text, "index": i, "logprobs": null, "finish_reason": finish_reason(*finish)})
        })
        .collect();
    json!({
        "id": head.id,
        "object": "text_completion",
        "created": head.created,
        "model": head.model,
        "choices": choices,
        "usage": usage.json(),
    })
    .to_string()
}

/// One server-sent event of a stream: text of choice `index`, and its `finish` at its end.
pub fn chunk(head: &Head, index: usize, text: &str, finish: Option<Finish>) -> String {
    let c = json!({
        "id": head.id,
        "object": "text_completion",
        "created": head.created,
        "model": head.model,
        "choices": [{"text": text, "index": index, "logprobs": null,
                     "finish_reason": finish.map(finish_reason)}],
    });
    format!("data: {c}\n\n")
}

/// The stream's usage event (`stream_options.include_usage`): no choices, the counts.
pub fn usage_chunk(head: &Head, usage: Usage) -> String {
    let c = json!({
        "id": head.id,
        "object": "text_completion",
        "created": head.created,
        "model": head.model,
        "choices": [],
        "usage": usage.json(),
    });
    format!("data: {c}\n\n")
}

/// The event that ends every stream.
pub const DONE: &str = "data: [DONE]\n\n";

/// `GET /v1/models`.
pub fn models(model: &str, created: u64) -> String {
    json!({"object": "list", "data": [model_object(model, created)]}).to_string()
}

/// `GET /v1/models/{model}`.
pub fn model_object(model: &str, created: u64) -> Value {
    json!({"id": model, "object": "model", "created": created, "owned_by": "gpt2c"})
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_tokens: 1000,
        prompts: 8,
    };

    fn parse(s: &str) -> Result<CompletionRequest, ApiError> {
        parse_completion(s.as_bytes(), LIMITS, || 99)
    }

    fn param(s: &str) -> Option<String> {
        parse(s).expect_err("an error").param
    }

    #[test]
    fn defaults_are_the_cli_s() {
        let r = parse(r#"{"prompt": "In the beginning", "model": "x"}"#).expect("parses");
        assert_eq!(r.prompts, ["In the beginning"]);
        assert_eq!(
            r.options,
            GenerateOptions {
                seed: 99,
                ..GenerateOptions::default()
            }
        );
        assert!(!r.stream);
        let r = parse("{}").expect("parses");
        assert_eq!(r.prompts, [""]);
    }

    #[test]
    fn every_option_is_read() {
        let r = parse(
            r#"{"prompt": ["a", "b"], "max_tokens": 5, "temperature": 0, "top_p": 0.5,
                "top_k": 3, "seed": 7, "stop": ["x", "y"], "stream": true,
                "stream_options": {"include_usage": true}, "n": 1, "echo": false,
                "logprobs": null, "presence_penalty": 0, "user": "u", "ignore_eos": true}"#,
        )
        .expect("parses");
        assert_eq!(r.prompts, ["a", "b"]);
        assert_eq!(r.options.max_tokens, 5);
        assert_eq!(r.options.sampling.temperature, 0.0);
        assert_eq!(r.options.sampling.top_p, 0.5);
        assert_eq!(r.options.sampling.top_k, 3);
        assert_eq!(r.options.stop, ["x", "y"]);
        assert_eq!(r.options.end_token, None);
        assert_eq!(r.options_for(1).seed, 8);
        assert!(r.stream && r.include_usage);
        assert_eq!(
            parse(r#"{"stop": "z"}"#).expect("parses").options.stop,
            ["z"]
        );
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(
            param(r#"{"max_tokens": -1}"#).as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            param(r#"{"max_tokens": 1001}"#).as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            param(r#"{"max_tokens": "5"}"#).as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            param(r#"{"temperature": -0.5}"#).as_deref(),
            Some("temperature")
        );
        assert_eq!(param(r#"{"top_p": 0}"#).as_deref(), Some("top_p"));
        assert_eq!(param(r#"{"top_k": 1.5}"#).as_deref(), Some("top_k"));
        assert_eq!(param(r#"{"seed": -3}"#).as_deref(), Some("seed"));
        assert_eq!(param(r#"{"stop": [""]}"#).as_deref(), Some("stop"));
        assert_eq!(param(r#"{"stop": 3}"#).as_deref(), Some("stop"));
        assert_eq!(param(r#"{"stream": "yes"}"#).as_deref(), Some("stream"));
        assert_eq!(param(r#"{"prompt": [1, 2]}"#).as_deref(), Some("prompt"));
        assert_eq!(param(r#"{"prompt": []}"#).as_deref(), Some("prompt"));
        assert_eq!(
            param(r#"{"prompt": ["a","a","a","a","a","a","a","a","a"]}"#).as_deref(),
            Some("prompt")
        );
        assert_eq!(param(r#"{"n": 2}"#).as_deref(), Some("n"));
        assert_eq!(param(r#"{"echo": true}"#).as_deref(), Some("echo"));
        assert_eq!(param(r#"{"logprobs": 1}"#).as_deref(), Some("logprobs"));
        assert_eq!(param(r#"{"best_of": 3}"#).as_deref(), Some("best_of"));
        assert_eq!(param(r#"{"max_tokenz": 3}"#).as_deref(), Some("max_tokenz"));
        let e = parse("{not json").expect_err("bad JSON");
        assert_eq!((e.status, e.param), (400, None));
        assert!(parse("[1]").is_err());
    }

    #[test]
    fn error_body_is_openai_s() {
        let e = ApiError::field("top_p", "top_p must be in (0, 1]");
        let v: Value = serde_json::from_str(&e.body()).expect("JSON");
        assert_eq!(v["error"]["param"], "top_p");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["message"], "top_p must be in (0, 1]");
        assert!(v["error"]["code"].is_null());
    }

    #[test]
    fn responses_have_openai_s_shape() {
        let head = Head {
            id: "cmpl-1",
            created: 5,
            model: "m",
        };
        let body = completion(
            &head,
            &[
                ("hi".into(), Finish::MaxTokens),
                ("".into(), Finish::EndToken),
            ],
            Usage {
                prompt: 3,
                completion: 4,
            },
        );
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["choices"][1]["finish_reason"], "stop");
        assert_eq!(v["choices"][1]["index"], 1);
        assert_eq!(v["usage"]["total_tokens"], 7);
        let c = chunk(&head, 0, "x", None);
        assert!(c.starts_with("data: {") && c.ends_with("}\n\n"));
        let v: Value = serde_json::from_str(&c[6..]).expect("JSON");
        assert!(v["choices"][0]["finish_reason"].is_null());
    }
}
