//! CPU twin for wgsl/matvec.wgsl. (Weight conversions for tests live in
//! `reference::matmul`: `quantize_weights`, `weight_bytes`, `weight_values`.)

/// `y[j] = Σ_k x[k] · w[j, k]` (f64 accumulation), i.e. `x · wᵀ` for one row `x` of
/// length `k` and `w` of shape `[n, k]`.
pub fn matvec(x: &[f32], w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(x.len(), k, "x must hold k elements");
    assert_eq!(w.len(), n * k, "w must hold n*k elements");
    w.chunks_exact(k)
        .map(|row| row.iter().zip(x).map(|(&wv, &xv)| wv as f64 * xv as f64).sum::<f64>() as f32)
        .collect()
}
