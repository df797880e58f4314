//! Small helpers every launcher uses: shape/dtype checks and grid sizing.

use kiln_tensor::{DType, Device, Result, Tensor, TensorError};

/// A software adapter (lavapipe, WARP, SwiftShader): it runs few workgroups at a time and
/// pays for every load instruction, so launchers share loads more widely there and split
/// work less finely than on a GPU.
pub(crate) fn is_cpu_adapter(dev: &Device) -> bool {
    dev.info().device_type == wgpu::DeviceType::Cpu
}

/// A tuning override from the environment (`KILN_MATVEC_ROWS`, `KILN_ATTN_MIN_CHUNK`, ...):
/// a whole number; unset or not a number means none. Callers read it once (`OnceLock`).
pub(crate) fn env_count(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Workgroup grid for `n` invocations of a `wg`-wide 1-D kernel, folded into 2-D when it
/// exceeds the per-dimension limit. Returns (workgroups, invocations per grid row).
pub fn grid_1d(t: &Tensor, n: usize, wg: u32) -> ([u32; 3], u32) {
    let groups = (n as u64).div_ceil(wg as u64);
    let max = t.device().limits().max_compute_workgroups_per_dimension as u64;
    if groups <= max {
        ([groups as u32, 1, 1], groups as u32 * wg)
    } else {
        let y = groups.div_ceil(max);
        let x = groups.div_ceil(y);
        ([x as u32, y as u32, 1], x as u32 * wg)
    }
}

/// Refuse `t` (called `name` in the message) unless its dtype is `want`.
pub fn expect_dtype(op: &str, name: &str, t: &Tensor, want: DType) -> Result<()> {
    if t.dtype() != want {
        return Err(TensorError::dtype(op, format!("{name} must be {want}, got {}", t.dtype())));
    }
    Ok(())
}

/// A weight in any dtype `load_w` reads (f32, f16, bf16 or a GGUF block type); for block
/// types every row (last dimension) must be whole blocks. Returns the `W_DTYPE` code.
pub fn expect_float_weight(op: &str, name: &str, t: &Tensor) -> Result<u32> {
    let code = t.dtype().weight_code().ok_or_else(|| {
        TensorError::dtype(op, format!("{name} must be f32, f16, bf16 or a GGUF block type, got {}", t.dtype()))
    })?;
    let block = t.dtype().block_size();
    if !t.dim(-1).is_multiple_of(block) {
        return Err(TensorError::shape(
            op,
            format!("{name} {:?} is {}: rows must be whole blocks of {block} elements", t.shape(), t.dtype()),
        ));
    }
    Ok(code)
}

/// Refuse `t` (called `name` in the message) unless its shape is exactly `want`.
pub fn expect_shape(op: &str, name: &str, t: &Tensor, want: &[usize]) -> Result<()> {
    if t.shape() != want {
        return Err(TensorError::shape(op, format!("{name} must have shape {want:?}, got {:?}", t.shape())));
    }
    Ok(())
}

/// Refuse tensors that are not all on the device of the first one; `tensors` must not be
/// empty.
pub fn expect_same_device(op: &str, tensors: &[&Tensor]) -> Result<()> {
    let first = tensors[0].device().wgpu();
    if tensors.iter().any(|t| t.device().wgpu() != first) {
        return Err(TensorError::shape(op, "tensors live on different devices"));
    }
    Ok(())
}

/// Check an element count fits the u32 indices the kernels use.
pub fn expect_u32_len(op: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| TensorError::shape(op, format!("{n} elements exceed the 2^32 kernels can index")))
}

/// A dispatch may not read and write the same buffer (wgpu forbids the usage conflict),
/// so an output must not share storage with any input.
pub fn expect_no_alias(op: &str, out: &Tensor, inputs: &[&Tensor]) -> Result<()> {
    if inputs.iter().any(|i| i.same_storage(out)) {
        return Err(TensorError::shape(
            op,
            "the output must be a different buffer from every input (no in-place kernels)",
        ));
    }
    Ok(())
}
