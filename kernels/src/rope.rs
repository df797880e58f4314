//! Launcher for `wgsl/rope.wgsl`: rotary position embedding from a precomputed
//! cos/sin table ([`RopeTable`]), in the half-split (HF `rotate_half`) or interleaved form.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Device, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d};
use crate::reference::rope::cpu_table;
use crate::shaders::ROPE;

const WG: u32 = 256;

/// Which elements form a rotated pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Pairs (j, j + head_dim/2): HF `rotate_half`, used by Llama and Qwen2 (GPT-NeoX style).
    HalfSplit,
    /// Pairs (2j, 2j + 1): GPT-J style, llama.cpp's "normal" rope.
    Interleaved,
}

/// cos/sin of every (position, frequency) pair, on the GPU.
///
/// Built by [`crate::reference::rope::cpu_table`] (HF's f32 `inv_freq` and angles, cos/sin
/// evaluated in f64), so GPU and CPU twin rotate by bit-identical factors.
pub struct RopeTable {
    /// f32 `[max_positions, head_dim/2, 2]`: (cos, sin) pairs.
    pub cos_sin: Tensor,
    /// Values per head the table was built for (even).
    pub head_dim: usize,
    /// RoPE base θ: pair j turns by `pos · θ^(-2j/head_dim)`.
    pub theta: f32,
    /// Positions the table covers: `0..max_positions`.
    pub max_positions: usize,
}

impl RopeTable {
    /// Upload the table for positions `0..max_positions`. `head_dim` must be even and
    /// positive, `theta` finite and positive.
    pub fn new(device: &Device, head_dim: usize, theta: f32, max_positions: usize) -> Result<RopeTable> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(TensorError::param(
                "head_dim",
                format!("RoPE needs an even, positive head_dim, got {head_dim}"),
            ));
        }
        if !theta.is_finite() || theta <= 0.0 {
            return Err(TensorError::param("theta", format!("RoPE theta must be finite and positive, got {theta}")));
        }
        if max_positions == 0 {
            return Err(TensorError::param("max_positions", "RoPE table needs at least one position"));
        }
        let table = cpu_table(head_dim, theta, max_positions);
        let cos_sin = Tensor::from_slice(device, &table, &[max_positions, head_dim / 2, 2])?;
        Ok(RopeTable { cos_sin, head_dim, theta, max_positions })
    }
}

/// Mirrors `Params` in rope.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_pairs: u32,
    half_dim: u32,
    n_heads: u32,
    pos_offset: u32,
    interleaved: u32,
    row_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

/// Rotate `x` f32 `[seq, n_heads, head_dim]` into `out` (same shape); token i sits at
/// position `pos_offset + i`, which must be inside the table.
pub fn rope(
    rec: &mut Recorder,
    x: &Tensor,
    table: &RopeTable,
    pos_offset: usize,
    mode: RopeMode,
    out: &Tensor,
) -> Result<()> {
    let op = "rope";
    expect_same_device(op, &[x, &table.cos_sin, out])?;
    expect_dtype(op, "x", x, DType::F32)?;
    expect_dtype(op, "out", out, DType::F32)?;
    if x.rank() != 3 {
        return Err(TensorError::shape(op, format!("x must be [seq, n_heads, head_dim], got {:?}", x.shape())));
    }
    let (seq, n_heads, head_dim) = (x.dim(0), x.dim(1), x.dim(2));
    if head_dim != table.head_dim {
        return Err(TensorError::shape(
            op,
            format!(
                "x head_dim {head_dim} (shape {:?}) differs from the table's head_dim {}",
                x.shape(),
                table.head_dim
            ),
        ));
    }
    expect_shape(op, "out", out, x.shape())?;
    expect_no_alias(op, out, &[x])?;
    let end = pos_offset.saturating_add(seq);
    if end > table.max_positions {
        return Err(TensorError::param(
            "pos_offset",
            format!(
                "rope: positions {pos_offset}..{end} exceed the table's {} positions (build a RopeTable with more max_positions)",
                table.max_positions
            ),
        ));
    }
    let n_pairs = x.numel() / 2;
    let (workgroups, row_stride) = grid_1d(out, n_pairs, WG);
    let params = Params {
        n_pairs: expect_u32_len(op, n_pairs)?,
        half_dim: (head_dim / 2) as u32,
        n_heads: n_heads as u32,
        pos_offset: expect_u32_len(op, pos_offset)?,
        interleaved: (mode == RopeMode::Interleaved) as u32,
        row_stride,
        _pad0: 0,
        _pad1: 0,
    };
    let pipeline = rec.device().pipeline("rope", ROPE, "rope", &[])?;
    // Each element: 2 multiplies + 1 add (out_a = a c - b s); the table rows used are read once per head.
    let table_bytes = (seq * head_dim * 4) as u64;
    rec.dispatch(Dispatch {
        kernel: "rope::rope",
        pipeline: &pipeline,
        inputs: &[x, &table.cos_sin],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: 3 * x.numel() as u64,
        bytes: x.byte_len() + table_bytes + out.byte_len(),
    })
}
