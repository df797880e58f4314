// weights.wgsl — shared helper prepended to kernels that read weights.
//
// Weights of every dtype are bound as `w: array<u32>` (WGSL reads 32-bit words);
// `load_w(i)` returns element i (row-major) as f32. The override constant W_DTYPE
// picks the storage format when the pipeline is built (`DType::weight_code`):
//   0 f32, 1 f16 (two per word, element 0 in the low half), 2 bf16 (likewise; bf16 is
//   the top half of an f32), 3..10 GGUF block types in kiln's repacked layout:
//   3 Q8_0, 4 Q4_0, 5 Q4_1, 6 Q5_0, 7 Q5_1 (quant_legacy.wgsl), 8 Q4_K, 9 Q5_K,
//   10 Q6_K (quant_k.wgsl).
// PyTorch equivalent: `w.float()[i]` (gguf: `dequantize(w)[i]`).

override W_DTYPE: u32 = 0u;

/// Byte `b` (0-based) of the weight buffer, as an unsigned value 0..255.
fn w_byte(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

/// The f16 stored in the low (`hi == false`) or high half of word `word`.
fn w_half(word: u32, hi: bool) -> f32 {
    let pair = unpack2x16float(w[word]);
    return select(pair.x, pair.y, hi);
}

fn load_w(i: u32) -> f32 {
    switch W_DTYPE {
        case 1u: {
            return w_half(i >> 1u, (i & 1u) == 1u);
        }
        case 2u: {
            let word = w[i >> 1u];
            let bits = select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u);
            return bitcast<f32>(bits);
        }
        case 3u: { return load_q8_0(i); }
        case 4u: { return load_q4_0(i); }
        case 5u: { return load_q4_1(i); }
        case 6u: { return load_q5_0(i); }
        case 7u: { return load_q5_1(i); }
        case 8u: { return load_q4_k(i); }
        case 9u: { return load_q5_k(i); }
        case 10u: { return load_q6_k(i); }
        default: {
            return bitcast<f32>(w[i]);
        }
    }
}
