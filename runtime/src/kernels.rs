//! The kernels generated code calls (`kernels::<fn>`): the top layer of the runtime, a
//! facade. Each entry point is a re-export or a thin wrapper of the kernel family that
//! implements it (`matmul`, `gemm`, `bf16`, `q8`, `q4`, `attention`, `kv`, `vmath`,
//! `broadcast`, `copy`); no module of the crate imports this one.
//!
//! Kernels are plain functions over slices with explicit sizes. Shapes and strides are
//! compile-time constants in the generated code; these functions only check them in debug
//! builds. Strides are in elements. No kernel allocates: decoding a token allocates nothing.

pub use crate::attention::{
    attention, attention_at, attention_kv, attention_runs, AttentionDims, HeadLayout, HeadRows,
};
pub use crate::broadcast::{broadcast, map, select};
pub use crate::copy::{copy_strided, gather, gather_f16, gather_panels};
pub use crate::layout::{Layout, MAX_RANK};
pub use crate::linear::Activation;
pub use crate::matmul::{linear_unpacked, matmul, matmul_reference};
pub use crate::vmath::{mean_axis, softmax};

/// `y = act(x·W + bias)` for `m` rows, `W` `[k, n]` in the compiler's column-panel layout
/// (`gemm::linear`), stored as f32 or f16. Each thread applies the activation to the
/// columns it just computed, while they are in cache.
#[allow(clippy::too_many_arguments)]
pub fn linear<E: crate::elem::PanelElem>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[E],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    crate::gemm::linear(x, m, k, w, bias, act, y, n)
}

/// `linear` over bf16 panels of row pairs, inputs rounded to bf16 (`bf16::linear`).
#[allow(clippy::too_many_arguments)]
pub fn linear_bf16(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[crate::elem::Bf16],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    crate::bf16::linear(x, m, k, w, bias, act, y, n)
}

/// `linear` over int8 panels with a scale per column: activations quantized per row,
/// integer products (`q8::linear`).
#[allow(clippy::too_many_arguments)]
pub fn linear_q8(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[crate::elem::Q8],
    scales: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    crate::q8::linear(x, m, k, w, scales, bias, act, y, n)
}

/// `gather_panels` over int8 panels (`q8`): row `r` is the LM head's column `r`, times
/// its scale.
pub fn gather_panels_q8(
    w: &[crate::elem::Q8],
    scales: &[f32],
    rows: usize,
    width: usize,
    ids: &[i64],
    out: &mut [f32],
) -> Result<(), String> {
    crate::copy::gather_rows_with(rows, width, ids, out, |r, o| {
        crate::q8::gather_row(w, scales, rows, width, r, o)
    })
}

/// `linear` over 4-bit panels with an int8 scale per block and column and an f32 unit per
/// column: activations
/// quantized per row as for q8, integer products (`q4::linear`).
#[allow(clippy::too_many_arguments)]
pub fn linear_q4(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[crate::elem::Q4],
    scales: &[u8],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    n: usize,
) {
    crate::q4::linear(x, m, k, w, scales, bias, act, y, n)
}

/// `gather_panels` over 4-bit panels (`q4`): row `r` is the LM head's column `r`, each
/// value times its block's scale and the column's unit.
pub fn gather_panels_q4(
    w: &[crate::elem::Q4],
    scales: &[u8],
    rows: usize,
    width: usize,
    ids: &[i64],
    out: &mut [f32],
) -> Result<(), String> {
    crate::copy::gather_rows_with(rows, width, ids, out, |r, o| {
        crate::q4::gather_row(w, scales, rows, width, r, o)
    })
}

/// `gather_panels` over bf16 panels of row pairs (`bf16`).
pub fn gather_panels_bf16(
    w: &[crate::elem::Bf16],
    rows: usize,
    width: usize,
    ids: &[i64],
    out: &mut [f32],
) -> Result<(), String> {
    crate::copy::gather_rows_with(rows, width, ids, out, |r, o| {
        crate::bf16::gather_row(w, rows, width, r, o)
    })
}

/// LayerNorm of each of `rows` rows of `n` elements: `(x − mean) / √(var + eps) · γ + β`.
pub fn layer_norm(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    out: &mut [f32],
    rows: usize,
    n: usize,
    eps: f32,
) {
    debug_assert!(
        x.len() == rows * n && out.len() == x.len() && gamma.len() == n && beta.len() == n
    );
    crate::vmath::layer_norm(&x[..rows * n], gamma, beta, &mut out[..rows * n], eps);
}

/// GPT-2's GELU: `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`.
pub fn gelu(x: f32) -> f32 {
    crate::vmath::gelu(x)
}

/// `out[i] = gelu(x[i])`, vectorized and on all threads.
pub fn gelu_slice(x: &[f32], out: &mut [f32]) {
    crate::vmath::gelu_slice(x, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_panels_reads_rows_of_a_transposed_panel_table() {
        const NR: usize = crate::layout::NR;
        let (rows, width) = (100usize, 5usize);
        let table: Vec<f32> = (0..rows * width).map(|i| i as f32).collect();
        let mut panels = vec![0f32; rows.div_ceil(NR) * width * NR];
        for r in 0..rows {
            for p in 0..width {
                panels[(r / NR) * width * NR + p * NR + r % NR] = table[r * width + p];
            }
        }
        let ids = [0i64, 47, 48, 99, -1];
        let (mut want, mut got) = (vec![0f32; 25], vec![0f32; 25]);
        gather(&table, 1, rows, width, &ids, &mut want).unwrap();
        gather_panels(&panels, rows, width, &ids, &mut got).unwrap();
        assert_eq!(got, want);
        assert!(gather_panels(&panels, rows, width, &[100], &mut got[..5]).is_err());
        // int8 panels with a scale per row (an LM head stored as q8): row r times scales[r].
        let q: Vec<i8> = (0..width * rows)
            .map(|i| ((i % 255) as i32 - 127) as i8)
            .collect();
        let scales: Vec<f32> = (0..rows.div_ceil(NR) * NR)
            .map(|r| 0.5 + r as f32)
            .collect();
        let wq = crate::q8::pack(&q, width, rows);
        gather_panels_q8(&wq, &scales, rows, width, &ids, &mut got).unwrap();
        for (i, &id) in ids.iter().enumerate() {
            let r = if id < 0 { id + rows as i64 } else { id } as usize;
            for p in 0..width {
                assert_eq!(got[i * width + p], q[p * rows + r] as f32 * scales[r]);
            }
        }
        assert!(gather_panels_q8(&wq, &scales, rows, width, &[-101], &mut got[..5]).is_err());
    }
}
