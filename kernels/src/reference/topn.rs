//! CPU twin for wgsl/topn.wgsl.

/// For each row of `x` `[rows, n]`: the `top` largest entries as (id, logprob), largest
/// first, ties to the smaller id; logprob = x − logsumexp(row) in f64. NaN and −inf rank
/// lowest (as the lowest finite float).
pub fn top_logprobs(x: &[f32], n: usize, top: usize) -> Vec<Vec<(u32, f64)>> {
    x.chunks(n)
        .map(|row| {
            let v: Vec<f32> = row.iter().map(|&a| super::sample::sanitize(a)).collect();
            let m = v.iter().cloned().fold(f32::MIN, f32::max) as f64;
            let lse = m + v.iter().map(|&a| (a as f64 - m).max(-200.0).exp()).sum::<f64>().ln();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
            order.iter().take(top).map(|&i| (i as u32, v[i] as f64 - lse)).collect()
        })
        .collect()
}
