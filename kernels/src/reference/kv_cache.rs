//! CPU twin for wgsl/kv_cache.wgsl.

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
