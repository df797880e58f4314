//! Launcher for `wgsl/argmax.wgsl`: index of the largest entry of each row (greedy decoding).

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d};
use crate::shaders::ARGMAX;

/// Mirrors `Params` in argmax.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    n: u32,
    row_stride: u32,
    _pad: u32,
}

/// `out[r] = argmax(x[r, :])` over the last dim: x f32 `[.., n]` (any rank ≥ 1), out u32 of
/// shape `[rows]` or x's leading dims (`[1]` for a 1-D x). Ties give the smallest index, NaNs are ignored,
/// and a row with no non-NaN entry gives 0.
pub fn argmax(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    let op = "argmax";
    expect_same_device(op, &[x, out])?;
    expect_dtype(op, "x", x, DType::F32)?;
    expect_dtype(op, "out", out, DType::U32)?;
    // x: [rows, n]; out: x's leading dims, or flat [rows].
    let n = x.dim(-1);
    let rows = x.numel() / n;
    let leading = leading_dims(x.shape());
    if out.shape() != [rows] {
        expect_shape(op, "out", out, &leading)?;
    }
    expect_no_alias(op, out, &[x])?;
    expect_u32_len(op, x.numel())?;
    let (workgroups, row_stride) = grid_1d(x, rows, 1);
    let params = Params { rows: rows as u32, n: n as u32, row_stride, _pad: 0 };
    let pipeline = rec.device().pipeline("argmax", ARGMAX, "argmax", &[])?;
    rec.dispatch(Dispatch {
        kernel: "argmax::argmax",
        pipeline: &pipeline,
        inputs: &[x],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        // One comparison per element.
        flops: x.numel() as u64,
        bytes: x.byte_len() + out.byte_len(),
    })
}

/// The shape of argmax's output: x's shape without its last dim (`[1]` for a 1-D x).
pub fn leading_dims(shape: &[usize]) -> Vec<usize> {
    match shape {
        [_] => vec![1],
        _ => shape[..shape.len() - 1].to_vec(),
    }
}
