// rope.wgsl — rotary position embedding; one invocation rotates one pair of values of one
// head of one token.
//
// Bindings (in order): x, table, out, params.
//   x, out  f32 [seq, n_heads, head_dim]
//   table   f32 [max_positions, head_dim/2, 2]: (cos, sin) of angle pos * inv_freq[j],
//           precomputed on the CPU (reference::rope::cpu_table) so no GPU trig is used.
// Token t sits at position pos = pos_offset + t. Pair j (0 <= j < head_dim/2) is
//   half-split  (interleaved == 0): a = x[j],  b = x[j + head_dim/2]   HF rotate_half (Llama, Qwen2)
//   interleaved (interleaved == 1): a = x[2j], b = x[2j + 1]            GPT-J, llama.cpp "normal"
// and with (c, s) = table[pos, j]:  out_a = a c - b s,  out_b = b c + a s.
// torch (half-split): out = x * cat(cos, cos) + rotate_half(x) * cat(sin, sin)
// The grid is 2-D when the pair count exceeds one dimension's workgroup limit;
// `row_stride` is the number of invocations per grid row.

struct Params {
    n_pairs: u32,
    half_dim: u32,
    n_heads: u32,
    pos_offset: u32,
    interleaved: u32,
    row_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * p.row_stride;
    if (i >= p.n_pairs) { return; }
    let j = i % p.half_dim;
    let token_head = i / p.half_dim;        // t * n_heads + h
    let t = token_head / p.n_heads;
    let base = token_head * 2u * p.half_dim;
    var ia = base + j;
    var ib = base + j + p.half_dim;
    if (p.interleaved != 0u) {
        ia = base + 2u * j;
        ib = ia + 1u;
    }
    let ti = ((p.pos_offset + t) * p.half_dim + j) * 2u;
    let c = table[ti];
    let s = table[ti + 1u];
    let a = x[ia];
    let b = x[ib];
    out[ia] = a * c - b * s;
    out[ib] = b * c + a * s;
}
