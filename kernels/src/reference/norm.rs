//! CPU twins for wgsl/norm.wgsl, accumulating in f64. `d` = weight.len(); x is `[rows, d]`.

/// RMSNorm: x / sqrt(mean(x²) + eps) * weight, per row.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let d = weight.len();
    x.chunks(d)
        .flat_map(|row| {
            let mean_sq = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
            let inv = 1.0 / (mean_sq + eps as f64).sqrt();
            row.iter().zip(weight).map(move |(&v, &w)| (v as f64 * inv * w as f64) as f32)
        })
        .collect()
}

/// LayerNorm: (x - mean) / sqrt(var + eps) * weight + bias, biased variance, per row.
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32) -> Vec<f32> {
    let d = weight.len();
    x.chunks(d)
        .flat_map(|row| {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            row.iter()
                .zip(weight.iter().zip(bias))
                .map(move |(&v, (&w, &b))| ((v as f64 - mean) * inv * w as f64 + b as f64) as f32)
        })
        .collect()
}
