//! GGUF's 256-element "K-quant" block types — Q4_K, Q5_K, Q6_K — on the CPU: ggml's
//! reference dequantisation (bit-exact with `dequantize_row_q{4,5,6}_K` in
//! `ggml-quants.c` and gguf-py's `gguf.quants`) and kiln's repacked GPU layout, which
//! `wgsl/quant_k.wgsl` decodes.
//!
//! A block holds 256 elements (a "super-block"), split into sub-blocks that carry their
//! own small integer scale; an f16 super-scale `d` turns those into floats.
//!
//! # GGUF layouts (ggml's `block_q4_K`, `block_q5_K`, `block_q6_K`)
//!
//! ```text
//! Q4_K, 144 B: d f16 @0 | dmin f16 @2 | scales[12] @4 | qs[128] @16
//! Q5_K, 176 B: d f16 @0 | dmin f16 @2 | scales[12] @4 | qh[32] @16 | qs[128] @48
//! Q6_K, 210 B: ql[128] @0 | qh[64] @128 | scales[16] (i8) @192 | d f16 @208
//! ```
//!
//! # Repacked layouts (`DType::block_bytes`; every field starts on a 4-byte boundary)
//!
//! ```text
//! Q4_K, 144 B: identical to GGUF — word 0 = d (low half) | dmin (high half),
//!              scales @4 (words 1..3), qs @16 (words 4..35)
//! Q5_K, 176 B: identical to GGUF — word 0 = d | dmin, scales @4, qh @16, qs @48
//! Q6_K, 212 B: d f16 @0 (+ 2 zero bytes; word 0 low half), ql[128] @4, qh[64] @132,
//!              scales[16] @196
//! ```
//!
//! # Element order inside a block (`e` = 0..255)
//!
//! - Q4_K: sub-block `s = e / 32` (scale and min `get_scale_min_k4(s)`), `l = e % 32`;
//!   `q` = nibble `s % 2` (low first) of `qs[32 * (s / 2) + l]`;
//!   `y = (d · sc) · q − dmin · m`.
//! - Q5_K: as Q4_K, plus bit `s` of `qh[l]` as the fifth bit (`q |= bit << 4`).
//! - Q6_K: half `h = e / 128`, group `g = (e % 128) / 32`, `l = e % 32`;
//!   `q` = nibble `g / 2` of `ql[64 h + 32 (g % 2) + l]` | bits `2g..2g+1` of
//!   `qh[32 h + l]` << 4; `y = (d · scales[e / 16]) · (q − 32)`.
//!
//! The float operations happen in exactly gguf-py's order (`d * sc` first, then `* q`,
//! then `- dmin * m`); every product is in fact exact in f32 (an f16 significand of 11
//! bits times integers of at most 7 + 6 bits), so only the final subtraction rounds —
//! which is also why the GPU (which may fuse multiply-adds) reproduces it exactly.

use half::f16;
use kiln_tensor::{DType, Result, TensorError};

/// Elements per K-quant block.
pub const QK_K: usize = 256;

/// Byte offsets of the repacked Q6_K fields (see the module docs).
pub const Q6_K_REPACKED_D: usize = 0;
/// Byte offset of `ql` (128 bytes of low 4-bit quants) in a repacked Q6_K block.
pub const Q6_K_REPACKED_QL: usize = 4;
/// Byte offset of `qh` (64 bytes of high 2-bit quants) in a repacked Q6_K block.
pub const Q6_K_REPACKED_QH: usize = 132;
/// Byte offset of the 16 i8 sub-block scales in a repacked Q6_K block.
pub const Q6_K_REPACKED_SCALES: usize = 196;

/// Which layout a byte slice is in, for error messages and field offsets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Gguf,
    Repacked,
}

impl Layout {
    fn block_bytes(self, dtype: DType) -> usize {
        match self {
            Layout::Gguf => dtype.gguf_block_bytes(),
            Layout::Repacked => dtype.block_bytes(),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Layout::Gguf => "GGUF",
            Layout::Repacked => "repacked",
        }
    }
}

/// `dtype` must be a K-quant type and `bytes` whole blocks of it in `layout`; returns
/// the block size in bytes.
fn check(op: &str, dtype: DType, bytes: &[u8], layout: Layout) -> Result<usize> {
    if !matches!(dtype, DType::Q4_K | DType::Q5_K | DType::Q6_K) {
        return Err(TensorError::dtype(op, format!("{dtype} is not a K-quant block type (q4_k, q5_k or q6_k)")));
    }
    let bb = layout.block_bytes(dtype);
    if !bytes.len().is_multiple_of(bb) {
        return Err(TensorError::shape(
            op,
            format!(
                "{} bytes are not whole {} {dtype} blocks of {bb} bytes ({} whole blocks and {} bytes left over)",
                bytes.len(),
                layout.name(),
                bytes.len() / bb,
                bytes.len() % bb
            ),
        ));
    }
    Ok(bb)
}

fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_le_bytes([b[off], b[off + 1]]).to_f32()
}

/// Scale and min (both 0..63) of sub-block `j` (0..7) from the 12 packed bytes of a
/// Q4_K / Q5_K block — ggml's `get_scale_min_k4`. Bytes 0..3 hold scales 0..3 in their
/// low 6 bits, bytes 4..7 mins 0..3 likewise; sub-blocks 4..7 take their low 4 bits
/// from the nibbles of bytes 8..11 and their top 2 bits from the top 2 bits of bytes
/// 0..3 (scales) and 4..7 (mins).
pub fn scale_min_k4(j: usize, scales: &[u8]) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        ((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4))
    }
}

/// Q4_K / Q5_K: one block (same bytes in both layouts) into `out[..256]`. `qh` is the
/// 32-byte high-bit field for Q5_K, `None` for Q4_K.
fn dequant_q45k(block: &[u8], qh: Option<&[u8]>, qs: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    let scales = &block[4..16];
    for s in 0..8 {
        let (sc, m) = scale_min_k4(s, scales);
        let d1 = d * sc as f32;
        let m1 = dmin * m as f32;
        let shift = 4 * (s % 2);
        for l in 0..32 {
            let mut q = (qs[32 * (s / 2) + l] >> shift) & 0x0f;
            if let Some(qh) = qh {
                q |= ((qh[l] >> s) & 1) << 4;
            }
            out[32 * s + l] = d1 * q as f32 - m1;
        }
    }
}

/// The fields of one Q6_K block, borrowed from either layout.
struct Q6K<'a> {
    d: f32,
    ql: &'a [u8],
    qh: &'a [u8],
    scales: &'a [u8],
}

impl<'a> Q6K<'a> {
    fn from_gguf(b: &'a [u8]) -> Self {
        Q6K { d: f16_at(b, 208), ql: &b[0..128], qh: &b[128..192], scales: &b[192..208] }
    }
    fn from_repacked(b: &'a [u8]) -> Self {
        Q6K {
            d: f16_at(b, Q6_K_REPACKED_D),
            ql: &b[Q6_K_REPACKED_QL..Q6_K_REPACKED_QL + 128],
            qh: &b[Q6_K_REPACKED_QH..Q6_K_REPACKED_QH + 64],
            scales: &b[Q6_K_REPACKED_SCALES..Q6_K_REPACKED_SCALES + 16],
        }
    }
    fn dequant(&self, out: &mut [f32]) {
        for (e, y) in out[..QK_K].iter_mut().enumerate() {
            let (h, g, l) = (e / 128, (e % 128) / 32, e % 32);
            let lo = (self.ql[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 0x0f;
            let hi = (self.qh[32 * h + l] >> (2 * g)) & 3;
            let q = (lo | (hi << 4)) as i32 - 32;
            let sc = self.scales[e / 16] as i8;
            *y = (self.d * sc as f32) * q as f32;
        }
    }
}

fn dequant_blocks(op: &str, dtype: DType, bytes: &[u8], layout: Layout) -> Result<Vec<f32>> {
    let bb = check(op, dtype, bytes, layout)?;
    let mut out = vec![0.0f32; bytes.len() / bb * QK_K];
    for (block, y) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(QK_K)) {
        match dtype {
            DType::Q4_K => dequant_q45k(block, None, &block[16..144], y),
            DType::Q5_K => dequant_q45k(block, Some(&block[16..48]), &block[48..176], y),
            _ => match layout {
                Layout::Gguf => Q6K::from_gguf(block).dequant(y),
                Layout::Repacked => Q6K::from_repacked(block).dequant(y),
            },
        }
    }
    Ok(out)
}

/// Dequantize GGUF blocks of `dtype` (Q4_K, Q5_K or Q6_K) to f32, bit-exact with ggml /
/// gguf-py. `gguf_bytes` must be whole blocks (144, 176 or 210 bytes each).
pub fn dequantize(dtype: DType, gguf_bytes: &[u8]) -> Result<Vec<f32>> {
    dequant_blocks("dequantize", dtype, gguf_bytes, Layout::Gguf)
}

/// Dequantize blocks already in kiln's repacked layout (`repack`'s output; 144, 176 or
/// 212 bytes each) — the same values `dequantize` gives for the GGUF bytes.
pub fn dequantize_repacked(dtype: DType, bytes: &[u8]) -> Result<Vec<f32>> {
    dequant_blocks("dequantize_repacked", dtype, bytes, Layout::Repacked)
}

/// GGUF blocks → kiln's repacked GPU layout (see the module docs): Q4_K and Q5_K are
/// copied unchanged; each Q6_K block moves `d` to the front, padded to 4 bytes with
/// zeros, ahead of ql, qh and scales.
pub fn repack(dtype: DType, gguf_bytes: &[u8]) -> Result<Vec<u8>> {
    let bb = check("repack", dtype, gguf_bytes, Layout::Gguf)?;
    if dtype != DType::Q6_K {
        return Ok(gguf_bytes.to_vec());
    }
    let mut out = Vec::with_capacity(gguf_bytes.len() / bb * dtype.block_bytes());
    for b in gguf_bytes.chunks_exact(bb) {
        out.extend_from_slice(&b[208..210]); // d
        out.extend_from_slice(&[0, 0]); // pad
        out.extend_from_slice(&b[0..192]); // ql, qh (already in this order)
        out.extend_from_slice(&b[192..208]); // scales
    }
    debug_assert_eq!(out.len() % 4, 0);
    Ok(out)
}
