//! Token sampling: greedy, temperature, top-k and top-p (nucleus), with a seeded generator
//! so the same seed and options always give the same tokens. No allocation per token.

/// A small, fast, seedable generator (SplitMix64): good enough for sampling, and stable
/// across platforms and versions, which `gpt2 --seed` promises.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How to pick a token from a row of logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.
    pub top_p: f32,
}

/// Picks tokens from rows of logits with a seeded generator (see the module docs).
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    /// (logit, token) candidates, reused for every token.
    cand: Vec<(f32, u32)>,
    probs: Vec<f64>,
}

/// Index of the largest value (the first on ties); NaNs never win (all NaN: the last
/// index; empty: 0).
///
/// Two passes the compiler vectorizes: the largest value in 16 independent lanes, then
/// the first index holding it. A batched step picks one token per sequence from 50,257
/// logits while the other threads wait, so this is on every step's critical path (a
/// compare-and-branch loop took about 0.15 ms per row).
pub fn argmax(x: &[f32]) -> usize {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            // A NaN `v` compares false and leaves the lane as it was.
            *m = if v > *m { v } else { *m };
        }
    }
    let max = tail
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    // The first chunk holding it (each chunk's test without branches, so it vectorizes),
    // then its place in the chunk. No value compares equal to the maximum only when every
    // value is NaN.
    let first = |c: &[f32]| c.iter().position(|&v| v == max);
    match x
        .chunks(LANES)
        .position(|c| c.iter().fold(false, |hit, &v| hit | (v == max)))
    {
        Some(i) => i * LANES + first(&x[i * LANES..]).unwrap_or(0),
        None => x.len().saturating_sub(1),
    }
}

impl Sampler {
    /// A sampler with buffers for a vocabulary of `vocab` tokens, so sampling does not
    /// allocate.
    pub fn new(cfg: SamplerConfig, seed: u64, vocab: usize) -> Sampler {
        Sampler {
            cfg,
            rng: Rng::new(seed),
            cand: Vec::with_capacity(vocab),
            probs: Vec::with_capacity(vocab),
        }
    }

    /// Picks the next token from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.temperature <= 0.0 {
            return argmax(logits) as u32;
        }
        self.cand.clear();
        self.cand.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (if l.is_nan() { f32::NEG_INFINITY } else { l }, i as u32)),
        );
        // Most likely first; ties by token id, so the order never depends on the sort.
        let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = if self.cfg.top_k == 0 {
            self.cand.len()
        } else {
            self.cfg.top_k.min(self.cand.len())
        };
        if k < self.cand.len() {
            self.cand.select_nth_unstable_by(k - 1, order);
            self.cand.truncate(k);
        }
        self.cand.sort_unstable_by(order);
        let t = self.cfg.temperature as f64;
        let max = self.cand[0].0 as f64;
        self.probs.clear();
        self.probs
            .extend(self.cand.iter().map(|&(l, _)| ((l as f64 - max) / t).exp()));
        let total: f64 = self.probs.iter().sum();
        // Nucleus: the shortest prefix reaching top_p of the mass.
        let mut keep = self.probs.len();
        if self.cfg.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, p) in self.probs.iter().enumerate() {
                acc += p / total;
                if acc >= self.cfg.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        let mass: f64 = self.probs[..keep].iter().sum();
        let mut u = self.rng.next_f64() * mass;
        for i in 0..keep {
            u -= self.probs[i];
            if u < 0.0 {
                return self.cand[i].1;
            }
        }
        self.cand[keep - 1].1
    }
}

/// `-log softmax(logits)[target]`, computed stably in f64: the loss `gpt2 score` sums.
pub fn nll(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    max + sum.ln() - logits[target] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f32, top_k: usize, top_p: f32) -> SamplerConfig {
        SamplerConfig {
            temperature,
            top_k,
            top_p,
        }
    }

    /// The definition: the first index of the largest non-NaN value.
    fn argmax_reference(x: &[f32]) -> usize {
        let mut best = 0;
        for (i, &v) in x.iter().enumerate() {
            if v > x[best] || x[best].is_nan() {
                best = i;
            }
        }
        best
    }

    #[test]
    fn argmax_is_the_first_largest_and_skips_nans() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1.0];
        for len in [0usize, 1, 2, 15, 16, 17, 33, 50257] {
            for _ in 0..40 {
                let x: Vec<f32> = (0..len)
                    .map(|_| match next() % 8 {
                        0 => special[next() as usize % special.len()],
                        // Few distinct values, so ties are common.
                        _ => (next() % 5) as f32 - 2.0,
                    })
                    .collect();
                assert_eq!(argmax(&x), argmax_reference(&x), "{x:?}");
            }
        }
        assert_eq!(argmax(&[f32::NAN; 20]), 19);
        assert_eq!(argmax(&[f32::NAN, f32::NEG_INFINITY, 3.0, 3.0]), 2);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(cfg(0.0, 0, 1.0), 1, 4);
        assert_eq!(s.sample(&[0.1, 3.0, 2.0, 3.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_same_seed_same_tokens() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let mut s = Sampler::new(cfg(1.0, 1, 1.0), 5, 100);
        assert_eq!(s.sample(&logits) as usize, argmax(&logits));
        let run = |seed| {
            let mut s = Sampler::new(cfg(0.9, 40, 0.95), seed, 100);
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn sampling_follows_the_distribution_and_respects_top_p() {
        // Probabilities 0.5, 0.25, 0.125, 0.125 at temperature 1.
        let logits = [2f32.ln() * 3.0, 2f32.ln() * 2.0, 2f32.ln(), 2f32.ln()];
        let mut s = Sampler::new(cfg(1.0, 0, 1.0), 7, 4);
        let mut counts = [0usize; 4];
        for _ in 0..20000 {
            counts[s.sample(&logits) as usize] += 1;
        }
        assert!(
            (counts[0] as f64 / 20000.0 - 0.5).abs() < 0.02,
            "{counts:?}"
        );
        assert!(
            (counts[1] as f64 / 20000.0 - 0.25).abs() < 0.02,
            "{counts:?}"
        );
        let mut s = Sampler::new(cfg(1.0, 0, 0.7), 7, 4);
        for _ in 0..1000 {
            assert!(
                s.sample(&logits) < 2,
                "top-p 0.7 keeps the two most likely tokens"
            );
        }
    }

    #[test]
    fn nll_is_cross_entropy() {
        let l = [0.0f32, 0.0, 0.0, 0.0];
        assert!((nll(&l, 2) - 4f64.ln()).abs() < 1e-12);
    }
}
