// kv_cache.wgsl — writing into the KV cache.
//
// Caches are [slots, capacity, n_kv_heads, head_dim], stored f16 (two values per u32
// word, KV_F16 = true; written with pack2x16float) or f32 (bit patterns in u32 words).
// Row r of a call is one token of sequence `slot` at position `pos`: rows[2r], rows[2r+1]
// when per_row == 1, else (slot, pos_offset + r).
//
// rope_kv_append — bindings q, k, v, table, rows, q_out, k_cache, v_cache, params.
//   q, q_out f32 [n_rows, n_heads, head_dim]; k, v f32 [n_rows, n_kv_heads, head_dim];
//   table f32 [max_positions, head_dim/2, 2] of (cos, sin) (see rope.wgsl).
//   One invocation computes two adjacent values (2j, 2j+1) of one row of q, k or v:
//   q_out = rope(q), k_cache[slot, pos] = rope(k), v_cache[slot, pos] = v. RoPE as in
//   rope.wgsl: half-split (interleaved == 0) or interleaved pairs; each output value is
//   computed on its own: out[d] = x[d] c - x[d'] s (first of its pair) or x[d] c + x[d'] s.
//   torch: q_out = rope(q, pos); k_cache[slot, pos] = rope(k, pos).half(); v_cache[slot, pos] = v.half()
// kv_append_rows — bindings k, v, rows, k_cache, v_cache, params: the same without RoPE
//   and without q (GPT-2). torch: k_cache[slot, pos] = k.half(); v_cache[slot, pos] = v.half()
// kv_append — bindings new, cache, params: f32 copy of whole rows into one f32 cache
//   [max_ctx, n_kv_heads, head_dim]: cache[dst_offset + i] = new[i] (one element each).
//   torch: cache[pos:pos + n] = new
// Grids are 2-D when the invocations exceed one dimension's workgroup limit;
// `row_stride` is the number of invocations per grid row.

struct Params {
    n_rows: u32,
    q_pairs: u32,      // n_heads * head_dim / 2 (0 without q)
    kv_pairs: u32,     // n_kv_heads * head_dim / 2
    head_dim: u32,
    capacity: u32,
    slot: u32,
    pos_offset: u32,
    per_row: u32,
    interleaved: u32,
    row_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

override KV_F16: bool = true;

const WG: u32 = 256u;

// ---- rope_kv_append ----
@group(0) @binding(0) var<storage, read> ra_q: array<f32>;
@group(0) @binding(1) var<storage, read> ra_k: array<f32>;
@group(0) @binding(2) var<storage, read> ra_v: array<f32>;
@group(0) @binding(3) var<storage, read> ra_table: array<f32>;
@group(0) @binding(4) var<storage, read> ra_rows: array<u32>;
@group(0) @binding(5) var<storage, read_write> ra_q_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> ra_k_cache: array<u32>;
@group(0) @binding(7) var<storage, read_write> ra_v_cache: array<u32>;
@group(0) @binding(8) var<uniform> ra_p: Params;

// ---- kv_append_rows ----
@group(0) @binding(0) var<storage, read> ar_k: array<f32>;
@group(0) @binding(1) var<storage, read> ar_v: array<f32>;
@group(0) @binding(2) var<storage, read> ar_rows: array<u32>;
@group(0) @binding(3) var<storage, read_write> ar_k_cache: array<u32>;
@group(0) @binding(4) var<storage, read_write> ar_v_cache: array<u32>;
@group(0) @binding(5) var<uniform> ar_p: Params;

// Which value an invocation computes: row r, tensor t (0 q, 1 k, 2 v), pair j of the row.
struct Item {
    r: u32,
    t: u32,
    j: u32,
}

fn item(i: u32, p: Params) -> Item {
    let per_row = p.q_pairs + 2u * p.kv_pairs;
    let r = i / per_row;
    var j = i % per_row;
    var t = 0u;
    if (j >= p.q_pairs) {
        j -= p.q_pairs;
        t = 1u + j / p.kv_pairs;
        j = j % p.kv_pairs;
    }
    return Item(r, t, j);
}

// Cache word (f16) or first element (f32) of pair j of the row at (slot, pos).
fn cache_index(p: Params, slot: u32, pos: u32, j: u32) -> u32 {
    let pair = (slot * p.capacity + pos) * p.kv_pairs + j;
    return select(2u * pair, pair, KV_F16);
}

// RoPE'd value of element e (of a [heads, head_dim] row at x_base) at position pos.
fn rope_value(x_is_q: bool, x_base: u32, e: u32, pos: u32) -> f32 {
    let hd = ra_p.head_dim;
    let half = hd / 2u;
    let d = e % hd;
    let head_base = x_base + e - d;
    var partner: u32;
    var f: u32;          // frequency index
    var first: bool;     // first of its pair: x c - x' s, else x c + x' s
    if (ra_p.interleaved != 0u) {
        f = d / 2u;
        first = d % 2u == 0u;
        partner = select(d - 1u, d + 1u, first);
    } else {
        first = d < half;
        f = select(d - half, d, first);
        partner = select(d - half, d + half, first);
    }
    let ti = (pos * half + f) * 2u;
    let c = ra_table[ti];
    let s = ra_table[ti + 1u];
    var x: f32;
    var y: f32;
    if (x_is_q) {
        x = ra_q[x_base + e];
        y = ra_q[head_base + partner];
    } else {
        x = ra_k[x_base + e];
        y = ra_k[head_base + partner];
    }
    return select(x * c + y * s, x * c - y * s, first);
}

@compute @workgroup_size(WG)
fn rope_kv_append(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * ra_p.row_stride;
    if (i >= ra_p.n_rows * (ra_p.q_pairs + 2u * ra_p.kv_pairs)) { return; }
    let it = item(i, ra_p);
    var sp = vec2<u32>(ra_p.slot, ra_p.pos_offset + it.r);
    if (ra_p.per_row != 0u) { sp = vec2<u32>(ra_rows[2u * it.r], ra_rows[2u * it.r + 1u]); }
    let e = 2u * it.j;   // element of the row
    if (it.t == 0u) {
        let base = it.r * 2u * ra_p.q_pairs;
        ra_q_out[base + e] = rope_value(true, base, e, sp.y);
        ra_q_out[base + e + 1u] = rope_value(true, base, e + 1u, sp.y);
        return;
    }
    let base = it.r * 2u * ra_p.kv_pairs;
    var a: f32;
    var b: f32;
    if (it.t == 1u) {
        a = rope_value(false, base, e, sp.y);
        b = rope_value(false, base, e + 1u, sp.y);
    } else {
        a = ra_v[base + e];
        b = ra_v[base + e + 1u];
    }
    let at = cache_index(ra_p, sp.x, sp.y, it.j);
    if (KV_F16) {
        let word = pack2x16float(vec2<f32>(a, b));
        if (it.t == 1u) { ra_k_cache[at] = word; } else { ra_v_cache[at] = word; }
    } else if (it.t == 1u) {
        ra_k_cache[at] = bitcast<u32>(a);
        ra_k_cache[at + 1u] = bitcast<u32>(b);
    } else {
        ra_v_cache[at] = bitcast<u32>(a);
        ra_v_cache[at + 1u] = bitcast<u32>(b);
    }
}

@compute @workgroup_size(WG)
fn kv_append_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * ar_p.row_stride;
    if (i >= ar_p.n_rows * 2u * ar_p.kv_pairs) { return; }
    let it = item(i, ar_p);   // q_pairs == 0: t is 1 (k) or 2 (v)
    var sp = vec2<u32>(ar_p.slot, ar_p.pos_offset + it.r);
    if (ar_p.per_row != 0u) { sp = vec2<u32>(ar_rows[2u * it.r], ar_rows[2u * it.r + 1u]); }
    let src = it.r * 2u * ar_p.kv_pairs + 2u * it.j;
    var a: f32;
    var b: f32;
    if (it.t == 1u) {
        a = ar_k[src];
        b = ar_k[src + 1u];
    } else {
        a = ar_v[src];
        b = ar_v[src + 1u];
    }
    let at = cache_index(ar_p, sp.x, sp.y, it.j);
    if (KV_F16) {
        let word = pack2x16float(vec2<f32>(a, b));
        if (it.t == 1u) { ar_k_cache[at] = word; } else { ar_v_cache[at] = word; }
    } else if (it.t == 1u) {
        ar_k_cache[at] = bitcast<u32>(a);
        ar_k_cache[at + 1u] = bitcast<u32>(b);
    } else {
        ar_v_cache[at] = bitcast<u32>(a);
        ar_v_cache[at + 1u] = bitcast<u32>(b);
    }
}

// ---- kv_append: new, cache, params ----
struct CopyParams {
    n: u32,
    dst_offset: u32,
    row_stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> new_rows: array<f32>;
@group(0) @binding(1) var<storage, read_write> cache: array<f32>;
@group(0) @binding(2) var<uniform> cp: CopyParams;

@compute @workgroup_size(WG)
fn kv_append(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * cp.row_stride;
    if (i >= cp.n) { return; }
    cache[cp.dst_offset + i] = new_rows[i];
}
