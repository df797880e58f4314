//! CPU twins for wgsl/softmax.wgsl: softmax / log_softmax over rows of `n`, in f64.
//!
//! Same masking rule as the kernel: -inf entries give 0 / -inf, and an all -inf row
//! gives all 0 / all -inf (never NaN).

/// (max, Σ exp(x - max)) over the row's entries that are not -inf; `None` if all are.
fn row_stats(row: &[f32]) -> Option<(f64, f64)> {
    let m = row
        .iter()
        .filter(|v| **v != f32::NEG_INFINITY)
        .map(|&v| v as f64)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
    let s = row.iter().filter(|v| **v != f32::NEG_INFINITY).map(|&v| (v as f64 - m).exp()).sum();
    Some((m, s))
}

/// Softmax of each row of `x` ([rows, n], row-major).
pub fn softmax(x: &[f32], n: usize) -> Vec<f32> {
    x.chunks(n)
        .flat_map(|row| {
            let stats = row_stats(row);
            row.iter().map(move |&v| match stats {
                Some((m, s)) if v != f32::NEG_INFINITY => ((v as f64 - m).exp() / s) as f32,
                _ => 0.0,
            })
        })
        .collect()
}

/// Log-softmax of each row of `x` ([rows, n], row-major): x - max - log(Σ exp(x - max)).
pub fn log_softmax(x: &[f32], n: usize) -> Vec<f32> {
    x.chunks(n)
        .flat_map(|row| {
            let stats = row_stats(row);
            row.iter().map(move |&v| match stats {
                Some((m, s)) if v != f32::NEG_INFINITY => (v as f64 - m - s.ln()) as f32,
                _ => f32::NEG_INFINITY,
            })
        })
        .collect()
}
