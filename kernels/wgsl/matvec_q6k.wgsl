// matvec_q6k.wgsl — GGUF's Q6_K super-blocks (256 elements, 6-bit quants) in the block
// matvec (matvec_core.wgsl is the skeleton). Blocks are kiln's repacked layout
// (quant_k.wgsl / kernels/src/quant/kquants.rs), 53 words:
//   0 d, 1..32 ql[128], 33..48 qh[64], 49..52 scales[16] (i8)
// 53 words are not whole vec4<u32>s, so unlike matvec_qk.wgsl the weights are read as
// single words, each exactly once by the lane that owns it.
//
// Four invocations share a super-block (LANES = 4); lane j = 2h + c owns 64 elements as
// 16 groups of 4: elements 128h + 32(c + 2i) + l (i = 0, 1, l < 32) are the low (i = 0)
// and high (i = 1) nibbles of ql words 16h + 8c..+7, two bits each of qh words 8h..8h+7,
// and the signed scales 8h + 2(c + 2i) + l / 16.
// Element value: d·sc·(q − 32).
// gguf-py: y = gguf.quants.dequantize(w, type); torch: x @ y.T

@group(0) @binding(1) var<storage, read> w: array<u32>;

const LANES: u32 = 4u;
const GROUPS: u32 = 16u;
const BLOCK_ELEMS: u32 = 256u;
override BLOCK_UNITS: u32 = 53u;

fn x_offset(lane: u32, g: u32) -> u32 {
    let h = lane / 2u;
    let c = lane % 2u;
    return 128u * h + 32u * (c + 2u * (g / 8u)) + 4u * (g % 8u);
}

/// Signed byte i (0..3) of `word` as f32.
fn signed_byte(word: u32, i: u32) -> f32 {
    return f32(bitcast<i32>(word << (24u - 8u * i)) >> 24u);
}

fn decode_run(base: u32, lane: u32) -> Run {
    var r: Run;
    let h = lane / 2u;
    let c = lane % 2u;
    let d = unpack2x16float(w[base]).x;
    // The lane's four signed scales, bytes 2c and 2c + 1 of the half block's two scale
    // words: scales 8h + 2c, +1 (low nibbles) and 8h + 4 + 2c, +1 (high nibbles).
    let s_lo = w[base + 49u + 2u * h];
    let s_hi = w[base + 50u + 2u * h];
    let sc_lo = d * vec2<f32>(signed_byte(s_lo, 2u * c), signed_byte(s_lo, 2u * c + 1u));
    let sc_hi = d * vec2<f32>(signed_byte(s_hi, 2u * c), signed_byte(s_hi, 2u * c + 1u));
    let ql0 = base + 1u + 16u * h + 8u * c;
    let qh0 = base + 33u + 8u * h;
    for (var i = 0u; i < 8u; i++) {
        let ql = w[ql0 + i];
        let qh = w[qh0 + i];
        r.q[i] = byte_fields(ql, 0u, 0xfu) + 16.0 * byte_fields(qh, 2u * c, 3u) - 32.0;
        r.q[i + 8u] = byte_fields(ql, 4u, 0xfu) + 16.0 * byte_fields(qh, 2u * (c + 2u), 3u) - 32.0;
        // Words 0..3 hold l < 16 (the first scale of each pair), 4..7 l ≥ 16.
        r.scale[i] = select(sc_lo.x, sc_lo.y, i >= 4u);
        r.scale[i + 8u] = select(sc_hi.x, sc_hi.y, i >= 4u);
    }
    return r;
}
