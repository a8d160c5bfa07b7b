//! `Op::cost`: the FLOP and byte counts `gpt2c inspect` reports, on hand-computed cases.

use gpt2c::ir::DType;
use gpt2c::ops::attention::Attention;
use gpt2c::ops::{BinaryOp, Cost, InferIn, Op};

fn f32s(shape: &[usize]) -> Option<InferIn<'_>> {
    Some(InferIn {
        dtype: DType::F32,
        shape,
        konst: None,
    })
}

/// The cost with outputs as `infer` gives them.
fn cost(op: &Op, ins: &[Option<InferIn>]) -> Cost {
    let outs = op.infer(ins).unwrap();
    op.cost(ins, &outs)
}

#[test]
fn matmul_and_gemm_count_two_flops_per_multiply_add() {
    // [2,3,4] x [4,5] -> [2,3,5]: 30 dot products of length 4.
    let c = cost(&Op::MatMul, &[f32s(&[2, 3, 4]), f32s(&[4, 5])]);
    assert_eq!(c.flops, 2 * 4 * 30);
    assert_eq!(c.bytes, (24 + 20 + 30) * 4);
    let gemm = |trans_a, alpha| Op::Gemm {
        alpha,
        beta: 1.0,
        trans_a,
        trans_b: false,
    };
    // [3,4] x [4,5] + C[5]: one more add per output element.
    let c = cost(
        &gemm(false, 1.0),
        &[f32s(&[3, 4]), f32s(&[4, 5]), f32s(&[5])],
    );
    assert_eq!(c.flops, 2 * 4 * 15 + 15);
    assert_eq!(c.bytes, (12 + 20 + 5 + 15) * 4);
    // transA: K is A's first dim; alpha != 1 scales every output; no C.
    let c = cost(&gemm(true, 0.5), &[f32s(&[4, 3]), f32s(&[4, 5])]);
    assert_eq!(c.flops, 2 * 4 * 15 + 15);
}

#[test]
fn causal_attention_counts_only_visible_keys() {
    let (q, k) = ([1, 2, 4, 8], [1, 2, 4, 8]);
    let mut a = Attention::dense(0.125, true, -10000.0, &q, &k, &k, false).unwrap();
    let ins = [f32s(&q), f32s(&k), f32s(&k)];
    // 2 heads; rows see 1 + 2 + 3 + 4 = 10 keys; 4·D + 6 flops per (query, key).
    assert_eq!(cost(&Op::Attention(a), &ins).flops, 2 * 10 * (4 * 8 + 6));
    a.causal = false;
    assert_eq!(cost(&Op::Attention(a), &ins).flops, 2 * 16 * (4 * 8 + 6));
    assert_eq!(cost(&Op::Attention(a), &ins).bytes, 4 * 64 * 4);
    // Two new queries against six keys (a decode step with a cache): 5 + 6 visible.
    let (q, k) = ([1, 1, 2, 8], [1, 1, 6, 8]);
    let a = Attention::dense(0.125, true, -10000.0, &q, &k, &k, false).unwrap();
    let c = cost(&Op::Attention(a), &[f32s(&q), f32s(&k), f32s(&k)]);
    assert_eq!(c.flops, 11 * (4 * 8 + 6));
    // Bytes are the views', not the tensors they sit in: q read from a wider buffer.
    let mut a = a;
    a.q.strides = [48, 8, 24, 1];
    let c = cost(&Op::Attention(a), &[f32s(&[1, 2, 24]), f32s(&k), f32s(&k)]);
    assert_eq!(c.bytes, 4 * 8 * (2 * 2 + 2 * 6));
}

#[test]
fn elementwise_norms_and_data_movement() {
    // Broadcast add: one flop per output, the small operand read once.
    let c = cost(&Op::Binary(BinaryOp::Add), &[f32s(&[2, 3]), f32s(&[3])]);
    assert_eq!(
        c,
        Cost {
            flops: 6,
            bytes: (6 + 3 + 6) * 4
        }
    );
    let c = cost(
        &Op::LayerNorm { eps: 1e-5 },
        &[f32s(&[4, 8]), f32s(&[8]), f32s(&[8])],
    );
    assert_eq!(
        c,
        Cost {
            flops: 8 * 32,
            bytes: (32 + 8 + 8 + 32) * 4
        }
    );
    assert_eq!(cost(&Op::Gelu, &[f32s(&[10])]).flops, 90);
    // Transpose moves its bytes and computes nothing; a reshape is a view.
    let c = cost(&Op::Transpose { perm: None }, &[f32s(&[2, 3])]);
    assert_eq!(
        c,
        Cost {
            flops: 0,
            bytes: 48
        }
    );
    let reshape = Op::Reshape { allow_zero: false };
    assert_eq!(
        reshape.cost(&[f32s(&[2, 3]), None], &[(DType::F32, vec![6])]),
        Cost::default()
    );
}
