//! The command line the decode benchmarks share: `[threads [width layers]]`, and the
//! matrices one GPT-2 decode step multiplies by (c_attn, attn c_proj, c_fc, mlp c_proj per
//! layer; the LM head apart). 124M by default (768 12); medium 1024 24, large 1280 36, XL
//! 1600 48.

/// Argument `i` as a number, or `default`.
pub fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Sets the thread count from argument 1 (default 2) and returns it, the width and the
/// `[k, n]` of every Linear of a step but the LM head.
pub fn from_args() -> (usize, usize, Vec<(usize, usize)>) {
    let threads = arg(1, 2);
    gpt2rt::set_threads(threads);
    let (d, layers) = (arg(2, 768), arg(3, 12));
    let shapes = (0..layers)
        .flat_map(|_| [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)])
        .collect();
    (threads, d, shapes)
}
