// weights.wgsl — shared helper prepended to kernels that read weights.
//
// Weights of every dtype are bound as `w: array<u32>` (WGSL reads 32-bit words);
// `load_w(i)` returns element i as f32. The override constant W_DTYPE picks the
// storage format when the pipeline is built: 0 = f32, 1 = f16 (two per word,
// element 0 in the low half), 2 = bf16 (likewise; bf16 is the top half of an f32).
// PyTorch equivalent: `w.float()[i]`.

override W_DTYPE: u32 = 0u;

fn load_w(i: u32) -> f32 {
    switch W_DTYPE {
        case 1u: {
            let pair = unpack2x16float(w[i >> 1u]);
            return select(pair.x, pair.y, (i & 1u) == 1u);
        }
        case 2u: {
            let word = w[i >> 1u];
            let bits = select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u);
            return bitcast<f32>(bits);
        }
        default: {
            return bitcast<f32>(w[i]);
        }
    }
}
