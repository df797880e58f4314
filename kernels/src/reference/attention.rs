//! CPU twin for wgsl/attention.wgsl: plain two-pass softmax in f64 over a materialised
//! score row — the definition the online-softmax GPU kernel is checked against.

/// Causal grouped-query attention over a KV cache.
///
/// - `q` `[n_q, n_heads, head_dim]`; query i sits at position `pos_offset + i` and attends
///   cache rows `0..=pos_offset + i`.
/// - `k_cache`, `v_cache` `[max_ctx, n_kv_heads, head_dim]` (at least `pos_offset + n_q` rows);
///   query head h reads kv head `h / (n_heads / n_kv_heads)`.
/// - returns `[n_q, n_heads, head_dim]`.
///
/// torch: `F.scaled_dot_product_attention(q, k.repeat_interleave(g), v..., is_causal)`
/// with scale 1/sqrt(head_dim).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    n_q: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    pos_offset: usize,
) -> Vec<f32> {
    assert_eq!(q.len(), n_q * n_heads * head_dim, "q must be [n_q, n_heads, head_dim]");
    assert_eq!(n_heads % n_kv_heads, 0, "n_heads must be a multiple of n_kv_heads");
    let row = n_kv_heads * head_dim;
    assert!(k_cache.len() >= (pos_offset + n_q) * row && v_cache.len() >= (pos_offset + n_q) * row, "cache too short");
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut out = vec![0.0f32; q.len()];
    for i in 0..n_q {
        let n_keys = pos_offset + i + 1;
        for h in 0..n_heads {
            let qb = (i * n_heads + h) * head_dim;
            let kv = (h / group) * head_dim;
            let dot = |j: usize| -> f64 {
                (0..head_dim).map(|d| q[qb + d] as f64 * k_cache[j * row + kv + d] as f64).sum::<f64>() * scale
            };
            let scores: Vec<f64> = (0..n_keys).map(dot).collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = weights.iter().sum();
            for d in 0..head_dim {
                let acc: f64 = weights.iter().enumerate().map(|(j, w)| w * v_cache[j * row + kv + d] as f64).sum();
                out[qb + d] = (acc / sum) as f32;
            }
        }
    }
    out
}
