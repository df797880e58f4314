//! Launcher for `wgsl/matvec.wgsl`: `out = x · wᵀ` for one activation row (decode) or a
//! few (up to [`MAX_ROWS`], short prefills), f32 activations with f32/f16/bf16/GGUF-block
//! weights. More rows go through `matmul`.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_float_weight, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d};
use crate::shaders::MATVEC;

/// Output rows per workgroup (ROWS in matvec.wgsl).
const ROWS: u32 = 8;

/// Most activation rows one matvec takes: each row re-reads the weights, so past a few
/// rows a tiled matmul (which reads each weight tile once per 64 rows) is the better kernel.
pub const MAX_ROWS: usize = 16;

/// Mirrors `Params` in matvec.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    k: u32,
    row_stride: u32,
    _pad: u32,
}

/// Check `x` has at most MAX_ROWS rows and `w` is `[N, K]` with x's K; returns
/// (rows, N, K, out's shape).
fn dims(op: &str, x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize, Vec<usize>)> {
    let (lead, k) = x.shape().split_at(x.rank() - 1);
    let k = k[0];
    let rows: usize = lead.iter().product();
    if rows > MAX_ROWS {
        return Err(TensorError::shape(
            op,
            format!("x {:?} has {rows} rows but matvec takes at most {MAX_ROWS}; use matmul for more rows", x.shape()),
        ));
    }
    let [n, wk] = *w.shape() else {
        return Err(TensorError::shape(op, format!("w must be [N, K], got {:?}", w.shape())));
    };
    if wk != k {
        return Err(TensorError::shape(
            op,
            format!("K mismatch: x {:?} has K = {k} but w {:?} has K = {wk}", x.shape(), w.shape()),
        ));
    }
    let mut out_shape = x.shape().to_vec();
    *out_shape.last_mut().unwrap() = n;
    Ok((rows, n, k, out_shape))
}

/// Whether the 16-byte-load entry point applies: whole vec4s per row and aligned bindings.
fn can_use_vec4(x: &Tensor, w: &Tensor, k: usize) -> bool {
    if w.dtype().is_quantized() {
        return false; // block types decode through load_w in the scalar entry point
    }
    let per_vec4 = if w.dtype() == DType::F32 { 4 } else { 8 };
    k.is_multiple_of(per_vec4) && x.byte_offset().is_multiple_of(16) && w.byte_offset().is_multiple_of(16)
}

/// `out = x · wᵀ` for one or a few rows — PyTorch `F.linear(x, w)` (no bias).
///
/// - `x`: f32 `[K]` or `[.., K]` with at most [`MAX_ROWS`] rows.
/// - `w`: `[N, K]`, f32, f16, bf16 or a GGUF block type.
/// - `out`: f32 x's shape with K replaced by N.
pub fn matvec(rec: &mut Recorder, x: &Tensor, w: &Tensor, out: &Tensor) -> Result<()> {
    let op = "matvec";
    expect_same_device(op, &[x, w, out])?;
    expect_dtype(op, "x", x, DType::F32)?;
    let w_code = expect_float_weight(op, "w", w)?;
    expect_dtype(op, "out", out, DType::F32)?;
    let (rows, n, k, out_shape) = dims(op, x, w)?;
    expect_shape(op, "out", out, &out_shape)?;
    expect_no_alias(op, out, &[x, w])?;
    expect_u32_len(op, w.numel())?;

    let (entry, kernel) = if can_use_vec4(x, w, k) {
        ("matvec_vec4", "matvec::matvec_vec4")
    } else {
        ("matvec", "matvec::matvec")
    };
    let (mut workgroups, row_stride) = grid_1d(out, n, ROWS);
    workgroups[2] = rows as u32; // z: the row of x
    let params = Params { n: n as u32, k: k as u32, row_stride, _pad: 0 };
    let pipeline = rec.device().pipeline("matvec", MATVEC, entry, &[("W_DTYPE", w_code as f64)])?;
    rec.dispatch(Dispatch {
        kernel,
        pipeline: &pipeline,
        inputs: &[x, w],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: 2 * rows as u64 * n as u64 * k as u64,
        bytes: w.byte_len() + x.byte_len() + out.byte_len(),
    })
}
