//! Rust identifiers for ONNX names: readable, unique, valid.

use std::collections::HashSet;

/// `"/transformer/h.0/ln_1/ReduceMean_output_0"` → `"h0_ln_1_reducemean"`;
/// `"transformer.h.0.attn.c_attn.weight"` → `"h0_attn_c_attn_weight"`; `"123"` → `"v123"`.
pub fn snake(name: &str) -> String {
    let mut s = name.trim_start_matches('/');
    for prefix in ["transformer/", "transformer."] {
        s = s.strip_prefix(prefix).unwrap_or(s);
    }
    let s = s.strip_suffix("_output_0").unwrap_or(s);
    let mut out = String::new();
    let mut prev_us = true;
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // "h.0" reads better as "h0".
        if c == '.'
            && i > 0
            && chars[i - 1] == 'h'
            && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
        {
            continue;
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            prev_us = false;
        } else if !prev_us {
            out.push('_');
            prev_us = true;
        }
    }
    let out = out.trim_end_matches('_').to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("v{out}")
    } else {
        out
    }
}

/// A name saying what a fused node computes, from its module path: the output of
/// `/transformer/h.0/ln_1/LayerNorm` is `h0_ln_1`, of the Linear `/transformer/h.0/attn/c_attn/Gemm`
/// `h0_attn_c_attn`, of `/transformer/h.0/attn/Attention` `h0_attn`, of
/// `/transformer/h.0/mlp/Gelu` `h0_mlp_gelu`. Other ops keep their value's name.
pub fn role(node_name: &str, op: &crate::ops::Op) -> Option<String> {
    use crate::ops::Op;
    let module = node_name.rsplit_once('/')?.0;
    let suffix = match op {
        Op::LayerNorm { .. } | Op::Linear { .. } | Op::Attention(_) => "",
        Op::Gelu | Op::GeluErf => "_gelu",
        _ => return None,
    };
    let m = snake(module);
    (!module.trim_matches('/').is_empty()).then(|| format!("{m}{suffix}"))
}

/// Hands out unique identifiers.
#[derive(Default)]
pub struct Namer {
    used: HashSet<String>,
}

impl Namer {
    /// A valid identifier from `base` not handed out before: `base`, else `base_2`, `base_3`, ...
    /// (a keyword gets a `_` appended first).
    pub fn unique(&mut self, base: String) -> String {
        let base = if syn::parse_str::<syn::Ident>(&base).is_ok() {
            base
        } else {
            format!("{base}_")
        };
        let mut name = base.clone();
        let mut k = 1;
        while !self.used.insert(name.clone()) {
            k += 1;
            name = format!("{base}_{k}");
        }
        name
    }
}

/// The layer a node belongs to, when its name says so (`/transformer/h.7/...`).
pub fn layer_of(node_name: &str) -> Option<usize> {
    let i = node_name.find("h.")?;
    if i > 0 && node_name.as_bytes()[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let digits: String = node_name[i + 2..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_well() {
        assert_eq!(
            snake("/transformer/h.0/ln_1/ReduceMean_output_0"),
            "h0_ln_1_reducemean"
        );
        assert_eq!(
            snake("transformer.h.11.attn.c_attn.weight"),
            "h11_attn_c_attn_weight"
        );
        assert_eq!(snake("onnx::MatMul_593"), "onnx_matmul_593");
        assert_eq!(snake("123"), "v123");
        let mut n = Namer::default();
        assert_eq!(n.unique("type".into()), "type_");
        assert_eq!(n.unique("a".into()), "a");
        assert_eq!(n.unique("a".into()), "a_2");
        assert_eq!(layer_of("/transformer/h.7/attn/Gemm"), Some(7));
        assert_eq!(layer_of("/transformer/ln_f/Add"), None);
        use crate::ops::Op;
        let ln = Op::LayerNorm { eps: 1e-5 };
        assert_eq!(
            role("/transformer/h.0/ln_1/LayerNorm", &ln).unwrap(),
            "h0_ln_1"
        );
        assert_eq!(role("/transformer/ln_f/LayerNorm", &ln).unwrap(), "ln_f");
        let linear = role(
            "/transformer/h.3/mlp/c_fc/Gemm",
            &Op::Linear {
                activation: Default::default(),
            },
        )
        .unwrap();
        assert_eq!(linear, "h3_mlp_c_fc");
        assert_eq!(
            role("/transformer/h.0/mlp/Gelu", &Op::Gelu).unwrap(),
            "h0_mlp_gelu"
        );
        assert_eq!(role("/transformer/h.0/attn/Add", &Op::Identity), None);
        assert_eq!(role("Gelu", &Op::Gelu), None);
    }
}
