// attention.wgsl — causal grouped-query attention of query rows over a multi-slot KV
// cache with an online (flash-attention style) softmax: no score matrix is materialised.
// Prepended by attention_shared.wgsl (workgroup-memory lane sums, any adapter) or
// attention_subgroup.wgsl (subgroup shuffles); each holds the `attend` entry point and
// calls `attend_body` below.
//
// Shapes: q, out f32 [n_rows, n_heads, head_dim]. k_cache, v_cache [slots, capacity,
// n_kv_heads, head_dim], stored f16 (two values per u32 word, KV_F16 = true) or f32.
// Row r is one query token of sequence `slot` at position `pos`: rows[2r], rows[2r+1]
// when per_row == 1, else (slot, pos_offset + r). It attends cache positions 0..=pos of
// its slot, or only the last `window` of them (pos - window < key ≤ pos) when window > 0
// (sliding-window layers). Query head h reads kv head h / (n_heads / n_kv_heads); the
// scores are scaled by `scale` (1/sqrt(head_dim) unless the model says otherwise).
// torch: F.scaled_dot_product_attention(q, k, v, attn_mask=causal [and window] mask,
// scale=scale) with k, v repeated per group.
//
// attend — bindings q, k_cache, v_cache, rows, out, params. One workgroup of WG
// invocations owns (kv head, chunk of ≤ MAX_G query heads of its group, key split, row):
// grid (n_kv_heads * head_chunks, n_splits, n_rows). Every K/V load serves all the query
// heads of the chunk. The invocations form WG / lanes key slots of `lanes` lanes
// (`lanes` a power of two); lane j of a key slot reads cache words j, j + lanes, ... of its
// key's row (≤ WPL words), so consecutive lanes read consecutive bytes. Per pass, key
// slot s takes key base + s:
//   1. each lane dots its words of K with the (scaled) queries of the chunk's heads;
//      `lanes_sum` adds the lane partials up: every lane gets the full scores;
//   2. the key slot's own online-softmax state per head (running max m, sum l,
//      accumulator of the lane's dims) takes in exp(s - m) * V of the key.
// Afterwards the key slots' states are merged through workgroup memory. With one split
// the result (acc / l) goes to out; with several, split s covers keys
// [s * chunk, (s + 1) * chunk) ∩ [first, pos] (first = pos + 1 - window with a window,
// else 0) and writes its unnormalised state
// out[((r * n_heads + h) * n_splits + s) * (head_dim + 2) ..] = (m, l, acc[0..head_dim])
// (an empty split writes m = -1e30, l = 0).
//
// combine — bindings partial, out, params; grid (n_heads, n_rows): merges the splits
// ("flash-decoding"): out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).

struct Params {
    n_rows: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    capacity: u32,
    slot: u32,
    pos_offset: u32,
    per_row: u32,
    group: u32,
    heads_per_wg: u32,
    head_chunks: u32,
    lanes: u32,
    chunk: u32,
    n_splits: u32,
    scale: f32,
    window: u32,   // 0: every position up to the row's own; else only the last `window`
}

// true: the caches hold f16 pairs packed in u32 words; false: f32 bit patterns.
override KV_F16: bool = true;

const WG: u32 = 64u;      // invocations per workgroup
const MAX_G: u32 = 8u;    // query heads per workgroup
const WPL: u32 = 4u;      // cache words a lane reads per key row (at most)
const DPL: u32 = 8u;      // values a lane holds per head = 2 * WPL
const EMPTY_M: f32 = -1e30;   // running max before any key (finite: no inf arithmetic)

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<u32>;
@group(0) @binding(2) var<storage, read> v_cache: array<u32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// Scratch shared by the lane sums (shared path) and the final merge of the key slots.
var<workgroup> scratch_a: array<f32, 512>;   // MAX_G * WG
var<workgroup> scratch_b: array<f32, 512>;
var<workgroup> scratch_c: array<f32, 512>;   // WG * DPL

// Cache words per (position, kv head) row.
fn row_words() -> u32 {
    return select(p.head_dim, p.head_dim / 2u, KV_F16);
}

// The values of cache word w: two f16, or one f32 and a 0.
fn k_word(w: u32) -> vec2<f32> {
    if (KV_F16) { return unpack2x16float(k_cache[w]); }
    return vec2<f32>(bitcast<f32>(k_cache[w]), 0.0);
}

fn v_word(w: u32) -> vec2<f32> {
    if (KV_F16) { return unpack2x16float(v_cache[w]); }
    return vec2<f32>(bitcast<f32>(v_cache[w]), 0.0);
}

// Head dimension held in slot c (0 or 1) of row word w.
fn word_dim(w: u32, c: u32) -> u32 {
    return select(w, 2u * w + c, KV_F16);
}

// (slot, position) of query row r.
fn row_slot_pos(r: u32) -> vec2<u32> {
    if (p.per_row != 0u) { return vec2<u32>(rows[2u * r], rows[2u * r + 1u]); }
    return vec2<u32>(p.slot, p.pos_offset + r);
}

// Everything `attend` does, for virtual invocation index vt: vt / lanes is the key slot,
// vt % lanes the lane. Must run in uniform control flow (barriers, lane sums).
fn attend_body(wid: vec3<u32>, vt: u32) {
    let L = p.lanes;
    let kp = max(WG / L, 1u);       // key slots (L ≤ WG; max keeps the key loop finite)
    let kslot = vt / L;
    let lane = vt % L;
    let kvh = wid.x / p.head_chunks;
    let h_first = kvh * p.group + (wid.x % p.head_chunks) * p.heads_per_wg;
    let ng = min(p.heads_per_wg, (kvh + 1u) * p.group - h_first);   // heads of this workgroup
    let split = wid.y;
    let r = wid.z;
    let sp = row_slot_pos(r);
    let n_keys = sp.y + 1u;
    // Sliding window: keys before `first` are masked out (an empty split writes l = 0).
    let first = select(0u, n_keys - min(p.window, n_keys), p.window != 0u);
    let s_begin = min(split * p.chunk, n_keys);
    let k_end = min(s_begin + p.chunk, n_keys);
    let k_begin = max(s_begin, first);
    let rw = row_words();
    let hd = p.head_dim;

    // This lane's dims of the scaled queries, [g * DPL + 2i + c] for word lane + i*L.
    var qr: array<f32, 64>;   // MAX_G * DPL
    for (var g = 0u; g < MAX_G; g++) {
        let qb = (r * p.n_heads + h_first + g) * hd;
        for (var i = 0u; i < WPL; i++) {
            let w = lane + i * L;
            for (var c = 0u; c < 2u; c++) {
                var x = 0.0;
                let d = word_dim(w, c);
                if (g < ng && w < rw && (KV_F16 || c == 0u)) { x = q[qb + d] * p.scale; }
                qr[g * DPL + 2u * i + c] = x;
            }
        }
    }

    var m: array<f32, MAX_G>;
    var l: array<f32, MAX_G>;
    var acc: array<f32, 64>;   // MAX_G * DPL
    for (var g = 0u; g < MAX_G; g++) { m[g] = EMPTY_M; l[g] = 0.0; }
    for (var j = 0u; j < MAX_G * DPL; j++) { acc[j] = 0.0; }

    // Word index of (slot, position 0, kv head) in the caches; a position adds n_kv_heads * rw.
    let slot_base = (sp.x * p.capacity * p.n_kv_heads + kvh) * rw;
    let pos_stride = p.n_kv_heads * rw;
    for (var base = k_begin; base < k_end; base += kp) {
        let key = base + kslot;
        let valid = key < k_end;
        let kb = slot_base + key * pos_stride;
        var kv: array<f32, DPL>;
        var part: array<f32, MAX_G>;
        for (var g = 0u; g < MAX_G; g++) { part[g] = 0.0; }
        if (valid) {
            for (var i = 0u; i < WPL; i++) {
                let w = lane + i * L;
                var x = vec2<f32>(0.0);
                if (w < rw) { x = k_word(kb + w); }
                kv[2u * i] = x.x;
                kv[2u * i + 1u] = x.y;
            }
            for (var g = 0u; g < MAX_G; g++) {
                var s = 0.0;
                for (var j = 0u; j < DPL; j++) { s += qr[g * DPL + j] * kv[j]; }
                part[g] = s;
            }
        }
        let score = lanes_sum(part, vt, kslot, lane, L, ng);
        if (valid) {
            for (var i = 0u; i < WPL; i++) {
                let w = lane + i * L;
                var x = vec2<f32>(0.0);
                if (w < rw) { x = v_word(kb + w); }
                kv[2u * i] = x.x;
                kv[2u * i + 1u] = x.y;
            }
            for (var g = 0u; g < MAX_G; g++) {
                let m_new = max(m[g], score[g]);
                let alpha = exp(m[g] - m_new);
                let pw = exp(score[g] - m_new);
                l[g] = l[g] * alpha + pw;
                m[g] = m_new;
                for (var j = 0u; j < DPL; j++) { acc[g * DPL + j] = acc[g * DPL + j] * alpha + pw * kv[j]; }
            }
        }
    }

    // Merge the key slots: per head the overall max M, sum L and accumulator.
    workgroupBarrier();
    if (lane == 0u) {
        for (var g = 0u; g < MAX_G; g++) {
            scratch_a[kslot * MAX_G + g] = m[g];
            scratch_b[kslot * MAX_G + g] = l[g];
        }
    }
    workgroupBarrier();
    for (var g = 0u; g < ng; g++) {
        var big_m = EMPTY_M;
        for (var s = 0u; s < kp; s++) { big_m = max(big_m, scratch_a[s * MAX_G + g]); }
        var big_l = 0.0;
        for (var s = 0u; s < kp; s++) { big_l += scratch_b[s * MAX_G + g] * exp(scratch_a[s * MAX_G + g] - big_m); }
        let own = exp(m[g] - big_m);
        for (var j = 0u; j < DPL; j++) { scratch_c[vt * DPL + j] = acc[g * DPL + j] * own; }
        workgroupBarrier();
        let h = h_first + g;
        let single = p.n_splits == 1u;
        let pb = ((r * p.n_heads + h) * p.n_splits + split) * (hd + 2u);
        if (!single && vt == 0u) {
            out[pb] = big_m;
            out[pb + 1u] = big_l;
        }
        for (var d = vt; d < hd; d += WG) {
            // Dim d sits in word w, slot c, held by lane w % L as its word w / L.
            var w = d;
            var c = 0u;
            if (KV_F16) { w = d / 2u; c = d % 2u; }
            let at = (w % L) * DPL + 2u * (w / L) + c;
            var sum = 0.0;
            for (var s = 0u; s < kp; s++) { sum += scratch_c[s * L * DPL + at]; }
            if (single) {
                out[(r * p.n_heads + h) * hd + d] = sum / big_l;
            } else {
                out[pb + 2u + d] = sum;
            }
        }
        workgroupBarrier();
    }
}

// ---- combine: partial, out, params ----
@group(0) @binding(0) var<storage, read> comb_partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> comb_out: array<f32>;
@group(0) @binding(2) var<uniform> comb_p: Params;

@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let h = wid.x;
    let r = wid.y;
    let hd = comb_p.head_dim;
    let stride = hd + 2u;
    let hb = (r * comb_p.n_heads + h) * comb_p.n_splits * stride;
    var m = EMPTY_M;
    for (var s = 0u; s < comb_p.n_splits; s++) { m = max(m, comb_partial[hb + s * stride]); }
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
        comb_out[(r * comb_p.n_heads + h) * hd + d] = a * inv_l;
    }
}
