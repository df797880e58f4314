//! Launchers for the matvec kernels: `out = x · wᵀ` for one activation row (decode) or
//! a few (up to [`MAX_ROWS`]: batched decode, short prefills), f32 activations with
//! f32/f16/bf16/GGUF-block weights. More rows go through `matmul`.
//!
//! - The **block matvec** (`wgsl/matvec_core.wgsl` with one family file per weight format:
//!   `matvec_float.wgsl`, `matvec_q32.wgsl`, `matvec_qk.wgsl`, `matvec_q6k.wgsl`) decodes every block once
//!   for all M rows, and can fold a norm in front and a bias, SwiGLU/GELU and a residual
//!   add behind ([`matvec_fused`]). It needs K % 4 == 0 and a 16-byte aligned x.
//! - The **word matvec** (`wgsl/matvec.wgsl`) takes any shape, without fusions; the plain
//!   [`matvec`] uses it where the block matvec does not apply.
//!
//! Both have a subgroup and a workgroup-memory variant of their reduction where it
//! matters: the block matvec uses `subgroupAdd` when [`Device::subgroups`] is on.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Device, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{
    env_count, expect_dtype, expect_float_weight, expect_no_alias, expect_same_device, expect_shape, expect_u32_len,
    grid_1d, is_cpu_adapter,
};
use crate::shaders;
use std::sync::OnceLock;

/// Accumulators per invocation of the block matvec (NACC in matvec_core.wgsl): the
/// activation rows times the weight rows of a workgroup.
const BLOCK_ACCS: usize = 32;
/// Most weight rows per workgroup of the block matvec (MAX_ROWS in matvec_core.wgsl).
const BLOCK_MAX_ROWS: usize = 16;
/// Output rows per workgroup of the word matvec (ROWS in matvec.wgsl).
const WORD_ROWS: u32 = 8;

/// Most activation rows one matvec takes (MAX_M in matvec_core.wgsl). Past that a tiled
/// matmul, which reuses each weight tile for 64 rows, is the better kernel.
pub const MAX_ROWS: usize = 16;

/// A norm folded in front of the matvec: x is normalised (per activation row, over K)
/// as it is loaded, so no normalised copy of x is written.
#[derive(Clone, Copy)]
pub enum FoldedNorm<'a> {
    /// `x * rsqrt(mean(x²) + eps) * weight` (Qwen2RMSNorm / LlamaRMSNorm).
    Rms {
        /// `[K]` f32 scale.
        weight: &'a Tensor,
        /// Added to the mean square before the square root.
        eps: f32,
    },
    /// `(x - mean) * rsqrt(var + eps) * weight + bias` (nn.LayerNorm).
    Layer {
        /// `[K]` f32 scale.
        weight: &'a Tensor,
        /// `[K]` f32 shift.
        bias: &'a Tensor,
        /// Added to the variance before the square root.
        eps: f32,
    },
}

/// The activation applied in the matvec's epilogue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// No activation.
    #[default]
    None,
    /// `F.silu(y[:, :N/2]) * y[:, N/2:]`: w holds the gate rows, then the up rows.
    SwiGlu,
    /// `F.gelu(y, approximate="tanh")`.
    GeluTanh,
}

/// What [`matvec_fused`] does around `x · wᵀ`, in order: norm, (matvec), bias,
/// activation, residual.
#[derive(Clone, Copy, Default)]
pub struct Fusion<'a> {
    /// Normalise x (per row, over K) as it is loaded.
    pub norm: Option<FoldedNorm<'a>>,
    /// `[N]` f32, added before the activation.
    pub bias: Option<&'a Tensor>,
    /// Activation applied after the bias.
    pub act: Activation,
    /// `[M, N_out]` f32, added last (a residual connection).
    pub residual: Option<&'a Tensor>,
    /// Cut the output columns at these two points (`a ≤ b ≤ N_out`) and store the parts
    /// `[M, a]`, `[M, b - a]`, `[M, N_out - b]` one after the other in `out`, so each part
    /// of stacked projections (q, k, v) is a contiguous tensor for any M. Not with a
    /// residual or SwiGLU.
    pub segments: Option<[usize; 2]>,
}

/// Mirrors `Params` in matvec_core.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct BlockParams {
    n: u32,
    k: u32,
    n_out: u32,
    groups_per_row: u32,
    eps: f32,
    seg1: u32,
    seg2: u32,
    _pad: u32,
}

/// Mirrors `Params` in matvec.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct WordParams {
    n: u32,
    k: u32,
    row_stride: u32,
    _pad: u32,
}

/// Check `x` has at most MAX_ROWS rows and `w` is `[N, K]` with x's K; returns (rows, N, K).
fn dims(op: &str, x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize)> {
    let (lead, k) = x.shape().split_at(x.rank() - 1);
    let k = k[0];
    let rows: usize = lead.iter().product();
    if rows == 0 {
        return Err(TensorError::shape(op, format!("x {:?} has no rows", x.shape())));
    }
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
    Ok((rows, n, k))
}

/// `x`'s shape with its last dimension replaced by `n`.
fn out_shape(x: &Tensor, n: usize) -> Vec<usize> {
    let mut s = x.shape().to_vec();
    *s.last_mut().unwrap() = n;
    s
}

/// Environment variable that, set to `1`, sends every plain [`matvec`] to the word kernel
/// (matvec.wgsl: one element per lane, decoded by `load_w`), the kernel kiln used before
/// the block matvec: `KILN_MATVEC_WORDS=1 kiln bench kernels` measures "before".
pub const WORDS_ENV: &str = "KILN_MATVEC_WORDS";

fn words_forced() -> bool {
    static FORCED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os(WORDS_ENV).is_some_and(|v| v == "1"))
}

/// Whether the block matvec takes this x and w: K whole blocks of 16 bytes (4 f32, 8
/// halves) or of the GGUF type, x and w 16-byte aligned, and `KILN_MATVEC_WORDS=1` unset.
pub fn block_path_applies(x: &Tensor, w: &Tensor) -> bool {
    !words_forced() && block_shape_fits(x, w)
}

/// The shape and alignment half of [`block_path_applies`] (the fused matvec has no word
/// kernel to fall back to).
fn block_shape_fits(x: &Tensor, w: &Tensor) -> bool {
    let k = x.dim(-1);
    let unit = match w.dtype() {
        DType::F32 => 4,
        DType::F16 | DType::BF16 => 8,
        other => other.block_size(),
    };
    k.is_multiple_of(unit) && x.byte_offset().is_multiple_of(16) && w.byte_offset().is_multiple_of(16)
}

/// True when a norm folded into the block matvec of `m` rows of x against `w` costs no
/// extra loads in its inner loop: each block's x is then loaded (and normalised) once
/// into registers for all weight rows. Past that (more rows, wider blocks) x is re-read
/// per weight row and folding would re-load the norm weights with it, so callers run
/// the norm as its own dispatch instead.
pub fn norm_folds_into_registers(dev: &Device, m: usize, w: DType) -> bool {
    let groups = match w {
        DType::F32 => 1,
        DType::F16 | DType::BF16 => 2,
        DType::Q4_K | DType::Q5_K | DType::Q6_K => 16,
        _ => 8,
    };
    m * groups <= x_regs(dev)
}

/// Vec4s of x the block matvec holds in registers (X_REGS in matvec_core.wgsl);
/// `KILN_MATVEC_X_REGS` overrides it (at most 32).
fn x_regs(dev: &Device) -> usize {
    static OVERRIDE: OnceLock<Option<usize>> = OnceLock::new();
    if let Some(v) = *OVERRIDE.get_or_init(|| env_count("KILN_MATVEC_X_REGS")) {
        return v.min(BLOCK_ACCS); // the kernel's x registers (NACC)
    }
    if is_cpu_adapter(dev) {
        32
    } else {
        16
    }
}

/// How the block matvec spreads its work ([`Tuning::for_device`] is what [`matvec_fused`]
/// uses; [`matvec_fused_tuned`] takes any, for tests and benchmarks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Weight rows per workgroup wanted, 1..=16, before the accumulator bound
    /// (M · rows ≤ 32) and SwiGLU's even count.
    pub rows: usize,
    /// Invocations that share one Q8_0 block: 1, 2, 4 or 8 (other types ignore it).
    pub q8_lanes: usize,
    /// Invocations per workgroup: 32, 64 or 128. Past 32 only with subgroups and at most
    /// 32 subgroups a workgroup (the reduction's slots); otherwise 32 runs.
    pub workgroup: usize,
}

impl Tuning {
    /// The adapter's defaults, or the `KILN_MATVEC_ROWS` / `KILN_MATVEC_Q8_LANES` /
    /// `KILN_MATVEC_WG` overrides (read once).
    /// - GPUs want many workgroups in flight and coalesced loads: 2 rows, 4 lanes per
    ///   Q8_0 block. On an H200 (2026-11-30, BENCHMARKS.md) 4 lanes took Qwen2.5's Q8_0
    ///   lm_head from 612 to 570 µs at M = 1 and from 1966 to 1024 µs at M = 4.
    /// - CPU adapters (lavapipe, WARP, SwiftShader) pay for every load instruction and run
    ///   few workgroups at a time: 16 rows, so each x load serves more weight rows, and 1
    ///   lane per block, so its scale is loaded once.
    /// - 32 invocations a workgroup on both: 64 and 128 were no faster on the H200.
    pub fn for_device(dev: &Device) -> Tuning {
        static ROWS: OnceLock<Option<usize>> = OnceLock::new();
        static Q8_LANES: OnceLock<Option<usize>> = OnceLock::new();
        static WG: OnceLock<Option<usize>> = OnceLock::new();
        let cpu = is_cpu_adapter(dev);
        Tuning {
            workgroup: WG.get_or_init(|| env_count("KILN_MATVEC_WG")).unwrap_or(32),
            rows: ROWS.get_or_init(|| env_count("KILN_MATVEC_ROWS")).unwrap_or(if cpu { BLOCK_MAX_ROWS } else { 2 }),
            q8_lanes: Q8_LANES.get_or_init(|| env_count("KILN_MATVEC_Q8_LANES")).unwrap_or(if cpu { 1 } else { 4 }),
        }
    }
}

/// Weight rows per workgroup of the block matvec for `m` activation rows: `wanted`,
/// bounded by the accumulators (m · rows ≤ 32) and even for SwiGLU, which pairs gate and
/// up rows.
fn block_rows(wanted: usize, m: usize, act: Activation) -> usize {
    let rows = wanted.min(BLOCK_MAX_ROWS).min(BLOCK_ACCS / m).max(1);
    if act == Activation::SwiGlu {
        (rows & !1).max(2)
    } else {
        rows
    }
}

/// `out = x · wᵀ` for one or a few rows — PyTorch `F.linear(x, w)` (no bias).
///
/// - `x`: f32 `[K]` or `[.., K]` with at most [`MAX_ROWS`] rows.
/// - `w`: `[N, K]`, f32, f16, bf16 or a GGUF block type.
/// - `out`: f32 x's shape with K replaced by N.
pub fn matvec(rec: &mut Recorder, x: &Tensor, w: &Tensor, out: &Tensor) -> Result<()> {
    if block_path_applies(x, w) {
        return matvec_fused(rec, x, w, &Fusion::default(), out);
    }
    let op = "matvec";
    expect_same_device(op, &[x, w, out])?;
    expect_dtype(op, "x", x, DType::F32)?;
    let w_code = expect_float_weight(op, "w", w)?;
    expect_dtype(op, "out", out, DType::F32)?;
    let (rows, n, k) = dims(op, x, w)?;
    expect_shape(op, "out", out, &out_shape(x, n))?;
    expect_no_alias(op, out, &[x, w])?;
    expect_u32_len(op, w.numel())?;
    let (mut workgroups, row_stride) = grid_1d(out, n, WORD_ROWS);
    workgroups[2] = rows as u32; // z: the row of x
    let params = WordParams { n: n as u32, k: k as u32, row_stride, _pad: 0 };
    let pipeline = rec.device().pipeline("matvec", shaders::MATVEC, "matvec", &[("W_DTYPE", w_code as f64)])?;
    rec.dispatch(Dispatch {
        kernel: "matvec::words",
        pipeline: &pipeline,
        inputs: &[x, w],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: 2 * rows as u64 * n as u64 * k as u64,
        bytes: w.byte_len() + x.byte_len() + out.byte_len(),
    })
}

/// The block matvec's module for `w`'s format on `dev` (subgroup variant when enabled):
/// (module name, source, trace name).
fn block_module(dev: &Device, dtype: DType) -> (&'static str, &'static str, &'static str) {
    let sg = dev.subgroups();
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => match sg {
            true => ("matvec_float_sg", shaders::MATVEC_FLOAT_SG, "matvec::float"),
            false => ("matvec_float", shaders::MATVEC_FLOAT, "matvec::float"),
        },
        DType::Q4_K | DType::Q5_K => match sg {
            true => ("matvec_qk_sg", shaders::MATVEC_QK_SG, "matvec::qk"),
            false => ("matvec_qk", shaders::MATVEC_QK, "matvec::qk"),
        },
        DType::Q6_K => match sg {
            true => ("matvec_q6k_sg", shaders::MATVEC_Q6K_SG, "matvec::q6k"),
            false => ("matvec_q6k", shaders::MATVEC_Q6K, "matvec::q6k"),
        },
        _ => match sg {
            true => ("matvec_q32_sg", shaders::MATVEC_Q32_SG, "matvec::q32"),
            false => ("matvec_q32", shaders::MATVEC_Q32, "matvec::q32"),
        },
    }
}

/// `out = residual + act(norm(x) · wᵀ + bias)` in one dispatch (each part optional, see
/// [`Fusion`]) — the block matvec.
///
/// - `x`: f32 `[.., K]` with 1..=[`MAX_ROWS`] rows, K % 4 == 0, 16-byte aligned.
/// - `w`: `[N, K]`, f32, f16, bf16 or a GGUF block type. With [`Activation::SwiGlu`] its
///   first N/2 rows are the gate projection and the last N/2 the up projection.
/// - norm weight/bias `[K]` f32; `bias` `[N]` f32; `residual` and `out` f32 x's shape
///   with K replaced by N_out (N, or N/2 with SwiGLU).
pub fn matvec_fused(rec: &mut Recorder, x: &Tensor, w: &Tensor, f: &Fusion, out: &Tensor) -> Result<()> {
    let tuning = Tuning::for_device(rec.device());
    matvec_fused_tuned(rec, x, w, f, out, &tuning)
}

/// [`matvec_fused`] with the work spread as `tuning` says (an error for a Q8_0 lane count
/// other than 1, 2, 4 or 8).
pub fn matvec_fused_tuned(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    f: &Fusion,
    out: &Tensor,
    tuning: &Tuning,
) -> Result<()> {
    let op = "matvec_fused";
    if ![1, 2, 4, 8].contains(&tuning.q8_lanes) {
        return Err(TensorError::param("q8_lanes", format!("must be 1, 2, 4 or 8, got {}", tuning.q8_lanes)));
    }
    if ![32, 64, 128].contains(&tuning.workgroup) {
        return Err(TensorError::param("workgroup", format!("must be 32, 64 or 128, got {}", tuning.workgroup)));
    }
    expect_same_device(op, &[x, w, out])?;
    expect_dtype(op, "x", x, DType::F32)?;
    let w_code = expect_float_weight(op, "w", w)?;
    expect_dtype(op, "out", out, DType::F32)?;
    let (rows, n, k) = dims(op, x, w)?;
    if !block_shape_fits(x, w) {
        return Err(TensorError::shape(
            op,
            format!(
                "x {:?} with {} weights needs K % 4 == 0 (f32), K % 8 == 0 (f16, bf16) or whole blocks, and 16-byte aligned x and w (byte offsets {}, {})",
                x.shape(),
                w.dtype(),
                x.byte_offset(),
                w.byte_offset()
            ),
        ));
    }
    let n_out = if f.act == Activation::SwiGlu {
        if !n.is_multiple_of(2) {
            return Err(TensorError::shape(op, format!("SwiGLU needs w's gate and up rows stacked: N = {n} is odd")));
        }
        n / 2
    } else {
        n
    };
    let want_out = out_shape(x, n_out);
    expect_shape(op, "out", out, &want_out)?;
    let (seg1, seg2) = match f.segments {
        None => (n_out, n_out),
        Some([a, b]) => {
            if a > b || b > n_out || f.residual.is_some() || f.act == Activation::SwiGlu {
                return Err(TensorError::shape(
                    op,
                    format!("segments {a}, {b} need a <= b <= N_out = {n_out}, and no residual or SwiGLU"),
                ));
            }
            (a, b)
        }
    };
    let mut inputs: Vec<&Tensor> = vec![x, w, x, x, x, x];
    let (norm, eps) = match f.norm {
        None => (0, 0.0),
        Some(FoldedNorm::Rms { weight, eps }) => {
            expect_vector(op, "norm weight", weight, k)?;
            inputs[2] = weight;
            (1, eps)
        }
        Some(FoldedNorm::Layer { weight, bias, eps }) => {
            expect_vector(op, "norm weight", weight, k)?;
            expect_vector(op, "norm bias", bias, k)?;
            inputs[2] = weight;
            inputs[3] = bias;
            (2, eps)
        }
    };
    if let Some(b) = f.bias {
        expect_vector(op, "bias", b, n)?;
        inputs[4] = b;
    }
    if let Some(r) = f.residual {
        expect_dtype(op, "residual", r, DType::F32)?;
        expect_shape(op, "residual", r, &want_out)?;
        inputs[5] = r;
    }
    expect_same_device(op, &inputs)?;
    expect_no_alias(op, out, &inputs)?;
    expect_u32_len(op, w.numel())?;

    let dev = rec.device().clone();
    let (module, source, kernel) = block_module(&dev, w.dtype());
    let rows_per_group = block_rows(tuning.rows, rows, f.act);
    let groups = n.div_ceil(rows_per_group);
    let (workgroups, invocations_per_row) = grid_1d(out, groups, 1);
    let params = BlockParams {
        n: n as u32,
        k: k as u32,
        n_out: n_out as u32,
        groups_per_row: invocations_per_row,
        eps,
        seg1: seg1 as u32,
        seg2: seg2 as u32,
        _pad: 0,
    };
    let act = match f.act {
        Activation::None => 0.0,
        Activation::SwiGlu => 1.0,
        Activation::GeluTanh => 2.0,
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut overrides = vec![
        ("W_DTYPE", w_code as f64),
        ("M", rows as f64),
        ("ROWS", rows_per_group as f64),
        ("NORM", norm as f64),
        ("BIAS", flag(f.bias.is_some())),
        ("RESIDUAL", flag(f.residual.is_some())),
        ("ACT", act),
        ("SEGMENTS", flag(f.segments.is_some())),
        ("X_REGS", x_regs(&dev) as f64),
    ];
    if w.dtype() == DType::Q8_0 {
        overrides.push(("Q8_LANES", tuning.q8_lanes as f64));
    }
    let min_subgroup = dev.info().subgroup_min_size.max(1) as usize;
    if tuning.workgroup > 32 && dev.subgroups() && tuning.workgroup / min_subgroup <= 32 {
        overrides.push(("WG", tuning.workgroup as f64));
    }
    let pipeline = dev.pipeline(module, source, "matvec", &overrides)?;
    rec.dispatch(Dispatch {
        kernel,
        pipeline: &pipeline,
        inputs: &inputs,
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: 2 * rows as u64 * n as u64 * k as u64,
        bytes: w.byte_len() + x.byte_len() + out.byte_len(),
    })
}

fn expect_vector(op: &str, name: &str, t: &Tensor, len: usize) -> Result<()> {
    expect_dtype(op, name, t, DType::F32)?;
    expect_shape(op, name, t, &[len])?;
    if !t.byte_offset().is_multiple_of(16) {
        return Err(TensorError::shape(
            op,
            format!("{name} must start 16-byte aligned (byte offset {})", t.byte_offset()),
        ));
    }
    Ok(())
}
