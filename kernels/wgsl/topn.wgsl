// topn.wgsl — the N largest logits of each row of x [rows, n] with their log-probs
// (log-probs' top alternatives, beam-search candidates), without sorting the row.
//
//   topn_partial  one workgroup per CHUNK of a row: N rounds, each finding the best
//                 (value, id) of the chunk strictly after the previous round's pick in
//                 the order (value descending, id ascending); also the chunk's online
//                 max and Σ exp(x − max). Writes N candidates and the stats.
//   topn_finish   one workgroup per row: the same N rounds over all chunks' candidates,
//                 and logsumexp from the chunk stats; writes ids [rows, N] and
//                 logprobs [rows, N] = x[id] − logsumexp(x).
// Ties go to the smallest id (like torch.topk on CPU). NaN and −inf count as the lowest
// finite float, +inf as the highest, so no infinity enters the arithmetic.

struct Params {
    n: u32,         // row length
    n_chunks: u32,  // ceil(n / CHUNK)
    rows: u32,
    top: u32,       // N
}

const CHUNK: u32 = 1024u;
const WG: u32 = 256u;
const PER_THREAD: u32 = 4u; // CHUNK / WG
// A "previous pick" before every candidate (no real key is 0xffffffff) and one after
// every candidate (no real key is 0): rounds start at START and stop at END.
const START: vec2<u32> = vec2<u32>(0xffffffffu, 0u);
const END: vec2<u32> = vec2<u32>(0u, 0u);

fn weight(x: f32, m: f32) -> f32 {
    return exp(max(x - m, -200.0));
}

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

// Combine online-softmax stats (m, s): s counts exp(x − m).
fn combine(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * weight(a.x, m) + b.y * weight(b.x, m));
}

// The workgroup's combined stats; every invocation gets them.
fn reduce_stats(lid: u32, st: vec2<f32>) -> vec2<f32> {
    red_m[lid] = st.x;
    red_s[lid] = st.y;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let c = combine(vec2<f32>(red_m[lid], red_s[lid]), vec2<f32>(red_m[lid + s], red_s[lid + s]));
            red_m[lid] = c.x;
            red_s[lid] = c.y;
        }
        workgroupBarrier();
    }
    let total = vec2<f32>(red_m[0], red_s[0]);
    workgroupBarrier();
    return total;
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> cand: array<u32>;   // [rows, n_chunks, N, 2]
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;  // [rows, n_chunks, 2]
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn topn_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.y;
    let lid = lid3.x;
    let start = wg.x * CHUNK;
    var keys: array<u32, PER_THREAD>;
    var ids: array<u32, PER_THREAD>;
    var st = vec2<f32>(LOWEST, 0.0);
    for (var t = 0u; t < PER_THREAD; t++) {
        let i = start + lid + t * WG;
        ids[t] = NONE;
        if (i < p.n) {
            let v = sanitize(x[row * p.n + i]);
            keys[t] = order_key(v);
            ids[t] = i;
            st = combine(st, vec2<f32>(v, 1.0));
        }
    }
    let chunk_stats = reduce_stats(lid, st);
    let chunk = row * p.n_chunks + wg.x;
    if (lid == 0u) {
        stats[chunk * 2u] = chunk_stats.x;
        stats[chunk * 2u + 1u] = chunk_stats.y;
    }
    // N rounds: the next best strictly after the previous pick.
    var prev = START;
    for (var r = 0u; r < p.top; r++) {
        var bk = 0u;
        var bi = NONE;
        for (var t = 0u; t < PER_THREAD; t++) {
            let after = beats(prev.x, prev.y, keys[t], ids[t]);
            if (ids[t] != NONE && after && (bi == NONE || beats(keys[t], ids[t], bk, bi))) {
                bk = keys[t];
                bi = ids[t];
            }
        }
        let best = reduce_best(lid, bk, bi);
        if (lid == 0u) {
            let at = (chunk * p.top + r) * 2u;
            cand[at] = best.x;
            cand[at + 1u] = best.y;
        }
        prev = select(best, END, best.y == NONE);
    }
}

@group(0) @binding(0) var<storage, read> f_cand: array<u32>;
@group(0) @binding(1) var<storage, read> f_stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> f_ids: array<u32>;      // [rows, N]
@group(0) @binding(3) var<storage, read_write> f_logprobs: array<f32>; // [rows, N]
@group(0) @binding(4) var<uniform> f_p: Params;

@compute @workgroup_size(WG)
fn topn_finish(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.x;
    let lid = lid3.x;
    var st = vec2<f32>(LOWEST, 0.0);
    for (var c = lid; c < f_p.n_chunks; c += WG) {
        let at = (row * f_p.n_chunks + c) * 2u;
        st = combine(st, vec2<f32>(f_stats[at], f_stats[at + 1u]));
    }
    let row_stats = reduce_stats(lid, st);
    let lse = row_stats.x + log(row_stats.y);
    let n_cand = f_p.n_chunks * f_p.top;
    var prev = START;
    for (var r = 0u; r < f_p.top; r++) {
        var bk = 0u;
        var bi = NONE;
        for (var c = lid; c < n_cand; c += WG) {
            let at = (row * n_cand + c) * 2u;
            let k = f_cand[at];
            let i = f_cand[at + 1u];
            let after = beats(prev.x, prev.y, k, i);
            if (i != NONE && after && (bi == NONE || beats(k, i, bk, bi))) {
                bk = k;
                bi = i;
            }
        }
        let best = reduce_best(lid, bk, bi);
        if (lid == 0u) {
            let out = row * f_p.top + r;
            f_ids[out] = best.y;
            f_logprobs[out] = key_value(best.x) - lse;
        }
        prev = select(best, END, best.y == NONE);
    }
}
