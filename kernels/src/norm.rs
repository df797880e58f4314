//! Launchers for `wgsl/norm.wgsl`: RMSNorm (Qwen2/Llama) and LayerNorm (GPT-2), f32,
//! normalising the last dim of `x` (any rank ≥ 1) with a weight (and bias) of that size.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d};
use crate::shaders::NORM;

/// Mirrors `Params` in norm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    d: u32,
    row_stride: u32,
    eps: f32,
}

/// `eps` must be a finite positive number (it keeps the square root away from 0).
fn expect_eps(op: &str, eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(TensorError::param("eps", format!("{op} needs a finite eps > 0, got {eps}")));
    }
    Ok(())
}

/// Validate x / out (f32, same shape) and every per-feature vector (f32 `[d]`), then
/// dispatch one workgroup per row of x `[rows, d]`.
#[allow(clippy::too_many_arguments)]
fn launch(
    rec: &mut Recorder,
    op: &'static str,
    kernel: &'static str,
    x: &Tensor,
    vectors: &[(&str, &Tensor)],
    eps: f32,
    out: &Tensor,
    flops_per_elem: u64,
) -> Result<()> {
    let mut all: Vec<&Tensor> = vec![x, out];
    all.extend(vectors.iter().map(|(_, t)| *t));
    expect_same_device(op, &all)?;
    expect_dtype(op, "x", x, DType::F32)?;
    expect_dtype(op, "out", out, DType::F32)?;
    let d = x.dim(-1);
    for (name, t) in vectors {
        expect_dtype(op, name, t, DType::F32)?;
        expect_shape(op, name, t, &[d])?;
    }
    expect_shape(op, "out", out, x.shape())?;
    expect_eps(op, eps)?;
    let mut inputs: Vec<&Tensor> = vec![x];
    inputs.extend(vectors.iter().map(|(_, t)| *t));
    expect_no_alias(op, out, &inputs)?;
    let rows = x.numel() / d;
    expect_u32_len(op, x.numel())?;
    let (workgroups, row_stride) = grid_1d(x, rows, 1);
    let params = Params { rows: rows as u32, d: d as u32, row_stride, eps };
    let pipeline = rec.device().pipeline("norm", NORM, op, &[])?;
    let bytes = inputs.iter().map(|t| t.byte_len()).sum::<u64>() + out.byte_len();
    rec.dispatch(Dispatch {
        kernel,
        pipeline: &pipeline,
        inputs: &inputs,
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: flops_per_elem * x.numel() as u64,
        bytes,
    })
}

/// `out = x / sqrt(mean(x², dim=-1) + eps) * weight`; x, out f32 `[.., d]`, weight f32 `[d]`.
pub fn rms_norm(rec: &mut Recorder, x: &Tensor, weight: &Tensor, eps: f32, out: &Tensor) -> Result<()> {
    launch(rec, "rms_norm", "norm::rms_norm", x, &[("weight", weight)], eps, out, 4)
}

/// `out = (x - mean) / sqrt(var + eps) * weight + bias` over the last dim (biased variance,
/// like `torch.nn.functional.layer_norm`); x, out f32 `[.., d]`, weight and bias f32 `[d]`.
pub fn layer_norm(
    rec: &mut Recorder,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
    out: &Tensor,
) -> Result<()> {
    launch(rec, "layer_norm", "norm::layer_norm", x, &[("weight", weight), ("bias", bias)], eps, out, 8)
}
