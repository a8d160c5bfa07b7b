//! Weight layouts chosen at compile time for the kernels that stream them.
//!
//! A Linear's weight `W [K, N]` is stored as `⌈N / PANEL⌉` column panels, each `K × PANEL`
//! row-major and zero-padded past `N`: `gpt2rt::gemm::linear` reads one panel as a single
//! contiguous stream, whether it multiplies one row (decoding) or many (prefill), and never
//! packs at run time. `PANEL` must equal the runtime's `gemm::NR` (the generated code
//! asserts it at compile time).

use crate::ir::Tensor;

/// Columns per panel.
pub const PANEL: usize = 48;

/// Elements of `W [k, n]` in panel layout.
pub fn panels_len(k: usize, n: usize) -> usize {
    n.div_ceil(PANEL) * k * PANEL
}

/// `W [k, n]` (f32, row-major) in panel layout, as a 1-D tensor.
pub fn pack_panels(w: &Tensor) -> Tensor {
    let (k, n) = (w.shape()[0], w.shape()[1]);
    let src = w.to_vec::<f32>().expect("an f32 weight");
    let mut out = vec![0f32; panels_len(k, n)];
    for (t, panel) in out.chunks_exact_mut(k * PANEL).enumerate() {
        let c0 = t * PANEL;
        let width = (n - c0).min(PANEL);
        for (p, row) in panel.chunks_exact_mut(PANEL).enumerate() {
            row[..width].copy_from_slice(&src[p * n + c0..p * n + c0 + width]);
        }
    }
    Tensor::from_vec(vec![out.len()], out)
}

/// The transpose of `W [n, k]` (f32, row-major) in panel layout: `Wᵀ [k, n]` as a Linear
/// weight, for a tied embedding table that is also the LM head. Row `r` of `W` (an embedding)
/// is column `r` of `Wᵀ`: panel `r / PANEL`, element `p · PANEL + r % PANEL` for `p < k`.
pub fn pack_panels_of_transpose(w: &Tensor) -> Tensor {
    let (n, k) = (w.shape()[0], w.shape()[1]);
    let src = w.to_vec::<f32>().expect("an f32 weight");
    let mut out = vec![0f32; panels_len(k, n)];
    for (r, row) in src.chunks_exact(k).enumerate() {
        let (panel, j) = (r / PANEL, r % PANEL);
        let base = panel * k * PANEL + j;
        for (p, &v) in row.iter().enumerate() {
            out[base + p * PANEL] = v;
        }
    }
    Tensor::from_vec(vec![out.len()], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_hold_every_element_once_and_pad_with_zeros() {
        let (k, n) = (3, 50);
        let w = Tensor::from_vec(vec![k, n], (0..k * n).map(|i| i as f32 + 1.0).collect());
        let p = pack_panels(&w).to_vec::<f32>().unwrap();
        assert_eq!(p.len(), 2 * k * PANEL);
        for i in 0..k {
            for j in 0..n {
                let at = (j / PANEL) * k * PANEL + i * PANEL + j % PANEL;
                assert_eq!(p[at], (i * n + j) as f32 + 1.0);
            }
        }
        assert_eq!(p.iter().filter(|&&x| x == 0.0).count(), k * (2 * PANEL - n));
        // The transpose of W, packed, is W's transpose packed.
        let wt = Tensor::from_vec(
            vec![n, k],
            (0..n * k)
                .map(|i| ((i % k) * n + i / k) as f32 + 1.0)
                .collect(),
        );
        assert_eq!(pack_panels_of_transpose(&wt).to_vec::<f32>().unwrap(), p);
    }
}
