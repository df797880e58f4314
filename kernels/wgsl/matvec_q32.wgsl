// matvec_q32.wgsl — GGUF's 32-element block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) in the
// block matvec (matvec_core.wgsl is the skeleton). Blocks are kiln's repacked layout
// (quant_legacy.wgsl / kernels/src/quant/legacy.rs): word 0 holds d (low half) and m
// (high half, Q4_1/Q5_1), Q5 types have qh in word 1, then the quants.
//
// One invocation owns a whole block (LANES = 1), as 8 groups of 4 consecutive elements:
// it reads every word of the block exactly once (d/m, qh, then the 4 or 8 quant words)
// and decodes group g from
//   Q4/Q5:  the low nibbles of qs word g (g < 4, elements 4g..) or the high nibbles of
//           qs word g − 4 (elements 16 + 4(g − 4)..), plus qh bits 4g..4g+3 for Q5;
//   Q8_0:   the 4 signed bytes of qs word g.
// Element value: d · q + m (Q4_1, Q5_1) or d · (q − offset) (Q4_0: 8, Q5_0: 16, Q8_0: 0).
//
// Q8_0 may instead share a block between Q8_LANES = 2, 4 or 8 invocations (an override
// the launcher sets; 1 for the other types): lane l owns elements 32·l/Q8_LANES.. as
// 8/Q8_LANES groups, reads d and its own quant words, so consecutive invocations read
// consecutive words of a row (coalesced on a GPU, and more invocations busy when a row
// has fewer blocks than the workgroup has invocations).
// gguf-py: y = gguf.quants.dequantize(w, type); torch: x @ y.T

@group(0) @binding(1) var<storage, read> w: array<u32>;

override Q8_LANES: u32 = 1u;
override LANES: u32 = select(1u, Q8_LANES, W_DTYPE == 3u);
override GROUPS: u32 = 8u / LANES;
const BLOCK_ELEMS: u32 = 32u;
override BLOCK_UNITS: u32 = select(select(6u, 5u, W_DTYPE == 4u || W_DTYPE == 5u), 9u, W_DTYPE == 3u);

fn x_offset(lane: u32, g: u32) -> u32 {
    return 4u * (lane * GROUPS + g);
}

/// The 4 signed bytes of `word` (byte 0 first) as f32.
fn signed_bytes(word: u32) -> vec4<f32> {
    let v = bitcast<vec4<i32>>(vec4<u32>(word << 24u, word << 16u, word << 8u, word));
    return vec4<f32>(v >> vec4<u32>(24u));
}

/// Bits `first`..`first + 3` of `qh`, each as 16.0 or 0.0 (the quant's fifth bit).
fn fifth_bits(qh: u32, first: u32) -> vec4<f32> {
    let b = (vec4<u32>(qh) >> (vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u);
    return vec4<f32>(b * 16u);
}

fn decode_run(base: u32, lane: u32) -> Run {
    var r: Run;
    let dm = unpack2x16float(w[base]);
    for (var g = 0u; g < GROUPS; g++) {
        r.scale[g] = dm.x;
    }
    if (W_DTYPE == 3u) {
        for (var g = 0u; g < GROUPS; g++) {
            r.q[g] = signed_bytes(w[base + 1u + lane * GROUPS + g]);
        }
        return r;
    }
    let five = W_DTYPE == 6u || W_DTYPE == 7u;
    let qs = base + select(1u, 2u, five);
    let qh = select(0u, w[base + 1u], five);
    // Element value d·q + m = d·q − (−m); the symmetric types subtract their offset.
    let has_m = W_DTYPE == 5u || W_DTYPE == 7u;
    let offset = select(select(8.0, 16.0, five), 0.0, has_m);
    for (var i = 0u; i < 4u; i++) {
        let word = w[qs + i];
        r.q[i] = byte_fields(word, 0u, 0xfu) - offset;
        r.q[i + 4u] = byte_fields(word, 4u, 0xfu) - offset;
        if (five) {
            r.q[i] += fifth_bits(qh, 4u * i);
            r.q[i + 4u] += fifth_bits(qh, 16u + 4u * i);
        }
    }
    if (has_m) {
        for (var g = 0u; g < GROUPS; g++) {
            r.min[g] = -dm.y;
        }
    }
    return r;
}
