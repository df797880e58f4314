//! Launchers for `wgsl/attention.wgsl`: causal grouped-query attention of query rows over
//! a multi-slot KV cache (f16 or f32) with an online softmax. One kernel serves prefill
//! (many rows of one sequence), single-token decode and batched decode (one row per
//! sequence, each at its own slot and position): [`attend`]. Each workgroup computes all
//! the query heads of a GQA group (up to 8) from one coalesced read of their KV head; long
//! contexts split the keys over several workgroups and merge them in a second dispatch
//! ("flash decoding"). [`attention`] and [`attention_decode`] are the one-sequence forms.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::kv_cache::{cache_geometry, resolve_rows, CacheGeometry, Rows};
use crate::launch::{
    env_count, expect_dtype, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, is_cpu_adapter,
};
use std::sync::OnceLock;
use crate::shaders::{ATTENTION, ATTENTION_SUBGROUP};

/// Query heads one workgroup computes (`MAX_G`).
const MAX_G: usize = 8;
/// Cache words a lane reads per key row (`WPL`).
const WPL: usize = 4;
/// Largest head_dim the kernel supports.
pub const MAX_HEAD_DIM: usize = 256;
/// Split keys into chunks of at least `min_chunk` keys, aiming for about this many
/// workgroups in flight.
const TARGET_GROUPS: usize = 256;

/// The fewest keys a split takes when [`AttendOptions::chunk`] is `None`. A GPU wants
/// many workgroups in flight (decode has only n_kv_heads × splits of them), so 16: on an
/// H200 (2026-11-30, BENCHMARKS.md) Qwen2.5-0.5B decoded at 283, 309 and 340 tok/s with
/// 128, 64 and 16. A CPU adapter runs a few workgroups at a time, and every split adds a
/// partial state to write and merge, so 128. `KILN_ATTN_MIN_CHUNK` overrides it (tuning;
/// read once).
fn min_chunk(dev: &kiln_tensor::Device) -> usize {
    static OVERRIDE: OnceLock<Option<usize>> = OnceLock::new();
    if let Some(v) = *OVERRIDE.get_or_init(|| env_count("KILN_ATTN_MIN_CHUNK")) {
        return v.max(1);
    }
    if is_cpu_adapter(dev) {
        128
    } else {
        16
    }
}

/// Which `attend` entry point to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanePath {
    /// Subgroups where [`kiln_tensor::Device::subgroups`] and the key row fits a
    /// subgroup, else workgroup memory.
    Auto,
    /// attention_subgroup.wgsl; an error where it cannot run.
    Subgroup,
    /// attention_shared.wgsl (any adapter).
    Shared,
}

/// Knobs of [`attend_with`]; `Default` is what [`attend`] uses.
#[derive(Clone, Copy, Debug)]
pub struct AttendOptions {
    /// Which attention kernel variant to run.
    pub path: LanePath,
    /// Keys per split; `None` chooses it from the context length and the grid size.
    pub chunk: Option<usize>,
    /// Sliding window: a row at position p attends only keys `p + 1 - window ..= p`
    /// (Gemma 3's local layers, transformers' `sliding_window`); `None` attends `0..=p`.
    pub window: Option<usize>,
    /// Score scale; `None` is 1/sqrt(head_dim) (Gemma 3: `query_pre_attn_scalar^-0.5`).
    pub scale: Option<f32>,
}

impl Default for AttendOptions {
    fn default() -> Self {
        AttendOptions { path: LanePath::Auto, chunk: None, window: None, scale: None }
    }
}

/// How a call ran (for tests and traces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttendPlan {
    /// The subgroup entry point ran (else the workgroup-memory one).
    pub subgroups: bool,
    /// Lanes per key row.
    pub lanes: usize,
    /// Key splits (2 dispatches when > 1).
    pub n_splits: usize,
    /// Keys per split.
    pub chunk: usize,
}

/// Mirrors `Params` in attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_rows: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    capacity: u32,
    slot: u32,
    pos_offset: u32,
    per_row: u32,
    group: u32,
    heads_per_wg: u32,
    head_chunks: u32,
    lanes: u32,
    chunk: u32,
    n_splits: u32,
    scale: f32,
    window: u32,
}

/// Validated sizes of one call.
struct Geometry {
    n_rows: usize,
    n_heads: usize,
    cache: CacheGeometry,
    /// (slot, position) of each row.
    pairs: Vec<(usize, usize)>,
}

impl Geometry {
    /// Keys the rows attend, summed.
    fn keys(&self) -> u64 {
        self.pairs.iter().map(|&(_, p)| p as u64 + 1).sum()
    }
    /// 2 FLOPs for q·k and 2 for p·v per key, head and dim.
    fn flops(&self) -> u64 {
        4 * (self.n_heads * self.cache.head_dim) as u64 * self.keys()
    }
    /// K and V bytes read: each row's keys once per KV head (shared by its query heads).
    fn kv_bytes(&self) -> u64 {
        let elem = if self.cache.f16 { 2 } else { 4 };
        2 * elem * (self.cache.n_kv_heads * self.cache.head_dim) as u64 * self.keys()
    }
}

fn validate(op: &str, q: &Tensor, k_cache: &Tensor, v_cache: &Tensor, rows: &Rows, out: &Tensor) -> Result<Geometry> {
    expect_same_device(op, &[q, k_cache, v_cache, out])?;
    expect_dtype(op, "q", q, DType::F32)?;
    expect_dtype(op, "out", out, DType::F32)?;
    if q.rank() != 3 {
        return Err(TensorError::shape(op, format!("q must be [n_q, n_heads, head_dim], got {:?}", q.shape())));
    }
    let cache = cache_geometry(op, k_cache, v_cache)?;
    let (n_rows, n_heads, head_dim) = (q.dim(0), q.dim(1), q.dim(2));
    if cache.head_dim != head_dim {
        return Err(TensorError::shape(
            op,
            format!(
                "head_dim mismatch: q {:?} has {head_dim}, k_cache {:?} has {}",
                q.shape(),
                k_cache.shape(),
                cache.head_dim
            ),
        ));
    }
    if !n_heads.is_multiple_of(cache.n_kv_heads) {
        return Err(TensorError::shape(
            op,
            format!(
                "n_heads {n_heads} (q) must be a multiple of n_kv_heads {} (k_cache) for grouped-query attention",
                cache.n_kv_heads
            ),
        ));
    }
    if head_dim > MAX_HEAD_DIM {
        return Err(TensorError::shape(
            op,
            format!("head_dim {head_dim} exceeds the kernel's maximum of {MAX_HEAD_DIM}"),
        ));
    }
    expect_shape(op, "out", out, q.shape())?;
    expect_no_alias(op, out, &[q, k_cache, v_cache])?;
    resolve_rows(op, rows, n_rows, &cache, false)?;
    expect_u32_len(op, q.numel())?;
    let max_dim = q.device().limits().max_compute_workgroups_per_dimension as usize;
    if n_rows > max_dim {
        return Err(TensorError::shape(
            op,
            format!("{n_rows} query rows exceed the adapter's {max_dim} workgroups per grid dimension"),
        ));
    }
    Ok(Geometry { n_rows, n_heads, cache, pairs: rows.pairs(n_rows) })
}

/// Lanes per key row: the power of two that leaves each lane at most `WPL` words.
fn lanes_for(cache: &CacheGeometry) -> usize {
    let words = if cache.f16 { cache.head_dim / 2 } else { cache.head_dim };
    words.div_ceil(WPL).max(1).next_power_of_two()
}

/// Causal attention of `q` f32 `[n_rows, n_heads, head_dim]` over `k_cache`, `v_cache`
/// (f16 or f32, `[slots, capacity, n_kv_heads, head_dim]` or `[capacity, n_kv_heads,
/// head_dim]`) into `out` (like `q`): row r at (slot, pos) from `rows` attends positions
/// `0..=pos` of its slot (append its K/V first, [`crate::kv_cache::rope_kv_append`]).
/// `n_heads` a multiple of `n_kv_heads` (query head h reads kv head
/// `h / (n_heads / n_kv_heads)`), head_dim ≤ 256, scale 1/sqrt(head_dim).
pub fn attend(
    rec: &mut Recorder,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    rows: Rows,
    out: &Tensor,
) -> Result<AttendPlan> {
    attend_with(rec, q, k_cache, v_cache, rows, out, &AttendOptions::default())
}

/// [`attend`] with the entry point and the key split chosen by `opts`.
pub fn attend_with(
    rec: &mut Recorder,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    rows: Rows,
    out: &Tensor,
    opts: &AttendOptions,
) -> Result<AttendPlan> {
    let one_query = q.rank() == 3 && q.dim(0) == 1;
    let kernel = if one_query || matches!(rows, Rows::Table { .. }) {
        "attention::attention_decode"
    } else {
        "attention::attention"
    };
    run(rec, kernel, q, k_cache, v_cache, rows, out, opts)
}

#[allow(clippy::too_many_arguments)]
fn run(
    rec: &mut Recorder,
    kernel: &'static str,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    rows: Rows,
    out: &Tensor,
    opts: &AttendOptions,
) -> Result<AttendPlan> {
    let op = "attention";
    let g = validate(op, q, k_cache, v_cache, &rows, out)?;
    let dev = q.device().clone();
    let c = &g.cache;
    let lanes = lanes_for(c);
    let subgroup_fits = dev.subgroups() && lanes <= dev.info().subgroup_min_size as usize;
    let subgroups = match opts.path {
        LanePath::Auto => subgroup_fits,
        LanePath::Shared => false,
        LanePath::Subgroup if subgroup_fits => true,
        LanePath::Subgroup => {
            return Err(TensorError::param(
                "path",
                format!(
                    "the subgroup attention needs the SUBGROUP feature (KILN_NO_SUBGROUPS unset) and {lanes} lanes per key \
                     within the adapter's smallest subgroup ({}); this adapter {} SUBGROUP",
                    dev.info().subgroup_min_size,
                    if dev.features().contains(wgpu::Features::SUBGROUP) { "has" } else { "lacks" }
                ),
            ))
        }
    };

    let group = g.n_heads / c.n_kv_heads;
    let head_chunks = group.div_ceil(MAX_G);
    let heads_per_wg = group.div_ceil(head_chunks);
    let max_dim = dev.limits().max_compute_workgroups_per_dimension as usize;
    let grid_x = c.n_kv_heads * head_chunks;
    if grid_x > max_dim {
        return Err(TensorError::shape(
            op,
            format!("{grid_x} head groups exceed the adapter's {max_dim} workgroups per grid dimension"),
        ));
    }
    let max_keys = g.pairs.iter().map(|&(_, p)| p + 1).max().unwrap_or(1);
    let chunk = match opts.chunk {
        Some(0) => return Err(TensorError::param("chunk", "keys per split must be >= 1")),
        Some(ch) => ch.max(max_keys.div_ceil(max_dim)),
        None => {
            let want_splits = TARGET_GROUPS.div_ceil(grid_x * g.n_rows).max(1);
            max_keys.div_ceil(want_splits).max(min_chunk(&dev)).max(max_keys.div_ceil(max_dim))
        }
    };
    let n_splits = max_keys.div_ceil(chunk);
    let window = match opts.window {
        None => 0,
        Some(0) => return Err(TensorError::param("window", "a sliding window must hold at least 1 position")),
        // A window at least as long as every row's history masks nothing.
        Some(w) => u32::try_from(w).unwrap_or(u32::MAX),
    };
    let scale = match opts.scale {
        None => (1.0 / (c.head_dim as f64).sqrt()) as f32,
        Some(s) if s.is_finite() => s,
        Some(s) => return Err(TensorError::param("scale", format!("the attention scale must be finite, got {s}"))),
    };
    let (per_row, slot, pos_offset) = resolve_rows(op, &rows, g.n_rows, c, false)?;
    let params = Params {
        n_rows: g.n_rows as u32,
        n_heads: g.n_heads as u32,
        n_kv_heads: c.n_kv_heads as u32,
        head_dim: c.head_dim as u32,
        capacity: c.capacity as u32,
        slot,
        pos_offset,
        per_row,
        group: group as u32,
        heads_per_wg: heads_per_wg as u32,
        head_chunks: head_chunks as u32,
        lanes: lanes as u32,
        chunk: chunk as u32,
        n_splits: n_splits as u32,
        scale,
        window,
    };
    let overrides = [("KV_F16", if c.f16 { 1.0 } else { 0.0 })];
    let (module, source) =
        if subgroups { ("attention_subgroup", ATTENTION_SUBGROUP) } else { ("attention", ATTENTION) };
    let pipeline = dev.pipeline(module, source, "attend", &overrides)?;
    let rows_t = match &rows {
        Rows::Run { .. } => q, // a stand-in: the row positions are in the params
        Rows::Table { table, .. } => table,
    };
    let workgroups = [grid_x as u32, n_splits as u32, g.n_rows as u32];
    let plan = AttendPlan { subgroups, lanes, n_splits, chunk };
    if n_splits == 1 {
        rec.dispatch(Dispatch {
            kernel,
            pipeline: &pipeline,
            inputs: &[q, k_cache, v_cache, rows_t],
            outputs: &[out],
            params: bytemuck::bytes_of(&params),
            workgroups,
            flops: g.flops(),
            bytes: q.byte_len() + g.kv_bytes() + out.byte_len(),
        })?;
        return Ok(plan);
    }
    // partial[r, h, s] = (m, l, acc[0..head_dim]); the pool hands the buffer to later users
    // only after this launcher returns, i.e. to dispatches recorded (so run) after ours.
    let partial = Tensor::empty(&dev, &[g.n_rows, g.n_heads, n_splits, c.head_dim + 2], DType::F32)?;
    expect_u32_len(op, partial.numel())?;
    rec.dispatch(Dispatch {
        kernel,
        pipeline: &pipeline,
        inputs: &[q, k_cache, v_cache, rows_t],
        outputs: &[&partial],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: g.flops(),
        bytes: q.byte_len() + g.kv_bytes() + partial.byte_len(),
    })?;
    let pipeline = dev.pipeline("attention", ATTENTION, "combine", &overrides)?;
    rec.dispatch(Dispatch {
        kernel: "attention::decode_combine",
        pipeline: &pipeline,
        inputs: &[&partial],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups: [g.n_heads as u32, g.n_rows as u32, 1],
        // per split: exp + fma for l, and per dim exp + fma (the exp recomputed per dim).
        flops: (g.n_rows * g.n_heads * n_splits * (3 + 3 * c.head_dim)) as u64,
        bytes: partial.byte_len() + out.byte_len(),
    })?;
    Ok(plan)
}

/// Causal grouped-query attention of a chunk of queries of one sequence (slot 0):
/// query i of `q` `[n_q, n_heads, head_dim]` sits at position `pos_offset + i` and attends
/// cache positions `0..=pos_offset + i`. See [`attend`] for the caches.
pub fn attention(
    rec: &mut Recorder,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    pos_offset: usize,
    out: &Tensor,
) -> Result<()> {
    let rows = Rows::Run { slot: 0, start: pos_offset };
    run(rec, "attention::attention", q, k_cache, v_cache, rows, out, &AttendOptions::default()).map(|_| ())
}

/// [`attention`] for one query (`q` `[1, n_heads, head_dim]` at position `pos_offset`):
/// long contexts split the keys over workgroups and merge them in a second dispatch.
pub fn attention_decode(
    rec: &mut Recorder,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    pos_offset: usize,
    out: &Tensor,
) -> Result<()> {
    if q.rank() == 3 && q.dim(0) != 1 {
        return Err(TensorError::shape(
            "attention_decode",
            format!("decode takes one query, q must be [1, n_heads, head_dim], got {:?}", q.shape()),
        ));
    }
    let rows = Rows::Run { slot: 0, start: pos_offset };
    run(rec, "attention::attention_decode", q, k_cache, v_cache, rows, out, &AttendOptions::default()).map(|_| ())
}
