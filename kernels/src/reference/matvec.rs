//! CPU twins for the matvec kernels (wgsl/matvec.wgsl and the block matvec,
//! wgsl/matvec_core.wgsl). (Weight conversions for tests live in `reference::matmul`:
//! `quantize_weights`, `weight_bytes`, `weight_values`; random GGUF blocks in
//! `testing::random_blocks`.)

use crate::matvec::Activation;
use crate::reference::{elementwise, norm};

/// `y[j] = Σ_k x[k] · w[j, k]` (f64 accumulation), i.e. `x · wᵀ` for one row `x` of
/// length `k` and `w` of shape `[n, k]`.
pub fn matvec(x: &[f32], w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(x.len(), k, "x must hold k elements");
    assert_eq!(w.len(), n * k, "w must hold n*k elements");
    w.chunks_exact(k).map(|row| row.iter().zip(x).map(|(&wv, &xv)| wv as f64 * xv as f64).sum::<f64>() as f32).collect()
}

/// [`matvec`] for each of the `x.len() / k` rows of x: `[m, k] · [n, k]ᵀ → [m, n]`.
pub fn matvec_rows(x: &[f32], w: &[f32], n: usize, k: usize) -> Vec<f32> {
    x.chunks_exact(k).flat_map(|row| matvec(row, w, n, k)).collect()
}

/// A norm folded in front of the matvec, as [`crate::matvec::FoldedNorm`].
#[derive(Clone, Copy)]
pub enum Norm<'a> {
    /// RMSNorm ([`crate::reference::norm::rms_norm`]).
    Rms {
        /// Scale, length k.
        weight: &'a [f32],
        /// Added to the mean square before the square root.
        eps: f32,
    },
    /// LayerNorm ([`crate::reference::norm::layer_norm`]).
    Layer {
        /// Scale, length k.
        weight: &'a [f32],
        /// Shift, length k.
        bias: &'a [f32],
        /// Added to the variance before the square root.
        eps: f32,
    },
}

/// The twin of `matvec_fused`, composed from the separate ops' twins in the kernel's
/// order: norm → `x · wᵀ` → + bias → activation → + residual. `x` is `[m, k]`, `w`
/// `[n, k]`; the result is `[m, n]`, or `[m, n / 2]` with SwiGLU (gate rows first).
#[allow(clippy::too_many_arguments)]
pub fn fused(
    x: &[f32],
    w: &[f32],
    n: usize,
    k: usize,
    norm: Option<Norm>,
    bias: Option<&[f32]>,
    act: Activation,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let xn = match norm {
        None => x.to_vec(),
        Some(Norm::Rms { weight, eps }) => norm::rms_norm(x, weight, eps),
        Some(Norm::Layer { weight, bias, eps }) => norm::layer_norm(x, weight, bias, eps),
    };
    let mut y = matvec_rows(&xn, w, n, k);
    if let Some(b) = bias {
        y = elementwise::add(&y, b);
    }
    let y = match act {
        Activation::None => y,
        Activation::GeluTanh => elementwise::gelu_tanh(&y),
        Activation::SwiGlu => y
            .chunks_exact(n)
            .flat_map(|row| {
                let (gate, up) = row.split_at(n / 2);
                elementwise::swiglu(gate, up)
            })
            .collect(),
    };
    match residual {
        Some(r) => elementwise::add(&y, r),
        None => y,
    }
}

/// The twin of `Fusion::segments`: `y` `[m, n]` row-major with its columns cut at `a ≤ b`
/// into `[m, a]`, `[m, b - a]`, `[m, n - b]`, stored one after the other.
pub fn segmented(y: &[f32], m: usize, n: usize, [a, b]: [usize; 2]) -> Vec<f32> {
    assert_eq!(y.len(), m * n, "y must hold m*n elements");
    let mut out = Vec::with_capacity(y.len());
    for (start, end) in [(0, a), (a, b), (b, n)] {
        for row in y.chunks_exact(n) {
            out.extend_from_slice(&row[start..end]);
        }
    }
    out
}
