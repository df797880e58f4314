//! To be written.
use kiln_tensor::{DType, Result, TensorError};
pub fn dequantize(dtype: DType, _b: &[u8]) -> Result<Vec<f32>> { Err(TensorError::dtype("dequantize", format!("{dtype} not implemented yet"))) }
pub fn repack(dtype: DType, _b: &[u8]) -> Result<Vec<u8>> { Err(TensorError::dtype("repack", format!("{dtype} not implemented yet"))) }
