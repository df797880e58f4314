//! Launchers for `wgsl/elementwise.wgsl`: add, mul, silu, gelu_tanh, swiglu (all f32).

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d};
use crate::shaders::ELEMENTWISE;

const WG: u32 = 256;

/// Mirrors `Params` in elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    b_len: u32,
    row_stride: u32,
    _pad: u32,
}

fn launch(
    rec: &mut Recorder,
    entry: &'static str,
    kernel: &'static str,
    inputs: &[&Tensor],
    out: &Tensor,
    b_len: usize,
    flops_per_elem: u64,
) -> Result<()> {
    expect_no_alias(kernel, out, inputs)?;
    let n = out.numel();
    let (workgroups, row_stride) = grid_1d(out, n, WG);
    let params = Params { n: expect_u32_len(kernel, n)?, b_len: b_len as u32, row_stride, _pad: 0 };
    let pipeline = rec.device().pipeline("elementwise", ELEMENTWISE, entry, &[])?;
    let bytes = (inputs.iter().map(|t| t.byte_len()).sum::<u64>()) + out.byte_len();
    rec.dispatch(Dispatch {
        kernel,
        pipeline: &pipeline,
        inputs,
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: flops_per_elem * n as u64,
        bytes,
    })
}

/// `a` op `b` where `b` is either `a`'s shape or a trailing part of it (broadcast).
fn binary(
    rec: &mut Recorder,
    op: &'static str,
    kernel: &'static str,
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
) -> Result<()> {
    expect_same_device(op, &[a, b, out])?;
    for (name, t) in [("a", a), ("b", b), ("out", out)] {
        expect_dtype(op, name, t, DType::F32)?;
    }
    expect_shape(op, "out", out, a.shape())?;
    let trailing = a.shape().ends_with(b.shape()) || b.numel() == 1;
    if !trailing {
        return Err(TensorError::shape(
            op,
            format!("b {:?} must equal a {:?} or match its trailing dimensions", b.shape(), a.shape()),
        ));
    }
    launch(rec, op, kernel, &[a, b], out, b.numel(), 1)
}

/// `out = a + b` (b broadcast over a's leading dimensions).
pub fn add(rec: &mut Recorder, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(rec, "add", "elementwise::add", a, b, out)
}

/// `out = a * b` (b broadcast over a's leading dimensions).
pub fn mul(rec: &mut Recorder, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(rec, "mul", "elementwise::mul", a, b, out)
}

/// `out = silu(gate) * up`, the SwiGLU MLP activation (all three the same shape).
pub fn swiglu(rec: &mut Recorder, gate: &Tensor, up: &Tensor, out: &Tensor) -> Result<()> {
    let op = "swiglu";
    expect_same_device(op, &[gate, up, out])?;
    for (name, t) in [("gate", gate), ("up", up), ("out", out)] {
        expect_dtype(op, name, t, DType::F32)?;
    }
    expect_shape(op, "up", up, gate.shape())?;
    expect_shape(op, "out", out, gate.shape())?;
    launch(rec, op, "elementwise::swiglu", &[gate, up], out, up.numel(), 5)
}

fn unary(
    rec: &mut Recorder,
    op: &'static str,
    kernel: &'static str,
    a: &Tensor,
    out: &Tensor,
    flops: u64,
) -> Result<()> {
    expect_same_device(op, &[a, out])?;
    expect_dtype(op, "a", a, DType::F32)?;
    expect_dtype(op, "out", out, DType::F32)?;
    expect_shape(op, "out", out, a.shape())?;
    launch(rec, op, kernel, &[a], out, 1, flops)
}

/// `out = a * sigmoid(a)`.
pub fn silu(rec: &mut Recorder, a: &Tensor, out: &Tensor) -> Result<()> {
    unary(rec, "silu", "elementwise::silu", a, out, 4)
}

/// GELU, tanh approximation (GPT-2's `gelu_new`).
pub fn gelu_tanh(rec: &mut Recorder, a: &Tensor, out: &Tensor) -> Result<()> {
    unary(rec, "gelu_tanh", "elementwise::gelu_tanh", a, out, 8)
}
