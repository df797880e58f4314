// order.wgsl — helpers shared by the kernels that compare, rank or sanitise logits
// (argmax, sample, topn, logprobs), prepended to their modules. No entry points.
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
