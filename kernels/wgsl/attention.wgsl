// attention.wgsl — causal grouped-query attention over a KV cache with an online
// (flash-attention style) softmax: no score matrix is ever materialised.
//
// Shapes (f32): q, out [n_q, n_heads, head_dim]; k_cache, v_cache [max_ctx, n_kv_heads, head_dim].
// Query i sits at position pos_offset + i and attends cache rows 0..=pos_offset + i;
// query head h reads kv head h / (n_heads / n_kv_heads); scale = 1/sqrt(head_dim).
// torch: F.scaled_dot_product_attention(q, k, v, is_causal=True) with k, v repeated per group.
//
// One workgroup of WG threads owns one (query, head) — or, in decode_partial, one
// (head, split of the keys). It walks the keys in tiles of WG:
//   1. thread t scores key t of the tile: s_t = (q · k_t) * scale   (q sits in shared memory)
//   2. every thread reads all of the tile's scores from shared memory for the tile max
//      (broadcast reads, no tree-reduction barriers); m_new = max(m, tile max)
//   3. p_t = exp(s_t - m_new) goes to shared memory
//   4. thread t owns output dims d = t, t + WG, ...: acc[d] = acc[d] * exp(m - m_new)
//      + sum_j p_j V[j, d] (consecutive threads read consecutive V values); l likewise.
// Finally out = acc / l.
//
// Entry points:
//   attention       bindings q, k_cache, v_cache, out, params; grid = n_q * n_heads workgroups
//                   (folded into 2-D; `row_stride` = workgroups per grid row).
//   decode_partial  bindings q, k_cache, v_cache, partial, params; n_q == 1, grid (n_heads, n_splits):
//                   split s covers keys [s * chunk, min((s + 1) * chunk, pos_offset + 1)) and writes
//                   its unnormalised state partial[h, s] = (m, l, acc[0..head_dim]).
//   decode_combine  bindings partial, out, params; grid n_heads: merges the splits
//                   ("flash-decoding"): out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).

struct Params {
    n_q: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    pos_offset: u32,
    row_stride: u32,
    chunk: u32,
    n_splits: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 64u;        // threads per workgroup = keys per tile
const MAX_HD: u32 = 256u;   // largest head_dim (the launcher checks)
const DPT: u32 = 4u;        // output dims per thread = MAX_HD / WG

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<f32>;
@group(0) @binding(2) var<storage, read> v_cache: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> q_sh: array<f32, MAX_HD>;   // the scaled query row
var<workgroup> s_sh: array<f32, WG>;       // the tile's scores
var<workgroup> p_sh: array<f32, WG>;       // the tile's exp(s - m_new)

// Online-softmax state of one thread: running max, running sum, accumulator of its dims.
var<private> m_run: f32;
var<private> l_run: f32;
var<private> acc: array<f32, DPT>;

// q_sh = q[q_base .. q_base + head_dim] * scale (caller barriers before use).
fn load_q(q_base: u32, tid: u32) {
    for (var d = tid; d < p.head_dim; d += WG) {
        q_sh[d] = q[q_base + d] * p.scale;
    }
}

// Score of cache row `key` for kv head offset `kv_off`.
fn score(key: u32, kv_off: u32) -> f32 {
    let kb = key * p.n_kv_heads * p.head_dim + kv_off;
    var s = 0.0;
    for (var d = 0u; d < p.head_dim; d++) {
        s += q_sh[d] * k_cache[kb + d];
    }
    return s;
}

// Walk keys [k_begin, k_end) (non-empty) of kv head `kvh`, leaving m_run, l_run, acc.
// Must be called in uniform control flow (it has barriers).
fn attend(kvh: u32, k_begin: u32, k_end: u32, tid: u32) {
    let hd = p.head_dim;
    let row = p.n_kv_heads * hd;   // floats per cache position
    let kv_off = kvh * hd;
    m_run = 0.0;
    l_run = 0.0;
    for (var i = 0u; i < DPT; i++) { acc[i] = 0.0; }
    for (var t0 = k_begin; t0 < k_end; t0 += WG) {
        let n = min(WG, k_end - t0);   // keys in this tile
        // 1. one score per thread
        var s = 0.0;
        if (tid < n) { s = score(t0 + tid, kv_off); }
        s_sh[tid] = s;
        workgroupBarrier();
        // 2. tile max and new running max (the first tile starts the running max)
        var tile_max = s_sh[0];
        for (var j = 1u; j < n; j++) { tile_max = max(tile_max, s_sh[j]); }
        if (t0 == k_begin) { m_run = tile_max; }
        let m_new = max(m_run, tile_max);
        let alpha = exp(m_run - m_new);
        // 3. probabilities of the tile
        var pj = 0.0;
        if (tid < n) { pj = exp(s - m_new); }
        p_sh[tid] = pj;
        workgroupBarrier();
        // 4. rescale, then accumulate p_j * V[j] over the tile
        var tile_sum = 0.0;
        for (var i = 0u; i < DPT; i++) { acc[i] *= alpha; }
        for (var j = 0u; j < n; j++) {
            let pw = p_sh[j];
            tile_sum += pw;
            let vb = (t0 + j) * row + kv_off;
            for (var i = 0u; i < DPT; i++) {
                let d = tid + i * WG;
                if (d < hd) { acc[i] += pw * v_cache[vb + d]; }
            }
        }
        l_run = l_run * alpha + tile_sum;
        m_run = m_new;
        workgroupBarrier();   // s_sh / p_sh are rewritten by the next tile
    }
}

@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let g = wid.x + wid.y * p.row_stride;   // = query * n_heads + head
    if (g >= p.n_q * p.n_heads) { return; }
    let h = g % p.n_heads;
    let qi = g / p.n_heads;
    let kvh = h / (p.n_heads / p.n_kv_heads);
    let base = g * p.head_dim;
    load_q(base, tid);
    workgroupBarrier();
    attend(kvh, 0u, p.pos_offset + qi + 1u, tid);
    let inv_l = 1.0 / l_run;
    for (var i = 0u; i < DPT; i++) {
        let d = tid + i * WG;
        if (d < p.head_dim) { out[base + d] = acc[i] * inv_l; }
    }
}

@compute @workgroup_size(WG)
fn decode_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let h = wid.x;
    let split = wid.y;
    let kvh = h / (p.n_heads / p.n_kv_heads);
    load_q(h * p.head_dim, tid);
    workgroupBarrier();
    let k_begin = split * p.chunk;
    let k_end = min(k_begin + p.chunk, p.pos_offset + 1u);
    attend(kvh, k_begin, k_end, tid);
    let pb = (h * p.n_splits + split) * (p.head_dim + 2u);
    if (tid == 0u) {
        partial[pb] = m_run;
        partial[pb + 1u] = l_run;
    }
    for (var i = 0u; i < DPT; i++) {
        let d = tid + i * WG;
        if (d < p.head_dim) { partial[pb + 2u + d] = acc[i]; }
    }
}

// ---- combine: partial, out, params ----
@group(0) @binding(0) var<storage, read> comb_partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> comb_out: array<f32>;
@group(0) @binding(2) var<uniform> comb_p: Params;

@compute @workgroup_size(WG)
fn decode_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let h = wid.x;
    let hd = comb_p.head_dim;
    let stride = hd + 2u;
    let hb = h * comb_p.n_splits * stride;
    var m = comb_partial[hb];
    for (var s = 1u; s < comb_p.n_splits; s++) { m = max(m, comb_partial[hb + s * stride]); }
    var l = 0.0;
    for (var s = 0u; s < comb_p.n_splits; s++) {
        l += comb_partial[hb + s * stride + 1u] * exp(comb_partial[hb + s * stride] - m);
    }
    let inv_l = 1.0 / l;
    for (var d = tid; d < hd; d += WG) {
        var a = 0.0;
        for (var s = 0u; s < comb_p.n_splits; s++) {
            let sb = hb + s * stride;
            a += comb_partial[sb + 2u + d] * exp(comb_partial[sb] - m);
        }
        comb_out[h * hd + d] = a * inv_l;
    }
}
