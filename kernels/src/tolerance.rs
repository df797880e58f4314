//! Tolerances for comparing GPU kernels with their CPU twins, all in one place, and
//! the comparison that prints max abs/rel error and the first bad index on failure.
//!
//! An element passes when |got - want| <= abs + rel * |want|. Infinities must match
//! exactly; a NaN in `got` passes only where `want` is NaN too.

/// A tolerance: an element passes when |got − want| ≤ abs + rel · |want|.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    /// Absolute part.
    pub abs: f32,
    /// Relative part, a fraction of |want|.
    pub rel: f32,
}

impl Tol {
    /// This tolerance for a dot product whose inputs are `magnitude` times larger than
    /// the O(1) data it was set for: the absolute part scales (rounding errors of a sum
    /// scale with its terms), the relative part does not.
    pub fn scaled(self, magnitude: f32) -> Tol {
        Tol { abs: self.abs * magnitude, rel: self.rel }
    }
}

/// Elementwise ops on f32 (different exp/tanh implementations, a few ulp).
pub const ELEMENTWISE: Tol = Tol { abs: 1e-5, rel: 1e-5 };
/// logit_edit.wgsl: the max is exact and the target one f32 add on both sides.
pub const LOGIT_EDIT: Tol = Tol { abs: 0.0, rel: 0.0 };
/// Row reductions: softmax, log-softmax, norms (summation order differs).
pub const REDUCTION: Tol = Tol { abs: 1e-5, rel: 1e-4 };
/// Dot products over K with f32 weights: error grows like sqrt(K) ulp.
pub const MATMUL_F32: Tol = Tol { abs: 1e-4, rel: 1e-4 };
/// f16/bf16 weights: the CPU twin dequantises the same bits, so only summation order differs.
pub const MATMUL_HALF: Tol = Tol { abs: 2e-4, rel: 2e-4 };
/// The block matvec with fusions (norm folded in front; bias, SwiGLU/GELU and residual in
/// the epilogue) against the composed twins: the norm's statistics are summed in another
/// order and x is normalised in registers instead of through a rounded f32 tensor, so a
/// few more ulp than the plain matvec.
pub const MATVEC_FUSED: Tol = Tol { abs: 5e-4, rel: 5e-4 };
/// Dot products whose terms are large and cancel: f32 summation errs by a few ulp of
/// Σ|xᵢ·wᵢ|, not of the (possibly tiny) result. `sum_abs` is the largest Σ|xᵢ·wᵢ| of the
/// outputs compared; the bound is the weight format's tolerance plus 4 ulp of it.
pub fn dot_products(dtype: kiln_tensor::DType, sum_abs: f32) -> Tol {
    let base = matmul_for(dtype);
    Tol { abs: base.abs + 4.0 * f32::EPSILON * sum_abs, rel: base.rel }
}
/// The matmul/matvec tolerance for weights stored as `dtype`: f32 weights, or weights
/// dequantized from f16/bf16/GGUF blocks (the CPU twin uses the same dequantized values).
pub fn matmul_for(dtype: kiln_tensor::DType) -> Tol {
    if dtype == kiln_tensor::DType::F32 {
        MATMUL_F32
    } else {
        MATMUL_HALF
    }
}

/// f16 weight tiles (`matmul::WeightTile::F16`). GGUF block weights: the tile holds the
/// integer quants (exact in f16) and the kernel applies each scale group's scale and
/// offset in f32, `scale · Σ a·q − offset · Σ a`, so against the twin on the exact
/// dequantized weights only summation order differs (the offset term's products round
/// like the twin's per-weight `q · scale − offset`, at f32's 2⁻²⁴). Dense weights: the
/// tile holds the values rounded to f16, exact for f16 weights; for f32/bf16 weights
/// (only on request) the twin on `reference::matmul::f16_tile_values` models that
/// rounding, assuming the GPU converts f32 → f16 to nearest as the twin does (Vulkan,
/// Metal and D3D12 GPUs do; WGSL leaves the direction to the implementation).
pub const MATMUL_F16_TILE: Tol = MATMUL_HALF;
/// Dense f32/bf16 weights on f16 tiles vs the twin on the exact weights: each staged
/// weight is off by at most one f16 rounding, a relative 2⁻¹¹ (f16's unit roundoff;
/// weights below 2⁻¹⁴ are subnormal in f16 and off by at most 2⁻²⁵ absolute), so an
/// output moves by at most `F16_TILE_ROUNDING · Σ_k |a_k w_k|` beyond [`MATMUL_HALF`]
/// (see [`compare_with_slack`]).
pub const F16_TILE_ROUNDING: f32 = 1.0 / 2048.0;

/// Attention: softmax + weighted sum, online on the GPU, two-pass on the CPU.
pub const ATTENTION: Tol = Tol { abs: 1e-4, rel: 1e-4 };
/// An f16 KV-cache entry vs its twin: both round an f32 to the nearest f16, but RoPE's f32
/// result may differ by an ulp before rounding (fused multiply-add, f64 on the CPU), which
/// can move it across a rounding boundary: one f16 ulp (2^-10 relative at worst; 2^-24
/// absolute below the normal range).
pub const KV_F16_STORE: Tol = Tol { abs: 6e-8, rel: 1e-3 };
/// Attention over an f16 KV cache vs the f32 cache of the same unrounded K/V (the old
/// f32 path), for q, K uniform in ±2 and V in ±1, head_dim ≤ 128: each K/V value moves by
/// up to 2^-11 relative. Measured max abs error 1.1e-3 (kernels/tests/attention.rs
/// `f16_cache_stays_close_to_the_f32_path`); the bound leaves 2x.
pub const KV_F16_VS_F32: Tol = Tol { abs: 2.5e-3, rel: 0.0 };
/// RoPE: the GPU and CPU read the same cos/sin table.
pub const ROPE: Tol = Tol { abs: 1e-5, rel: 1e-5 };
/// Exact copies (embedding gather, KV append).
pub const EXACT: Tol = Tol { abs: 0.0, rel: 0.0 };

/// Summary of a comparison.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Largest |got − want| over elements where both are finite.
    pub max_abs: f32,
    /// Largest |got − want| / |want| over finite elements with want ≠ 0.
    pub max_rel: f32,
    /// Index of the first element outside the tolerance, if any.
    pub first_bad: Option<usize>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "max abs err {:.3e}, max rel err {:.3e}", self.max_abs, self.max_rel)?;
        if let Some(i) = self.first_bad {
            write!(f, ", first bad index {i}")?;
        }
        Ok(())
    }
}

fn element_ok(g: f32, w: f32, tol: Tol) -> bool {
    if w.is_nan() {
        return g.is_nan();
    }
    if w.is_infinite() || g.is_infinite() || g.is_nan() {
        return g == w;
    }
    (g - w).abs() <= tol.abs + tol.rel * w.abs()
}

/// Compare `got` with `want`; `Err` carries a message naming `what`, the errors and the
/// first bad index with both values.
pub fn compare(what: &str, got: &[f32], want: &[f32], tol: Tol) -> Result<Report, String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} != expected {}", got.len(), want.len()));
    }
    let mut r = Report::default();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_finite() && g.is_finite() {
            let abs = (g - w).abs();
            r.max_abs = r.max_abs.max(abs);
            if w != 0.0 {
                r.max_rel = r.max_rel.max(abs / w.abs());
            }
        }
        if r.first_bad.is_none() && !element_ok(g, w, tol) {
            r.first_bad = Some(i);
        }
    }
    match r.first_bad {
        None => Ok(r),
        Some(i) => Err(format!(
            "{what}: mismatch (tolerance abs {:e} + rel {:e}): {r}; at index {i} got {} want {}",
            tol.abs, tol.rel, got[i], want[i]
        )),
    }
}

/// [`compare`] with element i's absolute tolerance raised by `slack[i]` (an error bound
/// that varies per element, e.g. `F16_TILE_ROUNDING · Σ_k |a_k w_k|`).
pub fn compare_with_slack(what: &str, got: &[f32], want: &[f32], tol: Tol, slack: &[f32]) -> Result<Report, String> {
    if got.len() != want.len() || slack.len() != want.len() {
        return Err(format!(
            "{what}: lengths {} (got), {} (want), {} (slack) differ",
            got.len(),
            want.len(),
            slack.len()
        ));
    }
    let mut r = Report::default();
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(slack).enumerate() {
        if w.is_finite() && g.is_finite() {
            let abs = (g - w).abs();
            r.max_abs = r.max_abs.max(abs);
            if w != 0.0 {
                r.max_rel = r.max_rel.max(abs / w.abs());
            }
        }
        if r.first_bad.is_none() && !element_ok(g, w, Tol { abs: tol.abs + s, rel: tol.rel }) {
            r.first_bad = Some(i);
        }
    }
    match r.first_bad {
        None => Ok(r),
        Some(i) => Err(format!(
            "{what}: mismatch (tolerance abs {:e} + slack {:e} + rel {:e}): {r}; at index {i} got {} want {}",
            tol.abs, slack[i], tol.rel, got[i], want[i]
        )),
    }
}

/// Compare integer outputs exactly.
pub fn compare_u32(what: &str, got: &[u32], want: &[u32]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} != expected {}", got.len(), want.len()));
    }
    match got.iter().zip(want).position(|(g, w)| g != w) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: first mismatch at index {i}: got {} want {}", got[i], want[i])),
    }
}

/// Whole-model logits vs Hugging Face transformers (float32 reference computed from the
/// stored weights), for f32 checkpoints: the bound.
pub const MODEL_LOGITS_F32: Tol = Tol { abs: 1e-3, rel: 0.0 };
/// Same for f16/bf16 checkpoints. The reference runs in float32 on the same rounded
/// weights kiln dequantises exactly, so only summation order differs and the bound is
/// the same as for f32 (activations stay f32 in both).
pub const MODEL_LOGITS_HALF: Tol = Tol { abs: 1e-3, rel: 0.0 };

/// Whole-model logits vs transformers' float32 reference with the default f16 KV cache:
/// K and V are rounded to f16 (2^-11 relative) before attention reads them, which the
/// reference does not do. On the tiny random checkpoints (logits of magnitude ~1-6) this
/// moves logits by up to 1.9e-2 (measured: qwen2-tiny-f16 "code" case; 3.4e-3..1.9e-2
/// over all cases, against 1e-5 with the f32 cache), and every greedy id still matches.
/// The bound leaves 2x.
pub const MODEL_LOGITS_F16_KV: Tol = Tol { abs: 4e-2, rel: 0.0 };

/// Sampling's logits processing (penalties, bias, temperature) vs its twin: the same f32
/// operations, so only a division's rounding may differ.
pub const SAMPLE_PROCESS: Tol = Tol { abs: 1e-6, rel: 1e-6 };

/// Scoring (logprobs.wgsl) vs its f64 twin: log-prob and entropy from one online
/// log-sum-exp over the row in f32. ln S carries about ulp(ln S) plus the relative
/// error of the sum (≤ 1e-6 for 151,936 entries); `x_t - max` is rounded to f32 (its
/// ulp is 1e-3 at ±1e4, hence the relative part). Rank and argmax must be exact.
pub const LOGPROBS: Tol = Tol { abs: 2e-5, rel: 2e-6 };
