// weight_runs.wgsl — runs of 8 consecutive weights, decoded together: shared helper
// prepended (after weights.wgsl, quant_legacy.wgsl, quant_k.wgsl) to kernels that stage
// weight tiles.
//
// `load_w_quants(row, k, k_len)` returns elements row + k .. row + k + 8 of `w`
// (row-major, `row` the index of a row's first element, `k_len` the row length) as a
// `QRun`: 8 quants q and the run's one scale and offset, element e = q[e] · scale −
// offset. `load_w_run` returns the values themselves. Elements at k + e ≥ k_len read
// as 0.
//
// For the GGUF block types k is a multiple of 8 and k_len of the block size, so a run
// lies inside one block (legacy types) or one sub-block (Q4_K, Q5_K: 32 elements; Q6_K:
// 16): its scale, min and sub-block scale are read once, with 32-bit loads, for all 8
// elements, and its quants come from 2 words (4-bit, Q8_0), 2 + 1 (5-bit legacy) or
// 2 + 2 (Q5_K, Q6_K). Quants are small integers, exact in f16: Q8_0 −128..127, Q4_0
// −8..7, Q4_1 0..15, Q5_0 −16..15, Q5_1 0..31, Q4_K 0..15, Q5_K 0..31, Q6_K −32..31.
// Dense f32/f16/bf16 runs (scale 1, offset 0) read 8 or 4 whole words when the run is
// inside the row and word-aligned, else element by element.
//
// `load_w_run` equals `load_w` bit for bit: q · scale is exact in f32 (an 11-bit f16
// significand times integers of at most 7 + 5 bits), so fma(q, scale, −offset) rounds
// once, like the CPU twin's `q · d + m` or `(d · sc) · q − dmin · m`.
// PyTorch equivalent: `w.float().flatten()[row + k : row + k + 8]` (gguf: dequantized).
//
// Field layouts: quant_legacy.wgsl and quant_k.wgsl (kernels/src/quant/ has the CPU twins).

/// Eight consecutive values: elements 0..3 in `lo`, 4..7 in `hi`.
struct Run8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

/// Eight consecutive weights as quants: element e = q[e] · scale − offset.
struct QRun {
    q: Run8,
    scale: f32,
    offset: f32,
}

const NIBBLE_SHIFTS: vec4<u32> = vec4<u32>(0u, 8u, 16u, 24u);
const BIT_SHIFTS: vec4<u32> = vec4<u32>(0u, 1u, 2u, 3u);

/// Element k of a row, or 0 past its end (tails of dense rows).
fn w_or_zero(row: u32, k: u32, k_len: u32) -> f32 {
    if k < k_len {
        return load_w(row + k);
    }
    return 0.0;
}

/// The 4 bytes of `word`, each shifted right by `shift` and masked by `mask`.
fn bytes4(word: u32, shift: u32, mask: u32) -> vec4<u32> {
    return (vec4<u32>(word) >> (NIBBLE_SHIFTS + vec4<u32>(shift))) & vec4<u32>(mask);
}

/// Bits 0..7 of `bits` as two vec4s of 0/1 (elements 0..3, 4..7).
fn bits8(bits: u32) -> array<vec4<u32>, 2> {
    let b = vec4<u32>(bits);
    return array<vec4<u32>, 2>((b >> BIT_SHIFTS) & vec4<u32>(1u), (b >> (BIT_SHIFTS + vec4<u32>(4u))) & vec4<u32>(1u));
}

// ---- legacy 32-element blocks: element i (i % 8 == 0), block i / 32, j0 = i % 32 ----

/// Q8_0: the 8 signed bytes j0..j0+8 (words 1 + j0/4, +1), scale d.
fn run_q8_0(i: u32) -> QRun {
    let base = (i >> 5u) * 9u;
    let q = base + 1u + ((i & 31u) >> 2u);
    let d = unpack2x16float(w[base]).x;
    // Move each byte to the top, then shift back arithmetically to sign-extend.
    let up = vec4<u32>(24u, 16u, 8u, 0u);
    let lo = bitcast<vec4<i32>>(vec4<u32>(w[q]) << up) >> vec4<u32>(24u);
    let hi = bitcast<vec4<i32>>(vec4<u32>(w[q + 1u]) << up) >> vec4<u32>(24u);
    return QRun(Run8(vec4<f32>(lo), vec4<f32>(hi)), d, 0.0);
}

/// The 8 nibbles of elements j0..j0+8 from the 16 qs bytes at word `qs`: bytes
/// j0 % 16 .. +8 (two words), low nibbles for j0 < 16, high for j0 >= 16.
fn legacy_nibbles8(qs: u32, j0: u32) -> array<vec4<u32>, 2> {
    let word = qs + ((j0 & 15u) >> 2u);
    let shift = (j0 >> 4u) * 4u;
    return array<vec4<u32>, 2>(bytes4(w[word], shift, 0xfu), bytes4(w[word + 1u], shift, 0xfu));
}

/// Q4_0 (`with_min` false: q − 8, scale d) and Q4_1 (q, scale d, offset −m; m is word
/// 0's high half).
fn run_q4(i: u32, with_min: bool) -> QRun {
    let base = (i >> 5u) * 5u;
    let dm = unpack2x16float(w[base]);
    let q = legacy_nibbles8(base + 1u, i & 31u);
    if with_min {
        return QRun(Run8(vec4<f32>(q[0]), vec4<f32>(q[1])), dm.x, -dm.y);
    }
    let lo = vec4<f32>(vec4<i32>(q[0]) - vec4<i32>(8));
    let hi = vec4<f32>(vec4<i32>(q[1]) - vec4<i32>(8));
    return QRun(Run8(lo, hi), dm.x, 0.0);
}

/// Q5_0 (`with_min` false: q − 16, scale d) and Q5_1 (q, scale d, offset −m); qh is word
/// 1, qs words 2..5.
fn run_q5(i: u32, with_min: bool) -> QRun {
    let base = (i >> 5u) * 6u;
    let j0 = i & 31u;
    let dm = unpack2x16float(w[base]);
    let nib = legacy_nibbles8(base + 2u, j0);
    let high = bits8(w[base + 1u] >> j0);
    let q0 = nib[0] | (high[0] << vec4<u32>(4u));
    let q1 = nib[1] | (high[1] << vec4<u32>(4u));
    if with_min {
        return QRun(Run8(vec4<f32>(q0), vec4<f32>(q1)), dm.x, -dm.y);
    }
    let lo = vec4<f32>(vec4<i32>(q0) - vec4<i32>(16));
    let hi = vec4<f32>(vec4<i32>(q1) - vec4<i32>(16));
    return QRun(Run8(lo, hi), dm.x, 0.0);
}

// ---- K-quants: element i (i % 8 == 0), block i / 256, e0 = i % 256 -------------------

/// (d · sc, dmin · m) of sub-block s of the Q4_K / Q5_K block at word `word0`: word 0
/// holds d | dmin, words 1..3 the 12 packed scale bytes (see k_scale_min).
fn k_sub_scale(word0: u32, s: u32) -> vec2<f32> {
    let dm = unpack2x16float(w[word0]);
    let w1 = w[word0 + 1u];
    let w2 = w[word0 + 2u];
    var sc: u32;
    var m: u32;
    if s < 4u {
        sc = (w1 >> (8u * s)) & 63u;
        m = (w2 >> (8u * s)) & 63u;
    } else {
        let shift = 8u * (s - 4u);
        let packed = (w[word0 + 3u] >> shift) & 0xffu;
        sc = (packed & 0xfu) | (((w1 >> (shift + 6u)) & 3u) << 4u);
        m = (packed >> 4u) | (((w2 >> (shift + 6u)) & 3u) << 4u);
    }
    return vec2<f32>(dm.x * f32(sc), dm.y * f32(m));
}

/// The 8 low nibbles (q & 15) of elements e0.. of sub-block s from the qs bytes at
/// word `qs`: bytes 32 (s / 2) + e0 % 32 .., nibble s % 2.
fn k_nibbles8(qs: u32, e0: u32) -> array<vec4<u32>, 2> {
    let s = e0 >> 5u;
    let word = qs + 8u * (s >> 1u) + ((e0 & 31u) >> 2u);
    let shift = 4u * (s & 1u);
    return array<vec4<u32>, 2>(bytes4(w[word], shift, 0xfu), bytes4(w[word + 1u], shift, 0xfu));
}

/// The run of quants q0, q1 with scale d · sc and offset dmin · m (from k_sub_scale).
fn k_run(scale: vec2<f32>, q0: vec4<u32>, q1: vec4<u32>) -> QRun {
    return QRun(Run8(vec4<f32>(q0), vec4<f32>(q1)), scale.x, scale.y);
}

/// Q4_K: 36 words per block; qs at word 4.
fn run_q4_k(i: u32) -> QRun {
    let word0 = (i >> 8u) * Q4_K_WORDS;
    let e0 = i & 255u;
    let q = k_nibbles8(word0 + 4u, e0);
    return k_run(k_sub_scale(word0, e0 >> 5u), q[0], q[1]);
}

/// Q5_K: 44 words per block; qh at word 4 (bit s of byte e0 % 32 + e), qs at word 12.
fn run_q5_k(i: u32) -> QRun {
    let word0 = (i >> 8u) * Q5_K_WORDS;
    let e0 = i & 255u;
    let s = e0 >> 5u;
    let q = k_nibbles8(word0 + 12u, e0);
    let qh = word0 + 4u + ((e0 & 31u) >> 2u);
    let h0 = bytes4(w[qh], s, 1u);
    let h1 = bytes4(w[qh + 1u], s, 1u);
    return k_run(k_sub_scale(word0, s), q[0] | (h0 << vec4<u32>(4u)), q[1] | (h1 << vec4<u32>(4u)));
}

/// Q6_K: 53 words per block: d at word 0, ql at word 1, qh at word 33, scales at word 49.
/// With half h = e0 / 128, group g = (e0 % 128) / 32, l0 = e0 % 32: low 4 bits from
/// nibble g / 2 of ql bytes 64h + 32(g % 2) + l0 .., high 2 bits from bits 2g of qh
/// bytes 32h + l0 ..; y = (d · scales[e0 / 16]) · (q − 32): quants q − 32, scale d · sc.
fn run_q6_k(i: u32) -> QRun {
    let word0 = (i >> 8u) * Q6_K_WORDS;
    let e0 = i & 255u;
    let h = e0 >> 7u;
    let g = (e0 >> 5u) & 3u;
    let l4 = (e0 & 31u) >> 2u;
    let ql = word0 + 1u + 16u * h + 8u * (g & 1u) + l4;
    let qh = word0 + 33u + 8u * h + l4;
    let lo_shift = 4u * (g >> 1u);
    let q0 = bytes4(w[ql], lo_shift, 0xfu) | (bytes4(w[qh], 2u * g, 3u) << vec4<u32>(4u));
    let q1 = bytes4(w[ql + 1u], lo_shift, 0xfu) | (bytes4(w[qh + 1u], 2u * g, 3u) << vec4<u32>(4u));
    let group = e0 >> 4u;
    let sc_byte = (w[word0 + 49u + (group >> 2u)] >> (8u * (group & 3u))) & 0xffu;
    let sc = bitcast<i32>(sc_byte << 24u) >> 24u;
    let ds = unpack2x16float(w[word0]).x * f32(sc);
    let lo = vec4<f32>(vec4<i32>(q0) - vec4<i32>(32));
    let hi = vec4<f32>(vec4<i32>(q1) - vec4<i32>(32));
    return QRun(Run8(lo, hi), ds, 0.0);
}

// ---- every dtype ------------------------------------------------------------------

/// A run of dense values: scale 1, offset 0.
fn dense_run(lo: vec4<f32>, hi: vec4<f32>) -> QRun {
    return QRun(Run8(lo, hi), 1.0, 0.0);
}

/// Elements row + k .. row + k + 8 (0 past k_len) as quants, scale and offset, for
/// weights of type W_DTYPE.
fn load_w_quants(row: u32, k: u32, k_len: u32) -> QRun {
    let i = row + k;
    let whole = k + 8u <= k_len;
    switch W_DTYPE {
        case 0u: {
            if whole {
                let lo = vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
                let hi = vec4<u32>(w[i + 4u], w[i + 5u], w[i + 6u], w[i + 7u]);
                return dense_run(bitcast<vec4<f32>>(lo), bitcast<vec4<f32>>(hi));
            }
        }
        case 1u: {
            if whole && (i & 1u) == 0u {
                let h = i >> 1u;
                let lo = vec4<f32>(unpack2x16float(w[h]), unpack2x16float(w[h + 1u]));
                let hi = vec4<f32>(unpack2x16float(w[h + 2u]), unpack2x16float(w[h + 3u]));
                return dense_run(lo, hi);
            }
        }
        case 2u: {
            if whole && (i & 1u) == 0u {
                // bf16 is the top half of an f32: element 2j in the low half of word j.
                let h = i >> 1u;
                let words_lo = vec4<u32>(w[h], w[h], w[h + 1u], w[h + 1u]);
                let words_hi = vec4<u32>(w[h + 2u], w[h + 2u], w[h + 3u], w[h + 3u]);
                let even = vec4<bool>(true, false, true, false);
                let bits_lo = select(words_lo & vec4<u32>(0xffff0000u), words_lo << vec4<u32>(16u), even);
                let bits_hi = select(words_hi & vec4<u32>(0xffff0000u), words_hi << vec4<u32>(16u), even);
                return dense_run(bitcast<vec4<f32>>(bits_lo), bitcast<vec4<f32>>(bits_hi));
            }
        }
        case 3u: { return run_q8_0(i); }
        case 4u: { return run_q4(i, false); }
        case 5u: { return run_q4(i, true); }
        case 6u: { return run_q5(i, false); }
        case 7u: { return run_q5(i, true); }
        case 8u: { return run_q4_k(i); }
        case 9u: { return run_q5_k(i); }
        case 10u: { return run_q6_k(i); }
        default: {}
    }
    // A dense run that crosses the row's end or a word boundary: element by element.
    return dense_run(
        vec4<f32>(w_or_zero(row, k, k_len), w_or_zero(row, k + 1u, k_len), w_or_zero(row, k + 2u, k_len), w_or_zero(row, k + 3u, k_len)),
        vec4<f32>(w_or_zero(row, k + 4u, k_len), w_or_zero(row, k + 5u, k_len), w_or_zero(row, k + 6u, k_len), w_or_zero(row, k + 7u, k_len)),
    );
}

/// The values q · scale − offset of a run (one rounding each: q · scale is exact).
fn dequantize_run(r: QRun) -> Run8 {
    let scale = vec4<f32>(r.scale);
    let neg_offset = vec4<f32>(-r.offset);
    return Run8(fma(r.q.lo, scale, neg_offset), fma(r.q.hi, scale, neg_offset));
}

/// Elements row + k .. row + k + 8 (0 past k_len) as f32, equal to `load_w`.
fn load_w_run(row: u32, k: u32, k_len: u32) -> Run8 {
    return dequantize_run(load_w_quants(row, k, k_len));
}
