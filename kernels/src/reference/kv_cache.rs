//! CPU twins for wgsl/kv_cache.wgsl. Host caches are `[slots, capacity, n_kv_heads,
//! head_dim]` f32 vectors holding what the GPU cache holds: for an f16 cache, values
//! rounded by [`round_f16`].

use crate::reference::rope;

/// What an f16 cache stores for `x`: the nearest f16 (ties to even), as f32.
pub fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// `cache` `[max_ctx, n_kv_heads, head_dim]` with rows `pos..pos + n` replaced by `new`
/// `[n, n_kv_heads, head_dim]` (torch: `cache[pos:pos + n] = new`); `row_elems` =
/// n_kv_heads * head_dim. Returns the updated cache.
pub fn kv_append(cache: &[f32], new: &[f32], row_elems: usize, pos: usize) -> Vec<f32> {
    assert!(row_elems > 0 && new.len().is_multiple_of(row_elems), "new must hold whole rows of row_elems values");
    let start = pos * row_elems;
    assert!(
        start + new.len() <= cache.len(),
        "context full: rows {pos}..{} exceed the cache's {} rows",
        pos + new.len() / row_elems,
        cache.len() / row_elems
    );
    let mut out = cache.to_vec();
    out[start..start + new.len()].copy_from_slice(new);
    out
}

/// Twin of `kv_append_rows`: row r of `k`, `v` `[n_rows, n_kv_heads, head_dim]` goes to
/// (slot, position) `rows[r]` of the host caches (`row_elems` = n_kv_heads * head_dim
/// values per position, `capacity` positions per slot), rounded to f16 when `f16`.
/// torch: `k_cache[slot, pos] = k[r].half()`.
#[allow(clippy::too_many_arguments)]
pub fn append_rows(
    k_cache: &mut [f32],
    v_cache: &mut [f32],
    k: &[f32],
    v: &[f32],
    rows: &[(usize, usize)],
    row_elems: usize,
    capacity: usize,
    f16: bool,
) {
    let store = |x: f32| if f16 { round_f16(x) } else { x };
    for (r, &(slot, pos)) in rows.iter().enumerate() {
        assert!(pos < capacity, "position {pos} outside the slot's {capacity} positions");
        let dst = (slot * capacity + pos) * row_elems;
        for e in 0..row_elems {
            k_cache[dst + e] = store(k[r * row_elems + e]);
            v_cache[dst + e] = store(v[r * row_elems + e]);
        }
    }
}

/// Twin of `rope_kv_append`: returns `q_out` = RoPE of `q` `[n_rows, n_heads, head_dim]`
/// and writes RoPE'd `k` and plain `v` `[n_rows, n_kv_heads, head_dim]` to the host
/// caches as [`append_rows`] does. Row r is rotated at the position of `rows[r]` by
/// `table` ([`rope::cpu_table`]), half-split or `interleaved` as [`rope::rope`].
#[allow(clippy::too_many_arguments)]
pub fn rope_kv_append(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    table: &[f32],
    interleaved: bool,
    rows: &[(usize, usize)],
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    f16: bool,
    k_cache: &mut [f32],
    v_cache: &mut [f32],
) -> Vec<f32> {
    let (qn, kn) = (n_heads * head_dim, n_kv_heads * head_dim);
    let mut q_out = Vec::with_capacity(q.len());
    let mut k_rot = Vec::with_capacity(k.len());
    for (r, &(_, pos)) in rows.iter().enumerate() {
        q_out.extend(rope::rope(&q[r * qn..(r + 1) * qn], 1, n_heads, head_dim, table, pos, interleaved));
        k_rot.extend(rope::rope(&k[r * kn..(r + 1) * kn], 1, n_kv_heads, head_dim, table, pos, interleaved));
    }
    append_rows(k_cache, v_cache, &k_rot, v, rows, kn, capacity, f16);
    q_out
}
