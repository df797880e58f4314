//! Launcher for `wgsl/kv_cache.wgsl`: append new K or V rows to a cache.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_u32_len, grid_1d};
use crate::shaders::KV_CACHE;

const WG: u32 = 256;

/// Mirrors `Params` in kv_cache.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    dst_offset: u32,
    row_stride: u32,
    _pad: u32,
}

/// `cache[pos..pos + n] = new` for `new` f32 `[n, n_kv_heads, head_dim]` and `cache` f32
/// `[max_ctx, n_kv_heads, head_dim]`. Errors when the rows do not fit ("context full").
pub fn kv_append(rec: &mut Recorder, new: &Tensor, cache: &Tensor, pos: usize) -> Result<()> {
    let op = "kv_append";
    expect_same_device(op, &[new, cache])?;
    expect_dtype(op, "new", new, DType::F32)?;
    expect_dtype(op, "cache", cache, DType::F32)?;
    for (name, t) in [("new", new), ("cache", cache)] {
        if t.rank() != 3 {
            return Err(TensorError::shape(
                op,
                format!("{name} must be [rows, n_kv_heads, head_dim], got {:?}", t.shape()),
            ));
        }
    }
    if new.shape()[1..] != cache.shape()[1..] {
        return Err(TensorError::shape(
            op,
            format!("new {:?} and cache {:?} must have the same [n_kv_heads, head_dim]", new.shape(), cache.shape()),
        ));
    }
    expect_no_alias(op, cache, &[new])?;
    let (n, max_ctx) = (new.dim(0), cache.dim(0));
    let end = pos.saturating_add(n);
    if end > max_ctx {
        return Err(TensorError::shape(
            op,
            format!("context full: appending {n} row(s) at position {pos} needs positions {pos}..{end}, but the cache holds {max_ctx}"),
        ));
    }
    expect_u32_len(op, cache.numel())?;
    let row = cache.dim(1) * cache.dim(2);
    let count = new.numel();
    let (workgroups, row_stride) = grid_1d(new, count, WG);
    let params = Params { n: count as u32, dst_offset: (pos * row) as u32, row_stride, _pad: 0 };
    let pipeline = rec.device().pipeline("kv_cache", KV_CACHE, "kv_append", &[])?;
    rec.dispatch(Dispatch {
        kernel: "kv_cache::kv_append",
        pipeline: &pipeline,
        inputs: &[new],
        outputs: &[cache],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: 0,
        bytes: 2 * new.byte_len(),
    })
}
