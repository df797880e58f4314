//! Element types a tensor can hold.
//!
//! Dense types (f32, f16, bf16, u32) have a byte size per element. Block-quantized
//! GGUF types hold `block_size` elements in `block_bytes` bytes. On the GPU they live
//! in a *repacked* layout: each GGUF block padded/reordered to a multiple of 4 bytes so
//! WGSL's 32-bit loads can read it (see `kernels/src/quant/`). `storage_bytes` is the
//! single place that knows how many bytes `n` elements take.

use std::fmt;

/// GGUF's own names (Q4_K, ...) are kept for the block types.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float, 4 bytes per element.
    F32,
    /// IEEE half float, 2 bytes per element.
    F16,
    /// bfloat16, 2 bytes per element.
    BF16,
    /// 32-bit unsigned integer (token ids, indices), 4 bytes per element; the only non-float type.
    U32,
    /// GGUF Q8_0: blocks of 32 elements, 36 bytes on the GPU (34 in GGUF).
    Q8_0,
    /// GGUF Q4_0: blocks of 32 elements, 20 bytes on the GPU (18 in GGUF).
    Q4_0,
    /// GGUF Q4_1: blocks of 32 elements, 20 bytes on the GPU and in GGUF.
    Q4_1,
    /// GGUF Q5_0: blocks of 32 elements, 24 bytes on the GPU (22 in GGUF).
    Q5_0,
    /// GGUF Q5_1: blocks of 32 elements, 24 bytes on the GPU and in GGUF.
    Q5_1,
    /// GGUF Q4_K: blocks of 256 elements, 144 bytes on the GPU and in GGUF.
    Q4_K,
    /// GGUF Q5_K: blocks of 256 elements, 176 bytes on the GPU and in GGUF.
    Q5_K,
    /// GGUF Q6_K: blocks of 256 elements, 212 bytes on the GPU (210 in GGUF).
    Q6_K,
}

impl DType {
    /// Bytes that `numel` elements occupy in a GPU buffer (before rounding the
    /// buffer up to a multiple of 4 bytes, which WGSL's 32-bit loads need). For block
    /// types `numel` must be a whole number of blocks (see `checked_storage_bytes`).
    pub fn storage_bytes(self, numel: usize) -> u64 {
        (numel / self.block_size()) as u64 * self.block_bytes() as u64
    }

    /// `storage_bytes`, or `None` when `numel` is not a whole number of blocks.
    pub fn checked_storage_bytes(self, numel: usize) -> Option<u64> {
        numel.is_multiple_of(self.block_size()).then(|| self.storage_bytes(numel))
    }

    /// Elements per block: 1 for dense types, 32 or 256 for GGUF block types.
    pub fn block_size(self) -> usize {
        match self {
            DType::F32 | DType::U32 | DType::F16 | DType::BF16 => 1,
            DType::Q8_0 | DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 => 32,
            DType::Q4_K | DType::Q5_K | DType::Q6_K => 256,
        }
    }

    /// Bytes per block in kiln's GPU (repacked, 4-byte aligned) layout.
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q8_0 => 36,  // d: f16 + 2 pad, qs: 32 x i8
            DType::Q4_0 => 20,  // d: f16 + 2 pad, qs: 16
            DType::Q4_1 => 20,  // d, m: 2 x f16, qs: 16
            DType::Q5_0 => 24,  // d: f16 + 2 pad, qh: 4, qs: 16
            DType::Q5_1 => 24,  // d, m: 2 x f16, qh: 4, qs: 16
            DType::Q4_K => 144, // d, dmin: 2 x f16, scales: 12, qs: 128
            DType::Q5_K => 176, // d, dmin: 2 x f16, scales: 12, qh: 32, qs: 128
            DType::Q6_K => 212, // d: f16 + 2 pad, ql: 128, qh: 64, scales: 16
        }
    }

    /// Bytes per block in the GGUF file (ggml's layout).
    pub fn gguf_block_bytes(self) -> usize {
        match self {
            DType::Q8_0 => 34,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q4_K => 144,
            DType::Q5_K => 176,
            DType::Q6_K => 210,
            dense => dense.block_bytes(),
        }
    }

    /// Bytes per element of a dense type (block bytes of one-element blocks).
    pub fn elem_bytes(self) -> usize {
        self.block_bytes()
    }

    /// True for the GGUF block types (more than one element per block).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// The code WGSL kernels use to pick a loader for weights stored as `array<u32>`
    /// (see `kernels/wgsl/weights.wgsl`, override constant `W_DTYPE`).
    pub fn weight_code(self) -> Option<u32> {
        match self {
            DType::F32 => Some(0),
            DType::F16 => Some(1),
            DType::BF16 => Some(2),
            DType::U32 => None,
            DType::Q8_0 => Some(3),
            DType::Q4_0 => Some(4),
            DType::Q4_1 => Some(5),
            DType::Q5_0 => Some(6),
            DType::Q5_1 => Some(7),
            DType::Q4_K => Some(8),
            DType::Q5_K => Some(9),
            DType::Q6_K => Some(10),
        }
    }

    /// True for every type but `U32`, the block types included.
    pub fn is_float(self) -> bool {
        !matches!(self, DType::U32)
    }

    /// Lower-case name (`f32`, `q4_k`, ...), as `Display` prints it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::U32 => "u32",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
            DType::Q5_0 => "q5_0",
            DType::Q5_1 => "q5_1",
            DType::Q4_K => "q4_k",
            DType::Q5_K => "q5_k",
            DType::Q6_K => "q6_k",
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
    /// The [`DType`] a tensor uploaded from this type has.
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
