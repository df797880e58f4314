//! Launchers for `wgsl/kv_cache.wgsl`: write new K/V rows into a multi-slot KV cache,
//! RoPE fused in ([`rope_kv_append`], Qwen2/Llama: one dispatch rotates q into `q_out`
//! and writes rotated k and plain v into the caches) or not ([`kv_append_rows`], GPT-2),
//! and the plain f32 row copy [`kv_append`].
//!
//! A cache tensor is `[slots, capacity, n_kv_heads, head_dim]` (or `[capacity,
//! n_kv_heads, head_dim]`, one slot), f16 (half the bytes; two values per 32-bit word, so
//! any adapter reads it, no SHADER_F16 needed) or f32. [`Rows`] says which (slot,
//! position) each row of a call is.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d};
use crate::rope::{RopeMode, RopeTable};
use crate::shaders::KV_CACHE;

const WG: u32 = 256;

/// Where the rows of a call sit in a multi-slot cache.
#[derive(Clone, Copy, Debug)]
pub enum Rows<'a> {
    /// Row r is position `start + r` of slot `slot` (one sequence: prefill or decode).
    /// Carried in the dispatch parameters; nothing is uploaded.
    Run {
        /// The cache slot (sequence) all rows go to.
        slot: usize,
        /// The position of row 0.
        start: usize,
    },
    /// Row r is slot `host[r][0]`, position `host[r][1]` (a batched decode step, one row
    /// per sequence). The kernels read these pairs from `table` (u32, at least `2 * n_rows`
    /// elements), which the caller has filled with `host` (`Tensor::write`, allocated
    /// once and reused); the launchers check `host` against the cache.
    Table {
        /// u32 tensor of at least `2 * n_rows` elements holding `host`'s pairs, flattened.
        table: &'a Tensor,
        /// The same (slot, position) pairs on the host, one per row.
        host: &'a [[u32; 2]],
    },
}

impl Rows<'_> {
    /// (slot, position) of every one of `n_rows` rows.
    pub fn pairs(&self, n_rows: usize) -> Vec<(usize, usize)> {
        match self {
            Rows::Run { slot, start } => (0..n_rows).map(|r| (*slot, start + r)).collect(),
            Rows::Table { host, .. } => host.iter().map(|e| (e[0] as usize, e[1] as usize)).collect(),
        }
    }
}

/// Sizes of a K/V cache pair, checked.
#[derive(Clone, Copy, Debug)]
pub struct CacheGeometry {
    /// Independent sequences the cache holds (1 for a 3-D cache).
    pub slots: usize,
    /// Positions per slot.
    pub capacity: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// f16 storage (else f32).
    pub f16: bool,
}

/// Check `k_cache` and `v_cache` are a matching pair of caches.
pub fn cache_geometry(op: &str, k_cache: &Tensor, v_cache: &Tensor) -> Result<CacheGeometry> {
    let (slots, capacity, n_kv_heads, head_dim) = match k_cache.shape() {
        &[c, n, d] => (1, c, n, d),
        &[s, c, n, d] => (s, c, n, d),
        other => {
            return Err(TensorError::shape(
                op,
                format!("k_cache must be [slots, capacity, n_kv_heads, head_dim] or [capacity, n_kv_heads, head_dim], got {other:?}"),
            ))
        }
    };
    expect_shape(op, "v_cache", v_cache, k_cache.shape())?;
    let f16 = match k_cache.dtype() {
        DType::F16 => true,
        DType::F32 => false,
        other => return Err(TensorError::dtype(op, format!("k_cache must be f16 or f32, got {other}"))),
    };
    expect_dtype(op, "v_cache", v_cache, k_cache.dtype())?;
    if f16 && !head_dim.is_multiple_of(2) {
        return Err(TensorError::shape(
            op,
            format!("an f16 cache needs an even head_dim (two values per 32-bit word), got {head_dim}"),
        ));
    }
    expect_u32_len(op, k_cache.numel())?;
    Ok(CacheGeometry { slots, capacity, n_kv_heads, head_dim, f16 })
}

/// The dispatch parameters a [`Rows`] turns into: (per_row, slot, pos_offset), after
/// checking every row's slot and position against the cache. `distinct`: refuse two rows
/// at the same (slot, position) (they would race writing it).
pub(crate) fn resolve_rows(
    op: &str,
    rows: &Rows,
    n_rows: usize,
    g: &CacheGeometry,
    distinct: bool,
) -> Result<(u32, u32, u32)> {
    match rows {
        Rows::Run { slot, start } => {
            if *slot >= g.slots {
                return Err(TensorError::param("slot", format!("{op}: slot {slot} of a cache with {} slots", g.slots)));
            }
            let end = start.saturating_add(n_rows);
            if end > g.capacity {
                return Err(TensorError::shape(
                    op,
                    format!(
                        "context full: positions {start}..{end} of slot {slot}, but each slot holds {} positions",
                        g.capacity
                    ),
                ));
            }
            Ok((0, *slot as u32, *start as u32))
        }
        Rows::Table { table, host } => {
            expect_dtype(op, "rows table", table, DType::U32)?;
            if host.len() != n_rows {
                return Err(TensorError::shape(op, format!("{} (slot, position) pairs for {n_rows} rows", host.len())));
            }
            if table.numel() < 2 * n_rows {
                return Err(TensorError::shape(
                    op,
                    format!("rows table {:?} holds fewer than {n_rows} (slot, position) pairs", table.shape()),
                ));
            }
            for (r, &[slot, pos]) in host.iter().enumerate() {
                if slot as usize >= g.slots {
                    return Err(TensorError::param(
                        "slot",
                        format!("{op}: row {r} names slot {slot} of a cache with {} slots", g.slots),
                    ));
                }
                if pos as usize >= g.capacity {
                    return Err(TensorError::shape(
                        op,
                        format!(
                            "context full: row {r} at position {pos} of slot {slot}, but each slot holds {} positions",
                            g.capacity
                        ),
                    ));
                }
            }
            if distinct {
                let mut seen: Vec<[u32; 2]> = host.to_vec();
                seen.sort_unstable();
                if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
                    return Err(TensorError::param(
                        "rows",
                        format!("{op}: two rows write slot {} position {}", w[0][0], w[0][1]),
                    ));
                }
            }
            Ok((1, 0, 0))
        }
    }
}

/// The tensor bound as the rows table: `table`, or for [`Rows::Run`] a stand-in the
/// kernel never reads (its index is in the parameters).
fn rows_binding<'a>(rows: &Rows<'a>, stand_in: &'a Tensor) -> &'a Tensor {
    match rows {
        Rows::Run { .. } => stand_in,
        Rows::Table { table, .. } => table,
    }
}

/// Mirrors `Params` in kv_cache.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_rows: u32,
    q_pairs: u32,
    kv_pairs: u32,
    head_dim: u32,
    capacity: u32,
    slot: u32,
    pos_offset: u32,
    per_row: u32,
    interleaved: u32,
    row_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

/// Check `name` is f32 `[n_rows, heads, head_dim]`.
fn expect_rows_tensor(op: &str, name: &str, t: &Tensor, heads: Option<usize>, head_dim: usize) -> Result<()> {
    expect_dtype(op, name, t, DType::F32)?;
    let ok = t.rank() == 3 && t.dim(2) == head_dim && heads.is_none_or(|h| t.dim(1) == h);
    if !ok {
        let heads = heads.map_or("n_heads".to_string(), |h| h.to_string());
        return Err(TensorError::shape(
            op,
            format!("{name} must be [n_rows, {heads}, {head_dim}], got {:?}", t.shape()),
        ));
    }
    Ok(())
}

fn kv_overrides(g: &CacheGeometry) -> [(&'static str, f64); 1] {
    [("KV_F16", if g.f16 { 1.0 } else { 0.0 })]
}

/// One dispatch for a layer's new tokens (Qwen2/Llama):
/// `q_out = rope(q)`, `k_cache[slot, pos] = rope(k)`, `v_cache[slot, pos] = v`, the
/// caches' dtype (f16: rounded to nearest) for K and V.
///
/// - `q` f32 `[n_rows, n_heads, head_dim]`, `k`, `v` f32 `[n_rows, n_kv_heads, head_dim]`;
///   `q_out` like `q`; `k_cache`, `v_cache` as [`cache_geometry`] says.
/// - row r at the (slot, position) [`Rows`] gives; positions must be inside `table`.
#[allow(clippy::too_many_arguments)]
pub fn rope_kv_append(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    table: &RopeTable,
    mode: RopeMode,
    rows: Rows,
    q_out: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
) -> Result<()> {
    let op = "rope_kv_append";
    expect_same_device(op, &[q, k, v, &table.cos_sin, q_out, k_cache, v_cache])?;
    let g = cache_geometry(op, k_cache, v_cache)?;
    expect_rows_tensor(op, "q", q, None, g.head_dim)?;
    let n_rows = q.dim(0);
    expect_rows_tensor(op, "k", k, Some(g.n_kv_heads), g.head_dim)?;
    expect_shape(op, "v", v, k.shape())?;
    if k.dim(0) != n_rows {
        return Err(TensorError::shape(op, format!("q {:?} and k {:?} must have the same rows", q.shape(), k.shape())));
    }
    expect_shape(op, "q_out", q_out, q.shape())?;
    if g.head_dim != table.head_dim {
        return Err(TensorError::shape(
            op,
            format!("head_dim {} differs from the RoPE table's {}", g.head_dim, table.head_dim),
        ));
    }
    for out in [q_out, k_cache, v_cache] {
        expect_no_alias(op, out, &[q, k, v, &table.cos_sin])?;
    }
    expect_no_alias(op, k_cache, &[v_cache, q_out])?;
    expect_no_alias(op, v_cache, &[q_out])?;
    let (per_row, slot, pos_offset) = resolve_rows(op, &rows, n_rows, &g, true)?;
    if let Some(&(_, pos)) = rows.pairs(n_rows).iter().max_by_key(|(_, p)| *p) {
        if pos >= table.max_positions {
            return Err(TensorError::param(
                "pos_offset",
                format!("{op}: position {pos} is outside the RoPE table's {} positions", table.max_positions),
            ));
        }
    }
    let (q_pairs, kv_pairs) = (q.numel() / n_rows / 2, k.numel() / n_rows / 2);
    let count = n_rows * (q_pairs + 2 * kv_pairs);
    let (workgroups, row_stride) = grid_1d(q, count, WG);
    let params = Params {
        n_rows: n_rows as u32,
        q_pairs: q_pairs as u32,
        kv_pairs: kv_pairs as u32,
        head_dim: g.head_dim as u32,
        capacity: g.capacity as u32,
        slot,
        pos_offset,
        per_row,
        interleaved: (mode == RopeMode::Interleaved) as u32,
        row_stride,
        _pad0: 0,
        _pad1: 0,
    };
    expect_u32_len(op, count)?;
    let pipeline = rec.device().pipeline("kv_cache", KV_CACHE, "rope_kv_append", &kv_overrides(&g))?;
    let elem = if g.f16 { 2 } else { 4 };
    rec.dispatch(Dispatch {
        kernel: "kv_cache::rope_kv_append",
        pipeline: &pipeline,
        inputs: &[q, k, v, &table.cos_sin, rows_binding(&rows, q)],
        outputs: &[q_out, k_cache, v_cache],
        params: bytemuck::bytes_of(&params),
        workgroups,
        // 3 FLOPs per rotated value (x c ± x' s).
        flops: 3 * (q.numel() + k.numel()) as u64,
        bytes: q.byte_len() * 2
            + k.byte_len()
            + v.byte_len()
            + (2 * k.numel() * elem) as u64
            + (n_rows * g.head_dim * 4) as u64,
    })
}

/// [`rope_kv_append`] without RoPE and without q (GPT-2): `k_cache[slot, pos] = k`,
/// `v_cache[slot, pos] = v`, in one dispatch.
pub fn kv_append_rows(
    rec: &mut Recorder,
    k: &Tensor,
    v: &Tensor,
    rows: Rows,
    k_cache: &Tensor,
    v_cache: &Tensor,
) -> Result<()> {
    let op = "kv_append_rows";
    expect_same_device(op, &[k, v, k_cache, v_cache])?;
    let g = cache_geometry(op, k_cache, v_cache)?;
    expect_rows_tensor(op, "k", k, Some(g.n_kv_heads), g.head_dim)?;
    expect_shape(op, "v", v, k.shape())?;
    if !g.head_dim.is_multiple_of(2) {
        return Err(TensorError::shape(
            op,
            format!("head_dim must be even (values are written in pairs), got {}", g.head_dim),
        ));
    }
    for out in [k_cache, v_cache] {
        expect_no_alias(op, out, &[k, v])?;
    }
    expect_no_alias(op, k_cache, &[v_cache])?;
    let n_rows = k.dim(0);
    let (per_row, slot, pos_offset) = resolve_rows(op, &rows, n_rows, &g, true)?;
    let kv_pairs = k.numel() / n_rows / 2;
    let count = n_rows * 2 * kv_pairs;
    let (workgroups, row_stride) = grid_1d(k, count, WG);
    let params = Params {
        n_rows: n_rows as u32,
        q_pairs: 0,
        kv_pairs: kv_pairs as u32,
        head_dim: g.head_dim as u32,
        capacity: g.capacity as u32,
        slot,
        pos_offset,
        per_row,
        interleaved: 0,
        row_stride,
        _pad0: 0,
        _pad1: 0,
    };
    expect_u32_len(op, count)?;
    let pipeline = rec.device().pipeline("kv_cache", KV_CACHE, "kv_append_rows", &kv_overrides(&g))?;
    let elem = if g.f16 { 2 } else { 4 };
    rec.dispatch(Dispatch {
        kernel: "kv_cache::kv_append_rows",
        pipeline: &pipeline,
        inputs: &[k, v, rows_binding(&rows, k)],
        outputs: &[k_cache, v_cache],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: 0,
        bytes: k.byte_len() + v.byte_len() + (2 * k.numel() * elem) as u64,
    })
}

/// Mirrors `CopyParams` in kv_cache.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CopyParams {
    n: u32,
    dst_offset: u32,
    row_stride: u32,
    _pad: u32,
}

/// `cache[pos..pos + n] = new` for `new` f32 `[n, n_kv_heads, head_dim]` and `cache` f32
/// `[max_ctx, n_kv_heads, head_dim]` (one tensor, no RoPE; see [`rope_kv_append`] for the
/// models' fused append). Errors when the rows do not fit ("context full").
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
    let params = CopyParams { n: count as u32, dst_offset: (pos * row) as u32, row_stride, _pad: 0 };
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
