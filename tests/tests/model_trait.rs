//! `gpt2rt::Gpt2Model`: code written once against the trait drives every compiled model in
//! one binary. The exporter fixtures hold the same weights, so decoding a sequence through
//! the trait (prefill, then one row per step) gives the same logits for all of them,
//! whatever graph each exporter wrote.

use gpt2c_tests::compiled::{x_dynamo, x_hf_eager_cache, x_hf_sdpa, x_optimum, x_pt12_opset17};
use gpt2rt::Gpt2Model;

/// The logits rows of `ids` after a prefill of `prefill` tokens and one step per token.
fn decode<M: Gpt2Model>(ids: &[i64], prefill: usize) -> Vec<Vec<f32>> {
    let mut m = M::create();
    assert!(m.incremental());
    m.forward_rows(&ids[..prefill], 0, true).unwrap();
    let mut rows = vec![m.logits_row(prefill - 1).to_vec()];
    for t in prefill..ids.len() {
        m.forward_rows(&ids[t..t + 1], t, true).unwrap();
        rows.push(m.logits_row(t).to_vec());
    }
    m.reset();
    rows
}

#[test]
fn every_exporter_decodes_the_same_logits_through_the_trait() {
    let ids: Vec<i64> = (0..64).map(|i| (i * 379 + 11) % 1000).collect();
    let reference = decode::<x_pt12_opset17::Model>(&ids, 5);
    assert_eq!(reference.len(), 60);
    for (name, rows) in [
        ("x-hf-sdpa", decode::<x_hf_sdpa::Model>(&ids, 5)),
        (
            "x-hf-eager-cache",
            decode::<x_hf_eager_cache::Model>(&ids, 5),
        ),
        ("x-dynamo", decode::<x_dynamo::Model>(&ids, 5)),
        ("x-optimum", decode::<x_optimum::Model>(&ids, 5)),
    ] {
        for (t, (a, b)) in rows.iter().zip(&reference).enumerate() {
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            let scale = b.iter().map(|x| x.abs()).fold(1.0, f32::max);
            assert!(
                worst <= 1e-3 * scale,
                "{name} step {t}: logits differ by {worst}"
            );
        }
    }
    let m = x_hf_sdpa::Model::create();
    let c = m.config();
    assert_eq!(
        (c.n_layer, c.n_head, c.n_embd, c.vocab, c.n_ctx),
        (2, 2, 32, 1000, 64)
    );
    assert_eq!(m.context(), 64);
}
