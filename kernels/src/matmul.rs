//! Launcher for `wgsl/matmul.wgsl`: `out = a · wᵀ` (prefill linear layers, batched
//! products), f32 activations with f32/f16/bf16 or GGUF block weights.
//!
//! The kernel stages weight tiles in workgroup memory as f32 or, on devices with
//! SHADER_F16, as f16 ([`WeightTile`]). f16 tiles hold GGUF blocks' integer quants (exact
//! in f16; scales and mins are applied in f32) and f16 weights exactly, so they change
//! nothing but summation order for those; [`matmul`] picks them for f16 and GGUF block
//! weights when [`Device::f16`] holds (SHADER_F16, and `KILN_NO_F16=1` not set), and f32 tiles
//! otherwise (f32 and bf16 weights would be rounded to f16's precision and range).
//! Activations and multiply-adds are f32 on both.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Device, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{
    expect_dtype, expect_float_weight, expect_no_alias, expect_same_device, expect_shape, expect_u32_len,
};
use crate::shaders::{MATMUL, MATMUL_F16};

/// The element type of the weight tile the kernel stages in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightTile {
    /// f16 tiles for f16 and GGUF block weights when the device has SHADER_F16 and
    /// `KILN_NO_F16=1` is not set ([`Device::f16`]), f32 tiles otherwise ([`auto_weight_tile`]).
    Auto,
    /// f32 tiles: every weight as dequantized (every device).
    F32,
    /// f16 tiles (SHADER_F16 devices only): the quants of GGUF block weights, the values
    /// of dense weights rounded to f16 (exact for f16 weights).
    F16,
}

/// What [`WeightTile::Auto`] resolves to for weights of `dtype` on `dev`: `F16` for f16 and
/// GGUF block weights where [`Device::f16`] holds (SHADER_F16, not `KILN_NO_F16=1`), else `F32`.
pub fn auto_weight_tile(dev: &Device, dtype: DType) -> WeightTile {
    let f16_ok = dev.f16();
    if f16_ok && (dtype == DType::F16 || dtype.is_quantized()) {
        WeightTile::F16
    } else {
        WeightTile::F32
    }
}

/// Output rows per workgroup (BM in matmul.wgsl).
const TILE_M: usize = 64;
/// Output columns per workgroup (BN in matmul.wgsl).
const TILE_N: usize = 64;

/// Mirrors `Params` in matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    w_batch_stride: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// The problem a matmul call describes, after validation.
#[derive(Debug)]
struct Dims {
    /// Product of a's leading dimensions (1 when a is rank 1 or 2).
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    /// w is `[batch, N, K]` rather than one `[N, K]` shared by every batch.
    w_batched: bool,
    /// The shape `out` must have: a's leading dims, then N.
    out_shape: Vec<usize>,
}

/// Read batch, M, K from `a` and N (and whether it is batched) from `w`.
fn dims(op: &str, a: &Tensor, w: &Tensor) -> Result<Dims> {
    // a: [K] (one row) or [..., M, K]
    let (lead, m, k) = match a.shape() {
        [k] => (&[][..], 1, *k),
        [lead @ .., m, k] => (lead, *m, *k),
        [] => unreachable!("tensors have at least one dimension"),
    };
    let batch: usize = lead.iter().product();
    // w: [N, K] or [..., N, K] whose leading dims hold `batch` matrices
    let (w_lead, n, wk) = match w.shape() {
        [lead @ .., n, k] => (lead, *n, *k),
        _ => return Err(TensorError::shape(op, format!("w must be [N, K] or [batch, N, K], got {:?}", w.shape()))),
    };
    if wk != k {
        return Err(TensorError::shape(
            op,
            format!("K mismatch: a {:?} has K = {k} but w {:?} has K = {wk}", a.shape(), w.shape()),
        ));
    }
    let w_batched = !w_lead.is_empty();
    let w_batch: usize = w_lead.iter().product();
    if w_batched && w_batch != batch {
        return Err(TensorError::shape(
            op,
            format!(
                "batch mismatch: w {:?} holds {w_batch} matrices but a {:?} has batch {batch}; \
                 w must be [N, K] (shared) or have a's batch",
                w.shape(),
                a.shape()
            ),
        ));
    }
    let mut out_shape = a.shape().to_vec();
    *out_shape.last_mut().unwrap() = n;
    Ok(Dims { batch, m, n, k, w_batched, out_shape })
}

/// `out = a · wᵀ` — PyTorch `F.linear(a, w)` (no bias), i.e. `a @ w.float().mT`, with
/// the weight tile chosen by [`auto_weight_tile`].
///
/// - `a`: f32 `[..., M, K]` (leading dims are a batch) or `[K]` (one row).
/// - `w`: `[N, K]` shared by the whole batch, or `[B, N, K]` (any leading dims whose
///   product is a's batch); f32, f16, bf16 or a GGUF block type (rows of whole blocks).
/// - `out`: f32, a's shape with the last dim replaced by N.
pub fn matmul(rec: &mut Recorder, a: &Tensor, w: &Tensor, out: &Tensor) -> Result<()> {
    matmul_with(rec, a, w, out, WeightTile::Auto)
}

/// [`matmul`] with the weight tile's type chosen by the caller; `WeightTile::F16` on a
/// device without SHADER_F16 is an error.
pub fn matmul_with(rec: &mut Recorder, a: &Tensor, w: &Tensor, out: &Tensor, tile: WeightTile) -> Result<()> {
    let op = "matmul";
    expect_same_device(op, &[a, w, out])?;
    expect_dtype(op, "a", a, DType::F32)?;
    let w_code = expect_float_weight(op, "w", w)?;
    expect_dtype(op, "out", out, DType::F32)?;
    let d = dims(op, a, w)?;
    expect_shape(op, "out", out, &d.out_shape)?;
    expect_no_alias(op, out, &[a, w])?;
    for t in [a, w, out] {
        expect_u32_len(op, t.numel())?;
    }

    let params = Params {
        m: d.m as u32,
        n: d.n as u32,
        k: d.k as u32,
        batch: d.batch as u32,
        w_batch_stride: if d.w_batched { (d.n * d.k) as u32 } else { 0 },
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    };
    // Batches beyond the z limit are looped over inside the kernel.
    let max_z = rec.device().limits().max_compute_workgroups_per_dimension as usize;
    let workgroups = [d.n.div_ceil(TILE_N) as u32, d.m.div_ceil(TILE_M) as u32, d.batch.min(max_z) as u32];
    let tile = match tile {
        WeightTile::Auto => auto_weight_tile(rec.device(), w.dtype()),
        chosen => chosen,
    };
    let (module, source, kernel) = match tile {
        WeightTile::F16 => {
            if !rec.device().features().contains(wgpu::Features::SHADER_F16) {
                return Err(TensorError::dtype(
                    op,
                    format!("f16 weight tiles need the SHADER_F16 feature, which {} lacks", rec.device().info().name),
                ));
            }
            ("matmul_f16", MATMUL_F16, "matmul::matmul_f16")
        }
        _ => ("matmul", MATMUL, "matmul::matmul"),
    };
    let pipeline = rec.device().pipeline(module, source, "matmul", &[("W_DTYPE", w_code as f64)])?;
    rec.dispatch(Dispatch {
        kernel,
        pipeline: &pipeline,
        inputs: &[a, w],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: 2 * d.batch as u64 * d.m as u64 * d.n as u64 * d.k as u64,
        bytes: a.byte_len() + w.byte_len() + out.byte_len(),
    })
}
