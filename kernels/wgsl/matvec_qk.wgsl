// matvec_qk.wgsl — GGUF's 256-element "K-quant" super-blocks Q4_K and Q5_K in the
// block matvec (matvec_core.wgsl is the skeleton). Blocks are kiln's repacked layout
// (quant_k.wgsl / kernels/src/quant/kquants.rs), in 32-bit words:
//   Q4_K 36 words:  0 d|dmin, 1..3 scales[12], 4..35 qs[128]
//   Q5_K 44 words:  0 d|dmin, 1..3 scales[12], 4..11 qh[32], 12..43 qs[128]
// Both are whole vec4<u32>s (9 and 11), so they are read 16 bytes at a time. Q6_K's
// 53-word blocks are not: matvec_q6k.wgsl reads them word by word.
//
// Four invocations share a super-block (LANES = 4); lane j owns 64 elements as 16
// groups of 4 and reads its quant words exactly once:
//   Q4_K/Q5_K: elements 64j..64j+63 = sub-blocks 2j (low nibbles of qs words 8j..8j+7)
//     and 2j+1 (their high nibbles); their 6-bit scales and mins come from the scale
//     words (ggml's get_scale_min_k4) and Q5_K's fifth bits are bits 2j, 2j+1 of qh.
// Element value: d·sc·q − dmin·m.
// gguf-py: y = gguf.quants.dequantize(w, type); torch: x @ y.T

@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;

const LANES: u32 = 4u;
const GROUPS: u32 = 16u;
const BLOCK_ELEMS: u32 = 256u;
// vec4<u32>s per super-block.
override BLOCK_UNITS: u32 = select(11u, 9u, W_DTYPE == 8u);

fn x_offset(lane: u32, g: u32) -> u32 {
    return 64u * lane + 4u * g;
}

/// Byte i (0..11) of the packed Q4_K/Q5_K scales held in words s.y, s.z, s.w.
fn scale_byte(s: vec4<u32>, i: u32) -> u32 {
    let v = select(select(s.w, s.z, i < 8u), s.y, i < 4u);
    return (v >> (8u * (i % 4u))) & 0xffu;
}

/// (scale, min) of sub-block sb (0..7), 6-bit integers: ggml's get_scale_min_k4.
fn scale_min(s: vec4<u32>, sb: u32) -> vec2<f32> {
    if (sb < 4u) {
        return vec2<f32>(f32(scale_byte(s, sb) & 63u), f32(scale_byte(s, sb + 4u) & 63u));
    }
    let packed = scale_byte(s, sb + 4u);
    let sc = (packed & 0xfu) | ((scale_byte(s, sb - 4u) >> 6u) << 4u);
    let m = (packed >> 4u) | ((scale_byte(s, sb) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

fn decode_run(base: u32, lane: u32) -> Run {
    var r: Run;
    let head = w[base];
    let dm = unpack2x16float(head.x);
    let lo = scale_min(head, 2u * lane);
    let hi = scale_min(head, 2u * lane + 1u);
    let five = W_DTYPE == 9u;
    let qs = base + select(1u, 3u, five) + 2u * lane;
    var qh = array<vec4<u32>, 2>(vec4<u32>(0u), vec4<u32>(0u));
    if (five) {
        qh[0] = w[base + 1u];
        qh[1] = w[base + 2u];
    }
    for (var v = 0u; v < 2u; v++) {
        let q4 = w[qs + v];
        for (var i = 0u; i < 4u; i++) {
            let g = 4u * v + i; // qs word g of the lane's 8: elements 4g.. (low), 32 + 4g.. (high)
            r.q[g] = byte_fields(q4[i], 0u, 0xfu);
            r.q[g + 8u] = byte_fields(q4[i], 4u, 0xfu);
            if (five) {
                let h = qh[g / 4u][g % 4u];
                r.q[g] += 16.0 * byte_fields(h, 2u * lane, 1u);
                r.q[g + 8u] += 16.0 * byte_fields(h, 2u * lane + 1u, 1u);
            }
            r.scale[g] = dm.x * lo.x;
            r.min[g] = dm.y * lo.y;
            r.scale[g + 8u] = dm.x * hi.x;
            r.min[g + 8u] = dm.y * hi.y;
        }
    }
    return r;
}
