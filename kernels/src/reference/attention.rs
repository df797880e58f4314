//! CPU twin for wgsl/attention.wgsl: plain two-pass softmax in f64 over a materialised
//! score row — the definition the online-softmax GPU kernel is checked against.

/// Causal grouped-query attention of query rows over a multi-slot KV cache.
///
/// - `q` `[n_rows, n_heads, head_dim]`; row r sits at (slot, position) `rows[r]` and
///   attends positions `0..=position` of its slot.
/// - `k_cache`, `v_cache` `[slots, capacity, n_kv_heads, head_dim]` holding the values the
///   GPU cache holds (for an f16 cache: already rounded, see
///   [`crate::reference::kv_cache::round_f16`]); query head h reads kv head
///   `h / (n_heads / n_kv_heads)`.
/// - returns `[n_rows, n_heads, head_dim]`.
///
/// torch: `F.scaled_dot_product_attention(q, k.repeat_interleave(g), v..., is_causal)`
/// per row, with scale 1/sqrt(head_dim).
#[allow(clippy::too_many_arguments)]
pub fn attention_rows(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    rows: &[(usize, usize)],
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    capacity: usize,
) -> Vec<f32> {
    let scale = 1.0 / (head_dim as f64).sqrt();
    attention_rows_windowed(q, k_cache, v_cache, rows, n_heads, n_kv_heads, head_dim, capacity, None, scale)
}

/// [`attention_rows`] with a sliding window (row at position p attends keys
/// `p + 1 - window ..= p` when `window` is set) and scores scaled by `scale`.
#[allow(clippy::too_many_arguments)]
pub fn attention_rows_windowed(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    rows: &[(usize, usize)],
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    window: Option<usize>,
    scale: f64,
) -> Vec<f32> {
    assert_eq!(q.len(), rows.len() * n_heads * head_dim, "q must be [n_rows, n_heads, head_dim]");
    assert_eq!(n_heads % n_kv_heads, 0, "n_heads must be a multiple of n_kv_heads");
    let row = n_kv_heads * head_dim;
    let group = n_heads / n_kv_heads;
    let mut out = vec![0.0f32; q.len()];
    for (i, &(slot, pos)) in rows.iter().enumerate() {
        assert!(pos < capacity, "position {pos} outside the slot's {capacity} positions");
        let base = slot * capacity * row;
        assert!(k_cache.len() >= base + (pos + 1) * row && v_cache.len() >= base + (pos + 1) * row, "cache too short");
        let n_keys = pos + 1;
        let first = window.map_or(0, |w| n_keys.saturating_sub(w));
        for h in 0..n_heads {
            let qb = (i * n_heads + h) * head_dim;
            let kv = base + (h / group) * head_dim;
            let dot = |j: usize| -> f64 {
                (0..head_dim).map(|d| q[qb + d] as f64 * k_cache[kv + j * row + d] as f64).sum::<f64>() * scale
            };
            let scores: Vec<f64> = (first..n_keys).map(dot).collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = weights.iter().sum();
            for d in 0..head_dim {
                let acc: f64 =
                    weights.iter().enumerate().map(|(j, w)| w * v_cache[kv + (first + j) * row + d] as f64).sum();
                out[qb + d] = (acc / sum) as f32;
            }
        }
    }
    out
}

/// One sequence: query i of `q` `[n_q, n_heads, head_dim]` sits at position
/// `pos_offset + i` of `k_cache`, `v_cache` `[max_ctx, n_kv_heads, head_dim]` (at least
/// `pos_offset + n_q` rows). See [`attention_rows`].
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
    let capacity = k_cache.len() / (n_kv_heads * head_dim);
    let rows: Vec<(usize, usize)> = (0..n_q).map(|i| (0, pos_offset + i)).collect();
    attention_rows(q, k_cache, v_cache, &rows, n_heads, n_kv_heads, head_dim, capacity)
}
