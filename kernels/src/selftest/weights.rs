//! Seeded random weights in every dtype the matmul, matvec and embedding kernels read,
//! with the f32 values their CPU twins must use.
//!
//! Dense dtypes go through [`quantize_weights`] (f16/bf16 rounding). GGUF block types are
//! random blocks — random quant bytes with scales chosen so values are of order 1 —
//! repacked for the GPU ([`quant::repack`]) and dequantised on the CPU by ggml's reference
//! math ([`quant::dequantize`], bit-exact against gguf-py), so the twin multiplies by
//! exactly the values the GPU decodes.

use half::f16;
use kiln_tensor::{DType, Device, Result, Tensor, TensorError};

use crate::quant;
use crate::reference::matmul::quantize_weights;
use crate::testing::Rng;

/// Every weight dtype: dense, then the GGUF block types.
pub const WEIGHT_DTYPES: [DType; 11] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
];

fn f16_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

/// `n_blocks` GGUF blocks of the block type `dtype`: random bytes, then the f16 scales
/// (and mins) overwritten with values that keep the decoded weights of order 1.
pub fn random_blocks(rng: &mut Rng, dtype: DType, n_blocks: usize) -> Vec<u8> {
    let bb = dtype.gguf_block_bytes();
    let mut out = Vec::with_capacity(n_blocks * bb);
    for _ in 0..n_blocks {
        let mut b: Vec<u8> = (0..bb).map(|_| rng.next_u64() as u8).collect();
        // A magnitude in [0.5, 1.5) × `mag`, negative one time in `neg_one_in` (0: never).
        let mut scale = |mag: f32, neg_one_in: u32| {
            let sign = if neg_one_in > 0 && rng.below(neg_one_in) == 0 { -1.0 } else { 1.0 };
            f16_bytes(sign * mag * (0.5 + rng.unit()))
        };
        match dtype {
            DType::Q8_0 => b[0..2].copy_from_slice(&scale(1.0 / 127.0, 2)),
            DType::Q4_0 => b[0..2].copy_from_slice(&scale(1.0 / 8.0, 2)),
            DType::Q5_0 => b[0..2].copy_from_slice(&scale(1.0 / 16.0, 2)),
            DType::Q4_1 | DType::Q5_1 => {
                let qmax = if dtype == DType::Q4_1 { 15.0 } else { 31.0 };
                b[0..2].copy_from_slice(&scale(1.0 / qmax, 0));
                b[2..4].copy_from_slice(&scale(0.5, 2));
            }
            DType::Q4_K | DType::Q5_K => {
                let qmax = if dtype == DType::Q4_K { 15.0 } else { 31.0 };
                b[0..2].copy_from_slice(&scale(1.0 / (63.0 * qmax), 0));
                b[2..4].copy_from_slice(&scale(1.0 / 63.0, 4));
            }
            // Q6_K keeps its f16 scale at the end of the block.
            DType::Q6_K => b[208..210].copy_from_slice(&scale(1.0 / (128.0 * 32.0), 2)),
            other => unreachable!("{other} is not a GGUF block type"),
        }
        out.extend_from_slice(&b);
    }
    out
}

/// A random `[n, k]` weight stored as `dtype`, scaled to about ±`scale`: (bytes to
/// upload, the f32 values the GPU will decode). Block types need `k` to be a multiple of
/// their block size and give values of order 1 (`scale` does not apply to them).
pub fn random_weight(rng: &mut Rng, dtype: DType, n: usize, k: usize, scale: f32) -> Result<(Vec<u8>, Vec<f32>)> {
    if !dtype.is_quantized() {
        return Ok(quantize_weights(&rng.vec(n * k, scale), dtype));
    }
    let bs = dtype.block_size();
    if !k.is_multiple_of(bs) {
        return Err(TensorError::shape(
            "random_weight",
            format!("{dtype} rows hold whole blocks of {bs}; K = {k} is not a multiple"),
        ));
    }
    let gguf = random_blocks(rng, dtype, n * k / bs);
    Ok((quant::repack(dtype, &gguf)?, quant::dequantize(dtype, &gguf)?))
}

/// [`random_weight`] uploaded as a `[n, k]` tensor; returns it with its f32 values.
pub fn upload_weight(
    dev: &Device,
    rng: &mut Rng,
    dtype: DType,
    n: usize,
    k: usize,
    scale: f32,
) -> Result<(Tensor, Vec<f32>)> {
    // Refuse before building hundreds of MiB of host data the adapter cannot bind.
    dev.check_binding_size(&format!("weight [{n}, {k}] {dtype}"), dtype.storage_bytes(n * k))?;
    let (bytes, values) = random_weight(rng, dtype, n, k, scale)?;
    Ok((Tensor::from_bytes(dev, &bytes, &[n, k], dtype)?, values))
}
