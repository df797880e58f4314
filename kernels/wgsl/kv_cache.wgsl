// kv_cache.wgsl — KV cache append; one invocation copies one element.
//
// Bindings (in order): new, cache, params.
//   new    f32 [n, n_kv_heads, head_dim]
//   cache  f32 [max_ctx, n_kv_heads, head_dim], written (never read) at rows pos..pos+n:
//   cache[dst_offset + i] = new[i], dst_offset = pos * n_kv_heads * head_dim.
// torch: cache[pos:pos + n] = new
// The grid is 2-D when n exceeds one dimension's workgroup limit; `row_stride` is the
// number of invocations per grid row.

struct Params {
    n: u32,
    dst_offset: u32,
    row_stride: u32,
    _pad: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> new_rows: array<f32>;
@group(0) @binding(1) var<storage, read_write> cache: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn kv_append(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * p.row_stride;
    if (i >= p.n) { return; }
    cache[p.dst_offset + i] = new_rows[i];
}
