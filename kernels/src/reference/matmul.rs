//! CPU twin for wgsl/matmul.wgsl, and the weight conversions tests use so the twin
//! multiplies by exactly the values the GPU dequantises.
//!
//! The twin of both weight tiles is [`matmul`] on the dequantized weights: f32 tiles
//! hold them exactly, f16 tiles (`matmul::WeightTile::F16`) hold GGUF blocks' integer
//! quants (exact in f16) and f16 weights exactly. Only dense f32/bf16 weights on f16
//! tiles (on request) are rounded when staged: their twin is [`matmul`] on
//! [`f16_tile_values`] of the weights.

use kiln_tensor::DType;

/// `out[b, i, j] = Σ_k a[b, i, k] · w[b?, j, k]` (f64 accumulation), i.e. `a · wᵀ`.
///
/// `a` is `[batch, m, k]`, `w` is `[batch, n, k]` when `w_batched`, else `[n, k]`
/// shared by every batch; the result is `[batch, m, n]`.
pub fn matmul(a: &[f32], w: &[f32], batch: usize, m: usize, n: usize, k: usize, w_batched: bool) -> Vec<f32> {
    assert_eq!(a.len(), batch * m * k, "a must hold batch*m*k elements");
    let w_mats = if w_batched { batch } else { 1 };
    assert_eq!(w.len(), w_mats * n * k, "w must hold (batch or 1)*n*k elements");
    let mut out = Vec::with_capacity(batch * m * n);
    for b in 0..batch {
        let wb = if w_batched { &w[b * n * k..(b + 1) * n * k] } else { w };
        for i in 0..m {
            let row = &a[(b * m + i) * k..(b * m + i + 1) * k];
            for j in 0..n {
                let wrow = &wb[j * k..(j + 1) * k];
                let dot: f64 = row.iter().zip(wrow).map(|(&x, &y)| x as f64 * y as f64).sum();
                out.push(dot as f32);
            }
        }
    }
    out
}

/// Dense weights as an f16 weight tile holds them: each rounded to the nearest f16 (ties
/// to even; beyond ±65504 infinite), back as f32.
pub fn f16_tile_values(w: &[f32]) -> Vec<f32> {
    w.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// `Σ_k |a[b, i, k] · w[b?, j, k]|` for every output (shapes as in [`matmul`]): the scale
/// of a dot product's rounding errors, for error bounds.
pub fn abs_matmul(a: &[f32], w: &[f32], batch: usize, m: usize, n: usize, k: usize, w_batched: bool) -> Vec<f32> {
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
    matmul(&abs(a), &abs(w), batch, m, n, k, w_batched)
}

/// Little-endian bytes of `w` stored as `dtype` (f32, f16 or bf16; halves rounded to
/// nearest, ties to even), ready for `Tensor::from_bytes`.
///
/// Panics for u32 and block types (test helper).
pub fn weight_bytes(w: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F32 => bytemuck::cast_slice(w).to_vec(),
        DType::F16 => w.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
        DType::BF16 => w.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        other => panic!("weight_bytes: {other} is not a dense weight dtype (quantize with the gguf package)"),
    }
}

/// The f32 values of weights stored as `dtype` (the inverse of [`weight_bytes`]).
///
/// Panics for u32 and block types (test helper).
pub fn weight_values(bytes: &[u8], dtype: DType) -> Vec<f32> {
    match dtype {
        DType::F32 => bytemuck::pod_collect_to_vec(bytes),
        DType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        DType::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => panic!("weight_values: {other} is not a dense weight dtype (see kiln_kernels::quant)"),
    }
}

/// `w` as the GPU will see it after storing it as `dtype`: returns (bytes to upload,
/// the dequantised values the CPU twin should use).
pub fn quantize_weights(w: &[f32], dtype: DType) -> (Vec<u8>, Vec<f32>) {
    let bytes = weight_bytes(w, dtype);
    let values = weight_values(&bytes, dtype);
    (bytes, values)
}
