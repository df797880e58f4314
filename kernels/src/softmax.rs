//! Launchers for `wgsl/softmax.wgsl`: softmax and log_softmax over the last dim (f32).
//!
//! Entries equal to -inf count as masked: probability 0, log-probability -inf. A row
//! that is entirely -inf gives all 0 (softmax) / all -inf (log_softmax), never NaN.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d};
use crate::shaders::SOFTMAX;

/// Mirrors `Params` in softmax.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    n: u32,
    row_stride: u32,
    _pad: u32,
}

/// Validate `x` / `out` (f32, same shape) and dispatch one workgroup per row.
fn launch(rec: &mut Recorder, op: &'static str, kernel: &'static str, x: &Tensor, out: &Tensor) -> Result<()> {
    expect_same_device(op, &[x, out])?;
    expect_dtype(op, "x", x, DType::F32)?;
    expect_dtype(op, "out", out, DType::F32)?;
    expect_shape(op, "out", out, x.shape())?;
    expect_no_alias(op, out, &[x])?;
    // x: [rows, n], rows = product of the leading dims.
    let n = x.dim(-1);
    let rows = x.numel() / n;
    expect_u32_len(op, x.numel())?;
    let (workgroups, row_stride) = grid_1d(x, rows, 1);
    let params = Params { rows: rows as u32, n: n as u32, row_stride, _pad: 0 };
    let pipeline = rec.device().pipeline("softmax", SOFTMAX, op, &[])?;
    rec.dispatch(Dispatch {
        kernel,
        pipeline: &pipeline,
        inputs: &[x],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        // max, subtract + exp + add, then subtract + exp + scale: about 7 per element.
        flops: 7 * x.numel() as u64,
        bytes: x.byte_len() + out.byte_len(),
    })
}

/// `out = softmax(x, dim=-1)`; x and out f32 of the same shape (any rank ≥ 1).
pub fn softmax(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    launch(rec, "softmax", "softmax::softmax", x, out)
}

/// `out = log_softmax(x, dim=-1)`, computed as `x - max - log(Σ exp(x - max))`.
pub fn log_softmax(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    launch(rec, "log_softmax", "softmax::log_softmax", x, out)
}
