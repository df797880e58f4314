//! GGUF block-quantized weights: the CPU side.
//!
//! - `dequantize(dtype, gguf_bytes)`: ggml's reference dequantisation, bit-exact (the
//!   CPU twin of the GPU decoders in `wgsl/quant_*.wgsl`).
//! - `repack(dtype, gguf_bytes)`: GGUF blocks → kiln's GPU layout (each block padded /
//!   reordered to a multiple of 4 bytes, `DType::block_bytes`), done once at load.
//! - `dequantize_repacked(dtype, bytes)`: the same values from the repacked layout.

use kiln_tensor::{DType, Result, TensorError};

pub mod kquants;
pub mod legacy;

/// Check `bytes` holds whole GGUF blocks of `dtype`; returns the number of blocks.
pub fn gguf_blocks(dtype: DType, bytes: &[u8]) -> Result<usize> {
    let bb = dtype.gguf_block_bytes();
    if !dtype.is_quantized() || bytes.len() % bb != 0 {
        return Err(TensorError::shape(
            "quant",
            format!("{} bytes are not whole {dtype} blocks of {bb} bytes", bytes.len()),
        ));
    }
    Ok(bytes.len() / bb)
}

/// Dequantize GGUF blocks of `dtype` to f32 (ggml's reference math).
pub fn dequantize(dtype: DType, gguf_bytes: &[u8]) -> Result<Vec<f32>> {
    match dtype {
        DType::Q8_0 | DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 => legacy::dequantize(dtype, gguf_bytes),
        DType::Q4_K | DType::Q5_K | DType::Q6_K => kquants::dequantize(dtype, gguf_bytes),
        other => Err(TensorError::dtype("dequantize", format!("{other} is not a GGUF block type"))),
    }
}

/// Convert GGUF blocks of `dtype` to kiln's repacked GPU layout.
pub fn repack(dtype: DType, gguf_bytes: &[u8]) -> Result<Vec<u8>> {
    match dtype {
        DType::Q8_0 | DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 => legacy::repack(dtype, gguf_bytes),
        DType::Q4_K | DType::Q5_K | DType::Q6_K => kquants::repack(dtype, gguf_bytes),
        other => Err(TensorError::dtype("repack", format!("{other} is not a GGUF block type"))),
    }
}
