//! GGUF's 32-element block types — Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 — on the CPU:
//! ggml's reference dequantisation (bit-exact against gguf-py's `gguf.quants.dequantize`)
//! and the repacking into kiln's GPU layout that `wgsl/quant_legacy.wgsl` decodes.
//!
//! Element `j` (0..32) of a block, with `d`, `m` f16 and `qs`/`qh` as in ggml:
//!
//! | type | GGUF block (bytes)                 | value                                  |
//! |------|------------------------------------|----------------------------------------|
//! | Q8_0 | d@0, qs\[32\]@2 (i8)               | `qs[j] · d`                            |
//! | Q4_0 | d@0, qs\[16\]@2                    | `(nib(j) - 8) · d`                     |
//! | Q4_1 | d@0, m@2, qs\[16\]@4               | `nib(j) · d + m`                       |
//! | Q5_0 | d@0, qh: u32@2, qs\[16\]@6         | `(nib(j) + 16·bit(j) - 16) · d`        |
//! | Q5_1 | d@0, m@2, qh: u32@4, qs\[16\]@8    | `(nib(j) + 16·bit(j)) · d + m`         |
//!
//! `nib(j)` is the low nibble of `qs[j]` for j < 16 and the high nibble of `qs[j - 16]`
//! for j ≥ 16; `bit(j)` is bit `j` of the little-endian `qh`. Products and the `+ m` are
//! rounded separately (f32, no fused multiply-add), as gguf-py does.
//!
//! The repacked layout (`DType::block_bytes`) only moves the fields onto 4-byte
//! boundaries; the bytes of each field are unchanged and padding is zero:
//!
//! | type | bytes | repacked block (byte offsets)                        |
//! |------|-------|------------------------------------------------------|
//! | Q8_0 | 36    | d@0, pad@2..4, qs\[32\]@4 (word 1 + j/4, byte j % 4) |
//! | Q4_0 | 20    | d@0, pad@2..4, qs\[16\]@4                            |
//! | Q4_1 | 20    | d@0, m@2, qs\[16\]@4 (identical to GGUF)             |
//! | Q5_0 | 24    | d@0, pad@2..4, qh@4, qs\[16\]@8                      |
//! | Q5_1 | 24    | d@0, m@2, qh@4, qs\[16\]@8 (identical to GGUF)       |

use half::f16;
use kiln_tensor::{DType, Result, TensorError};

use super::gguf_blocks;

/// Elements per block for every type here.
const QK: usize = 32;

/// Where each field of a block starts, in one layout (GGUF or repacked).
#[derive(Clone, Copy)]
struct Offsets {
    d: usize,
    m: Option<usize>,
    qh: Option<usize>,
    qs: usize,
    /// Bytes of `qs`: 32 for Q8_0 (one i8 per element), 16 for the 4/5-bit types.
    qs_len: usize,
}

/// ggml's layout (`block_q8_0`, `block_q4_0`, ...).
fn gguf_offsets(dtype: DType) -> Option<Offsets> {
    let o = |d, m, qh, qs, qs_len| Some(Offsets { d, m, qh, qs, qs_len });
    match dtype {
        DType::Q8_0 => o(0, None, None, 2, 32),
        DType::Q4_0 => o(0, None, None, 2, 16),
        DType::Q4_1 => o(0, Some(2), None, 4, 16),
        DType::Q5_0 => o(0, None, Some(2), 6, 16),
        DType::Q5_1 => o(0, Some(2), Some(4), 8, 16),
        _ => None,
    }
}

/// kiln's repacked GPU layout (see the module docs and `wgsl/quant_legacy.wgsl`).
fn repacked_offsets(dtype: DType) -> Option<Offsets> {
    let o = |d, m, qh, qs, qs_len| Some(Offsets { d, m, qh, qs, qs_len });
    match dtype {
        DType::Q8_0 => o(0, None, None, 4, 32),
        DType::Q4_0 => o(0, None, None, 4, 16),
        DType::Q4_1 => o(0, Some(2), None, 4, 16),
        DType::Q5_0 => o(0, None, Some(4), 8, 16),
        DType::Q5_1 => o(0, Some(2), Some(4), 8, 16),
        _ => None,
    }
}

/// The raw fields of one block, independent of layout.
struct Fields<'a> {
    d: [u8; 2],
    m: [u8; 2],
    qh: [u8; 4],
    qs: &'a [u8],
}

impl<'a> Fields<'a> {
    /// Read the fields of `block` (exactly one block's bytes) at offsets `o`.
    fn read(block: &'a [u8], o: Offsets) -> Fields<'a> {
        let two = |at: usize| [block[at], block[at + 1]];
        Fields {
            d: two(o.d),
            m: o.m.map_or([0; 2], two),
            qh: o.qh.map_or([0; 4], |at| [block[at], block[at + 1], block[at + 2], block[at + 3]]),
            qs: &block[o.qs..o.qs + o.qs_len],
        }
    }

    /// Write the fields into `block` (zeroed, one block's bytes) at offsets `o`.
    fn write(&self, block: &mut [u8], o: Offsets) {
        block[o.d..o.d + 2].copy_from_slice(&self.d);
        if let Some(at) = o.m {
            block[at..at + 2].copy_from_slice(&self.m);
        }
        if let Some(at) = o.qh {
            block[at..at + 4].copy_from_slice(&self.qh);
        }
        block[o.qs..o.qs + o.qs_len].copy_from_slice(self.qs);
    }

    /// Append the block's 32 values to `out` (ggml's `dequantize_row_*`).
    fn decode(&self, dtype: DType, out: &mut Vec<f32>) {
        let d = f16::from_le_bytes(self.d).to_f32();
        let m = f16::from_le_bytes(self.m).to_f32();
        let qh = u32::from_le_bytes(self.qh);
        // The 4-bit quant of element j: low nibbles first, then high nibbles.
        let nib = |j: usize| ((self.qs[j % 16] >> (4 * (j / 16))) & 0xf) as i32;
        // The 5-bit quant: the nibble plus bit j of qh as bit 4.
        let q5 = |j: usize| nib(j) | ((((qh >> j) & 1) as i32) << 4);
        for j in 0..QK {
            let v = match dtype {
                DType::Q8_0 => (self.qs[j] as i8) as f32 * d,
                DType::Q4_0 => (nib(j) - 8) as f32 * d,
                DType::Q4_1 => nib(j) as f32 * d + m,
                DType::Q5_0 => (q5(j) - 16) as f32 * d,
                DType::Q5_1 => q5(j) as f32 * d + m,
                _ => unreachable!("offsets exist only for the legacy block types"),
            };
            out.push(v);
        }
    }
}

fn not_legacy(op: &str, dtype: DType) -> TensorError {
    TensorError::dtype(
        op,
        format!("{dtype} is not one of the 32-element GGUF block types (q8_0, q4_0, q4_1, q5_0, q5_1)"),
    )
}

/// Dequantize GGUF blocks of `dtype` (Q8_0, Q4_0, Q4_1, Q5_0 or Q5_1) to f32, bit-exact
/// with ggml / gguf-py. Errors when `dtype` is another type or `gguf_bytes` is not a
/// whole number of blocks.
pub fn dequantize(dtype: DType, gguf_bytes: &[u8]) -> Result<Vec<f32>> {
    let o = gguf_offsets(dtype).ok_or_else(|| not_legacy("dequantize", dtype))?;
    let n = gguf_blocks(dtype, gguf_bytes)?;
    let mut out = Vec::with_capacity(n * QK);
    for block in gguf_bytes.chunks_exact(dtype.gguf_block_bytes()) {
        Fields::read(block, o).decode(dtype, &mut out);
    }
    Ok(out)
}

/// Convert GGUF blocks of `dtype` to kiln's repacked GPU layout (`DType::block_bytes`
/// per block; see the module docs). Errors as [`dequantize`].
pub fn repack(dtype: DType, gguf_bytes: &[u8]) -> Result<Vec<u8>> {
    let (from, to) = match (gguf_offsets(dtype), repacked_offsets(dtype)) {
        (Some(f), Some(t)) => (f, t),
        _ => return Err(not_legacy("repack", dtype)),
    };
    let n = gguf_blocks(dtype, gguf_bytes)?;
    let bb = dtype.block_bytes();
    let mut out = vec![0u8; n * bb];
    for (src, dst) in gguf_bytes.chunks_exact(dtype.gguf_block_bytes()).zip(out.chunks_exact_mut(bb)) {
        Fields::read(src, from).write(dst, to);
    }
    Ok(out)
}

/// Dequantize blocks already in kiln's repacked layout (what [`repack`] returns): the
/// same values as [`dequantize`] of the GGUF bytes. For tests and benches.
pub fn dequantize_repacked(dtype: DType, bytes: &[u8]) -> Result<Vec<f32>> {
    let o = repacked_offsets(dtype).ok_or_else(|| not_legacy("dequantize_repacked", dtype))?;
    let bb = dtype.block_bytes();
    if !bytes.len().is_multiple_of(bb) {
        return Err(TensorError::shape(
            "dequantize_repacked",
            format!("{} bytes are not whole repacked {dtype} blocks of {bb} bytes", bytes.len()),
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / bb * QK);
    for block in bytes.chunks_exact(bb) {
        Fields::read(block, o).decode(dtype, &mut out);
    }
    Ok(out)
}
