// order.wgsl — helpers shared by the kernels that compare, rank or sanitise logits
// (argmax, sample, topn, logprobs), prepended to their modules. No entry points.
// `reduce_best` is for workgroups of ORDER_WG invocations.
//
// Values are compared as order-preserving u32 keys, so results do not depend on how a
// driver treats inf or -0.0; ties go to the smaller index.

// Index of "no candidate yet"; a real index is never 0xffffffff.
const NONE: u32 = 0xffffffffu;
// Finite stand-ins for ±inf: no infinity enters the arithmetic (some drivers compile
// with fast math).
const LOWEST: f32 = -3.40282347e38;
const HIGHEST: f32 = 3.40282347e38;
const NEG_INF_BITS: u32 = 0xff800000u;

// Map an f32 to a u32 whose unsigned order is the float order: flip all bits of
// negatives, flip the sign bit of positives. -0.0 maps like +0.0. Keys of non-NaN
// values are >= 0x007fffff (that of -inf), so key 0 never belongs to a real value.
fn order_key(v: f32) -> u32 {
    var bits = bitcast<u32>(v);
    if (bits == 0x80000000u) { bits = 0u; }
    return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

// The value of an order key (inverse of order_key; -0.0 comes back as +0.0).
fn key_value(k: u32) -> f32 {
    return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// A logit with NaN and -inf replaced by LOWEST and +inf by HIGHEST, judged by its bits.
fn sanitize(v: f32) -> f32 {
    let bits = bitcast<u32>(v);
    if (is_nan(v) || bits == NEG_INF_BITS) { return LOWEST; }
    if (bits == 0x7f800000u) { return HIGHEST; }
    return v;
}

// Whether candidate (ka, ia) beats (kb, ib): larger key, or equal key at a smaller index.
fn beats(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
    return ka > kb || (ka == kb && ia < ib);
}

const ORDER_WG: u32 = 256u;
var<workgroup> best_keys: array<u32, ORDER_WG>;
var<workgroup> best_idxs: array<u32, ORDER_WG>;

// The workgroup's best candidate: each of the ORDER_WG invocations passes its own (key,
// index) — index NONE for none — and every invocation gets (key, index) of the winner
// (NONE if nobody had one). Call from uniform control flow.
fn reduce_best(lid: u32, key: u32, idx: u32) -> vec2<u32> {
    best_keys[lid] = key;
    best_idxs[lid] = idx;
    workgroupBarrier();
    for (var s = ORDER_WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s && best_idxs[lid + s] != NONE
            && (best_idxs[lid] == NONE || beats(best_keys[lid + s], best_idxs[lid + s], best_keys[lid], best_idxs[lid]))) {
            best_keys[lid] = best_keys[lid + s];
            best_idxs[lid] = best_idxs[lid + s];
        }
        workgroupBarrier();
    }
    let best = vec2<u32>(best_keys[0], best_idxs[0]);
    workgroupBarrier();
    return best;
}
