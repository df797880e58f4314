//! Element types a tensor can hold.
//!
//! Dense types (f32, f16, bf16, u32) have a byte size per element. Block-quantized
//! GGUF types (added by the GGUF issue) will have a block size and bytes per block;
//! `storage_bytes` is the single place that knows how many bytes `n` elements take.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    U32,
}

impl DType {
    /// Bytes that `numel` elements occupy in a GPU buffer (before rounding the
    /// buffer up to a multiple of 4 bytes, which WGSL's 32-bit loads need).
    pub fn storage_bytes(self, numel: usize) -> u64 {
        numel as u64 * self.elem_bytes() as u64
    }

    pub fn elem_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The code WGSL kernels use to pick a loader for weights stored as `array<u32>`
    /// (see `kernels/wgsl/*.wgsl`, override constant `W_DTYPE`).
    pub fn weight_code(self) -> Option<u32> {
        match self {
            DType::F32 => Some(0),
            DType::F16 => Some(1),
            DType::BF16 => Some(2),
            DType::U32 => None,
        }
    }

    pub fn is_float(self) -> bool {
        !matches!(self, DType::U32)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::U32 => "u32",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Host element types that can be uploaded directly.
pub trait HostElem: bytemuck::Pod {
    const DTYPE: DType;
}
impl HostElem for f32 {
    const DTYPE: DType = DType::F32;
}
impl HostElem for half::f16 {
    const DTYPE: DType = DType::F16;
}
impl HostElem for half::bf16 {
    const DTYPE: DType = DType::BF16;
}
impl HostElem for u32 {
    const DTYPE: DType = DType::U32;
}
