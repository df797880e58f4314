// quant_k.wgsl — decoders for GGUF's 256-element "K-quant" block types in kiln's
// repacked layout (kernels/src/quant/kquants.rs is the CPU twin and has the details).
// Each `load_qN_k(i)` returns element i of the row-major weight as f32: element i
// lives in block i / 256 (blocks are consecutive) at in-block index e = i % 256.
// PyTorch/gguf equivalent: `gguf.quants.dequantize(w, type).flatten()[i]`.
//
// Repacked blocks (byte offsets; every field starts on a 4-byte boundary):
//   Q4_K, 144 B = 36 words: d f16 @0 | dmin f16 @2 (word 0: d low half, dmin high half)
//                           | scales[12] @4 | qs[128] @16            (= GGUF's layout)
//   Q5_K, 176 B = 44 words: d @0 | dmin @2 | scales[12] @4 | qh[32] @16 | qs[128] @48
//                                                                    (= GGUF's layout)
//   Q6_K, 212 B = 53 words: d f16 @0 (+2 zero bytes) | ql[128] @4 | qh[64] @132
//                           | scales[16] (i8) @196    (GGUF has d last, at byte 208)
//
// Q4_K / Q5_K: sub-block s = e / 32 has a 6-bit scale sc and min m (k_scale_min);
//   y = d * sc * q - dmin * m, q = 4 bits from qs (+ a 5th bit from qh for Q5_K).
// Q6_K: y = d * scales[e / 16] * (q - 32), q = 4 bits from ql + 2 bits from qh.
// All products are exact in f32 (11-bit f16 significand x small integers), so the
// result matches ggml / the CPU twin bit for bit whether or not a compiler fuses them.

const QK_K: u32 = 256u;
const Q4_K_WORDS: u32 = 36u;
const Q5_K_WORDS: u32 = 44u;
const Q6_K_WORDS: u32 = 53u;

/// (sub-block scale, sub-block min), both 0..63, of sub-block j (0..7) from the 12
/// packed bytes starting at byte `sb` — ggml's get_scale_min_k4. Bytes 0..3 hold scales
/// 0..3 and bytes 4..7 mins 0..3 in their low 6 bits; sub-blocks 4..7 take their low
/// nibble from bytes 8..11 (scale low, min high) and their top 2 bits from the top 2
/// bits of bytes 0..3 (scale) and 4..7 (min).
fn k_scale_min(sb: u32, j: u32) -> vec2<u32> {
    if j < 4u {
        return vec2<u32>(w_byte(sb + j) & 63u, w_byte(sb + j + 4u) & 63u);
    }
    let packed = w_byte(sb + j + 4u);
    let sc = (packed & 0xfu) | ((w_byte(sb + j - 4u) >> 6u) << 4u);
    let m = (packed >> 4u) | ((w_byte(sb + j) >> 6u) << 4u);
    return vec2<u32>(sc, m);
}

/// Low 4 bits of element e of a Q4_K / Q5_K block whose qs starts at byte `qs`: for
/// sub-block s = e / 32, the low nibble (even s) or high nibble (odd s) of byte
/// qs + 32 * (s / 2) + e % 32.
fn k_nibble(qs: u32, e: u32) -> u32 {
    let s = e / 32u;
    return (w_byte(qs + 32u * (s / 2u) + e % 32u) >> (4u * (s & 1u))) & 0xfu;
}

/// Q4_K / Q5_K element value from a block starting at word `word0`:
/// d * sc * q - dmin * m (d and dmin share word 0).
fn k_value(word0: u32, e: u32, q: u32) -> f32 {
    let dm = unpack2x16float(w[word0]);
    let sm = k_scale_min(word0 * 4u + 4u, e / 32u);
    return dm.x * f32(sm.x) * f32(q) - dm.y * f32(sm.y);
}

fn load_q4_k(i: u32) -> f32 {
    let word0 = (i / QK_K) * Q4_K_WORDS;
    let e = i % QK_K;
    return k_value(word0, e, k_nibble(word0 * 4u + 16u, e));
}

/// Fifth bit of element e of a Q5_K block whose qh starts at byte `qh`: bit e / 32 of
/// byte qh + e % 32.
fn q5_k_high_bit(qh: u32, e: u32) -> u32 {
    return (w_byte(qh + e % 32u) >> (e / 32u)) & 1u;
}

fn load_q5_k(i: u32) -> f32 {
    let word0 = (i / QK_K) * Q5_K_WORDS;
    let byte0 = word0 * 4u;
    let e = i % QK_K;
    let q = k_nibble(byte0 + 48u, e) | (q5_k_high_bit(byte0 + 16u, e) << 4u);
    return k_value(word0, e, q);
}

/// 6-bit quant (0..63) of element e of a Q6_K block starting at byte `byte0`: with
/// half h = e / 128, group g = (e % 128) / 32 and l = e % 32, the low 4 bits are nibble
/// g / 2 of ql[64h + 32(g % 2) + l] and the high 2 bits are bits 2g, 2g+1 of qh[32h + l].
fn q6_k_quant(byte0: u32, e: u32) -> u32 {
    let h = e / 128u;
    let g = (e % 128u) / 32u;
    let l = e % 32u;
    let lo = (w_byte(byte0 + 4u + 64u * h + 32u * (g & 1u) + l) >> (4u * (g >> 1u))) & 0xfu;
    let hi = (w_byte(byte0 + 132u + 32u * h + l) >> (2u * g)) & 3u;
    return lo | (hi << 4u);
}

/// Signed 8-bit scale of the 16-element group holding element e (scales[e / 16]).
fn q6_k_scale(byte0: u32, e: u32) -> i32 {
    return bitcast<i32>(w_byte(byte0 + 196u + e / 16u) << 24u) >> 24u;
}

fn load_q6_k(i: u32) -> f32 {
    let word0 = (i / QK_K) * Q6_K_WORDS;
    let byte0 = word0 * 4u;
    let e = i % QK_K;
    let d = unpack2x16float(w[word0]).x;
    let q = i32(q6_k_quant(byte0, e)) - 32;
    return d * f32(q6_k_scale(byte0, e)) * f32(q);
}
