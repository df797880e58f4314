//! Launchers for `wgsl/attention.wgsl`: causal grouped-query attention over a KV cache
//! with an online softmax, for prefill ([`attention`]) and single-token decode
//! ([`attention_decode`], split over the keys "flash-decoding" style when the context is long).

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d};
use crate::shaders::ATTENTION;

/// Threads per workgroup = keys per tile (`WG` in attention.wgsl).
const TILE: usize = 64;
/// Largest head_dim the kernel holds in shared memory (`MAX_HD` in attention.wgsl).
pub const MAX_HEAD_DIM: usize = 256;
/// Decode splits the keys into chunks of at least this many keys (two tiles)...
const DECODE_MIN_CHUNK: usize = 2 * TILE;
/// ...aiming for about this many workgroups in flight across all heads.
const DECODE_TARGET_GROUPS: usize = 256;

/// Mirrors `Params` in attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_q: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    pos_offset: u32,
    row_stride: u32,
    chunk: u32,
    n_splits: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// Validated sizes of one attention call.
struct Geometry {
    n_q: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    pos_offset: usize,
}

impl Geometry {
    /// (query, key) pairs the causal mask lets through.
    fn pairs(&self) -> u64 {
        let (n, p) = (self.n_q as u64, self.pos_offset as u64);
        n * p + n * (n + 1) / 2
    }

    /// 2 FLOPs for q·k and 2 for p·v per pair, per head and dim.
    fn flops(&self) -> u64 {
        4 * (self.n_heads * self.head_dim) as u64 * self.pairs()
    }

    /// The K and V cache rows the queries read (each once at minimum).
    fn kv_bytes(&self) -> u64 {
        2 * 4 * ((self.pos_offset + self.n_q) * self.n_kv_heads * self.head_dim) as u64
    }

    fn params(&self, row_stride: u32, chunk: usize, n_splits: usize) -> Params {
        Params {
            n_q: self.n_q as u32,
            n_heads: self.n_heads as u32,
            n_kv_heads: self.n_kv_heads as u32,
            head_dim: self.head_dim as u32,
            pos_offset: self.pos_offset as u32,
            row_stride,
            chunk: chunk as u32,
            n_splits: n_splits as u32,
            scale: (1.0 / (self.head_dim as f64).sqrt()) as f32,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        }
    }
}

fn validate(
    op: &str,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    pos_offset: usize,
    out: &Tensor,
) -> Result<Geometry> {
    expect_same_device(op, &[q, k_cache, v_cache, out])?;
    for (name, t) in [("q", q), ("k_cache", k_cache), ("v_cache", v_cache), ("out", out)] {
        expect_dtype(op, name, t, DType::F32)?;
    }
    if q.rank() != 3 {
        return Err(TensorError::shape(op, format!("q must be [n_q, n_heads, head_dim], got {:?}", q.shape())));
    }
    if k_cache.rank() != 3 {
        return Err(TensorError::shape(
            op,
            format!("k_cache must be [max_ctx, n_kv_heads, head_dim], got {:?}", k_cache.shape()),
        ));
    }
    expect_shape(op, "v_cache", v_cache, k_cache.shape())?;
    let (n_q, n_heads, head_dim) = (q.dim(0), q.dim(1), q.dim(2));
    let (max_ctx, n_kv_heads) = (k_cache.dim(0), k_cache.dim(1));
    if k_cache.dim(2) != head_dim {
        return Err(TensorError::shape(
            op,
            format!(
                "head_dim mismatch: q {:?} has {head_dim}, k_cache {:?} has {}",
                q.shape(),
                k_cache.shape(),
                k_cache.dim(2)
            ),
        ));
    }
    if n_heads % n_kv_heads != 0 {
        return Err(TensorError::shape(
            op,
            format!("n_heads {n_heads} (q) must be a multiple of n_kv_heads {n_kv_heads} (k_cache) for grouped-query attention"),
        ));
    }
    if head_dim > MAX_HEAD_DIM {
        return Err(TensorError::shape(
            op,
            format!("head_dim {head_dim} exceeds the kernel's maximum of {MAX_HEAD_DIM}"),
        ));
    }
    let end = pos_offset.saturating_add(n_q);
    if end > max_ctx {
        return Err(TensorError::shape(
            op,
            format!("queries at positions {pos_offset}..{end} need that many cache rows, but the cache holds {max_ctx} (context full)"),
        ));
    }
    expect_shape(op, "out", out, q.shape())?;
    expect_no_alias(op, out, &[q, k_cache, v_cache])?;
    expect_u32_len(op, k_cache.numel())?;
    expect_u32_len(op, q.numel())?;
    Ok(Geometry { n_q, n_heads, n_kv_heads, head_dim, pos_offset })
}

/// One workgroup per (query, head), each walking all the keys its query may see.
fn launch_full(
    rec: &mut Recorder,
    kernel: &'static str,
    g: &Geometry,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
) -> Result<()> {
    let groups = g.n_q * g.n_heads;
    let (workgroups, row_stride) = grid_1d(out, groups, 1);
    let params = g.params(row_stride, 0, 1);
    let pipeline = rec.device().pipeline("attention", ATTENTION, "attention", &[])?;
    rec.dispatch(Dispatch {
        kernel,
        pipeline: &pipeline,
        inputs: &[q, k, v],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: g.flops(),
        bytes: q.byte_len() + g.kv_bytes() + out.byte_len(),
    })
}

/// Causal grouped-query attention of a chunk of queries over the KV cache.
///
/// - `q` f32 `[n_q, n_heads, head_dim]`: query i sits at position `pos_offset + i` and
///   attends cache rows `0..=pos_offset + i` (append this chunk's K/V with
///   [`crate::kv_cache::kv_append`] first).
/// - `k_cache`, `v_cache` f32 `[max_ctx, n_kv_heads, head_dim]`, `n_heads` a multiple of
///   `n_kv_heads` (query head h reads kv head `h / (n_heads / n_kv_heads)`), head_dim ≤ 256.
/// - `out` f32 `[n_q, n_heads, head_dim]`. Scale 1/sqrt(head_dim).
pub fn attention(
    rec: &mut Recorder,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    pos_offset: usize,
    out: &Tensor,
) -> Result<()> {
    let g = validate("attention", q, k_cache, v_cache, pos_offset, out)?;
    launch_full(rec, "attention::attention", &g, q, k_cache, v_cache, out)
}

/// Keys per split for a decode step over `n_keys` keys, aiming at
/// `DECODE_TARGET_GROUPS` workgroups; a whole number of tiles.
fn decode_chunk(n_keys: usize, n_heads: usize, max_groups_per_dim: usize) -> usize {
    let want_splits = DECODE_TARGET_GROUPS.div_ceil(n_heads).max(1);
    let chunk = n_keys.div_ceil(want_splits).div_ceil(TILE) * TILE;
    // Never more splits than one grid dimension allows.
    let min_for_grid = n_keys.div_ceil(max_groups_per_dim).div_ceil(TILE) * TILE;
    chunk.max(DECODE_MIN_CHUNK).max(min_for_grid)
}

/// [`attention`] for one query (`q` `[1, n_heads, head_dim]` at position `pos_offset`).
///
/// Short contexts use the same kernel as prefill. Longer ones split the keys into chunks
/// handled by separate workgroups (`decode_partial`, each leaving its running max, sum and
/// unnormalised accumulator in a scratch tensor) that `decode_combine` then merges, so a
/// decode step keeps many workgroups busy instead of one per head.
pub fn attention_decode(
    rec: &mut Recorder,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    pos_offset: usize,
    out: &Tensor,
) -> Result<()> {
    let op = "attention_decode";
    let g = validate(op, q, k_cache, v_cache, pos_offset, out)?;
    if g.n_q != 1 {
        return Err(TensorError::shape(
            op,
            format!("decode takes one query, q must be [1, n_heads, head_dim], got {:?}", q.shape()),
        ));
    }
    let n_keys = pos_offset + 1;
    let max_dim = q.device().limits().max_compute_workgroups_per_dimension as usize;
    let chunk = decode_chunk(n_keys, g.n_heads, max_dim);
    let n_splits = n_keys.div_ceil(chunk);
    if n_splits == 1 {
        return launch_full(rec, "attention::attention_decode", &g, q, k_cache, v_cache, out);
    }
    // partial[h, s] = (m, l, acc[0..head_dim]); the pool hands the buffer to later users
    // only after this launcher returns, i.e. to dispatches recorded (so run) after ours.
    let partial = Tensor::empty(q.device(), &[g.n_heads, n_splits, g.head_dim + 2], DType::F32)?;
    let params = g.params(0, chunk, n_splits);
    let pipeline = rec.device().pipeline("attention", ATTENTION, "decode_partial", &[])?;
    rec.dispatch(Dispatch {
        kernel: "attention::decode_partial",
        pipeline: &pipeline,
        inputs: &[q, k_cache, v_cache],
        outputs: &[&partial],
        params: bytemuck::bytes_of(&params),
        workgroups: [g.n_heads as u32, n_splits as u32, 1],
        flops: g.flops(),
        bytes: q.byte_len() + g.kv_bytes() + partial.byte_len(),
    })?;
    let pipeline = rec.device().pipeline("attention", ATTENTION, "decode_combine", &[])?;
    rec.dispatch(Dispatch {
        kernel: "attention::decode_combine",
        pipeline: &pipeline,
        inputs: &[&partial],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups: [g.n_heads as u32, 1, 1],
        // per split: exp + fma for l, and per dim exp + fma (the exp recomputed per dim).
        flops: (g.n_heads * n_splits * (3 + 3 * g.head_dim)) as u64,
        bytes: partial.byte_len() + out.byte_len(),
    })
}
