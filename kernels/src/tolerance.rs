//! Tolerances for comparing GPU kernels with their CPU twins, all in one place, and
//! the comparison that prints max abs/rel error and the first bad index on failure.
//!
//! An element passes when |got - want| <= abs + rel * |want|. Infinities must match
//! exactly; a NaN in `got` passes only where `want` is NaN too.

#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub abs: f32,
    pub rel: f32,
}

/// Elementwise ops on f32 (different exp/tanh implementations, a few ulp).
pub const ELEMENTWISE: Tol = Tol { abs: 1e-5, rel: 1e-5 };
/// Row reductions: softmax, log-softmax, norms (summation order differs).
pub const REDUCTION: Tol = Tol { abs: 1e-5, rel: 1e-4 };
/// Dot products over K with f32 weights: error grows like sqrt(K) ulp.
pub const MATMUL_F32: Tol = Tol { abs: 1e-4, rel: 1e-4 };
/// f16/bf16 weights: the CPU twin dequantises the same bits, so only summation order differs.
pub const MATMUL_HALF: Tol = Tol { abs: 2e-4, rel: 2e-4 };
/// The matmul/matvec tolerance for weights stored as `dtype`: f32 weights, or weights
/// dequantized from f16/bf16/GGUF blocks (the CPU twin uses the same dequantized values).
pub fn matmul_for(dtype: kiln_tensor::DType) -> Tol {
    if dtype == kiln_tensor::DType::F32 {
        MATMUL_F32
    } else {
        MATMUL_HALF
    }
}

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
    pub max_abs: f32,
    pub max_rel: f32,
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
