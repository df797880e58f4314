// quant_legacy.wgsl — decoders for GGUF's 32-element block types in kiln's repacked
// layout (see kernels/src/quant/legacy.rs, which builds it and holds the CPU twin).
//
// `load_<type>(i)` returns element i of the weight (row-major over the whole tensor)
// as f32: block b = i / 32 at word b * (block_bytes / 4) of `w: array<u32>`, in-block
// index j = i % 32. Repacked blocks (byte offsets; little-endian; padding is zero):
//
//   Q8_0  36 B =  9 words: d f16 @0, pad @2, qs[32] i8 @4      x = qs[j] * d
//   Q4_0  20 B =  5 words: d f16 @0, pad @2, qs[16] @4         x = (nib(j) - 8) * d
//   Q4_1  20 B =  5 words: d f16 @0, m f16 @2, qs[16] @4       x = nib(j) * d + m
//   Q5_0  24 B =  6 words: d f16 @0, pad @2, qh u32 @4, qs[16] @8
//                                                    x = (nib(j) + 16 * bit(j) - 16) * d
//   Q5_1  24 B =  6 words: d f16 @0, m f16 @2, qh u32 @4, qs[16] @8
//                                                    x = (nib(j) + 16 * bit(j)) * d + m
//
// nib(j): the low nibble of qs byte j for j < 16, the high nibble of qs byte j - 16 for
// j >= 16 (ggml's order). bit(j): bit j of qh. d and m share word 0 (d the low half).
// gguf-py equivalent: `gguf.quants.dequantize(blocks, GGMLQuantizationType.Q4_0)[i]`.

// ---- shared field helpers -------------------------------------------------------

/// The block scale d: low half of the block's first word.
fn legacy_d(base: u32) -> f32 {
    return w_half(base, false);
}

/// The block minimum m (Q4_1, Q5_1): high half of the block's first word.
fn legacy_m(base: u32) -> f32 {
    return w_half(base, true);
}

/// 4-bit quant of element j from the 16 qs bytes starting at word `qs`.
fn legacy_nibble(qs: u32, j: u32) -> u32 {
    let byte = j & 15u;
    let shift = (byte & 3u) * 8u + (j >> 4u) * 4u;
    return (w[qs + (byte >> 2u)] >> shift) & 0xfu;
}

/// 5-bit quant of element j: the nibble plus bit j of the qh word (at word `qh`, with
/// qs right after it) as bit 4.
fn legacy_q5(qh: u32, j: u32) -> u32 {
    return legacy_nibble(qh + 1u, j) | (((w[qh] >> j) & 1u) << 4u);
}

// ---- one loader per type ----------------------------------------------------------

/// Q8_0: 9 words per block; byte j of the 32 signed quants starting at word 1.
fn load_q8_0(i: u32) -> f32 {
    let base = (i >> 5u) * 9u;
    let j = i & 31u;
    let word = w[base + 1u + (j >> 2u)];
    // Move byte j % 4 to the top, then shift back arithmetically to sign-extend.
    let q = bitcast<i32>(word << (24u - 8u * (j & 3u))) >> 24u;
    return f32(q) * legacy_d(base);
}

/// Q4_0: 5 words per block.
fn load_q4_0(i: u32) -> f32 {
    let base = (i >> 5u) * 5u;
    let q = i32(legacy_nibble(base + 1u, i & 31u)) - 8;
    return f32(q) * legacy_d(base);
}

/// Q4_1: 5 words per block.
fn load_q4_1(i: u32) -> f32 {
    let base = (i >> 5u) * 5u;
    let q = legacy_nibble(base + 1u, i & 31u);
    return f32(q) * legacy_d(base) + legacy_m(base);
}

/// Q5_0: 6 words per block.
fn load_q5_0(i: u32) -> f32 {
    let base = (i >> 5u) * 6u;
    let q = i32(legacy_q5(base + 1u, i & 31u)) - 16;
    return f32(q) * legacy_d(base);
}

/// Q5_1: 6 words per block.
fn load_q5_1(i: u32) -> f32 {
    let base = (i >> 5u) * 6u;
    let q = legacy_q5(base + 1u, i & 31u);
    return f32(q) * legacy_d(base) + legacy_m(base);
}
