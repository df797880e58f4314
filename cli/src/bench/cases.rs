//! The benchmark cases: every kernel at the layer shapes of GPT-2 124M and
//! Qwen2.5-0.5B, for decode (one token) and prefill (128 tokens), and the quantized
//! matvec / matmul at the real shapes and block types of Qwen2.5-0.5B Q4_K_M and
//! SmolLM2-135M Q4_1. A [`Spec`] names a case before anything is allocated (so a filter
//! costs nothing); building it gives a [`Case`] that records its dispatches and checks
//! its output against the kernel's CPU twin.

use anyhow::{anyhow, Result};
use kiln_kernels::selftest::weights::upload_weight;
use kiln_kernels::testing::Rng;
use kiln_kernels::{
    argmax, attention, elementwise, embedding, kv_cache, matmul, matvec, norm, reference, rope, softmax, tolerance,
    DType, Device, Recorder, Tensor,
};

pub type RecordFn = Box<dyn Fn(&mut Recorder) -> Result<()>>;
pub type CheckFn = Box<dyn Fn() -> Result<()>>;
type BuildFn = Box<dyn FnOnce(&Device, &mut Rng) -> Result<Case>>;

/// A built case: its dispatches, and the check of their output against the CPU twin.
pub struct Case {
    pub record: RecordFn,
    pub check: CheckFn,
}

/// A case before its tensors exist.
pub struct Spec {
    pub kernel: &'static str,
    pub model: &'static str,
    pub shape: String,
    /// The weight dtype (f32 for kernels without weights).
    pub dtype: DType,
    /// Activation rows (tokens, or queries for attention) the case processes.
    pub m: usize,
    build: BuildFn,
}

impl Spec {
    fn new(
        kernel: &'static str,
        model: &'static str,
        shape: String,
        dtype: DType,
        m: usize,
        build: impl FnOnce(&Device, &mut Rng) -> Result<Case> + 'static,
    ) -> Spec {
        Spec { kernel, model, shape, dtype, m, build: Box::new(build) }
    }

    /// Whether `filter` names this case: a part of its kernel, model, shape or dtype,
    /// or `quant` for every case with GGUF block weights.
    pub fn matches(&self, filter: &str) -> bool {
        self.kernel.contains(filter)
            || self.model.contains(filter)
            || self.shape.contains(filter)
            || self.dtype.name().contains(filter)
            || (filter == "quant" && self.dtype.is_quantized())
    }

    /// Allocate and fill the case's tensors (seeded by its name: the same data whichever
    /// cases a filter keeps). Errors when a tensor exceeds the adapter's binding limit.
    pub fn build(self, dev: &Device) -> Result<Case> {
        let label = format!("{} {} {}", self.kernel, self.model, self.shape);
        let mut rng = kiln_kernels::selftest::Case::rng(&label);
        (self.build)(dev, &mut rng).map_err(|e| e.context(label))
    }
}

/// Model shapes the cases are drawn from.
pub struct Shapes {
    pub name: &'static str,
    pub hidden: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub weight: DType,
}

pub const GPT2: Shapes = Shapes {
    name: "gpt2-124m",
    hidden: 768,
    ffn: 3072,
    heads: 12,
    kv_heads: 12,
    head_dim: 64,
    vocab: 50257,
    weight: DType::F16,
};
pub const QWEN2: Shapes = Shapes {
    name: "qwen2.5-0.5b",
    hidden: 896,
    ffn: 4864,
    heads: 14,
    kv_heads: 2,
    head_dim: 64,
    vocab: 151936,
    weight: DType::BF16,
};

pub const PREFILL: usize = 128;
pub const CONTEXT: usize = 1024;

/// The quantized weights of the real files, as (model, layer, N, K, block type):
/// Qwen2.5-0.5B Q4_K_M (rows of 896 cannot hold 256-element K-quant blocks, so llama.cpp
/// stores them as Q5_0; v_proj alternates Q8_0 / Q5_0, mlp_down Q4_K / Q6_K, the untied
/// LM head is Q8_0) and SmolLM2-135M Q4_1 (its tied embedding / LM head is Q8_0).
const QUANT_WEIGHTS: [(&str, &str, usize, usize, DType); 10] = [
    ("qwen2.5-0.5b", "q_proj", 896, 896, DType::Q5_0),
    ("qwen2.5-0.5b", "v_proj", 128, 896, DType::Q8_0),
    ("qwen2.5-0.5b", "mlp_up", 4864, 896, DType::Q5_0),
    ("qwen2.5-0.5b", "mlp_down", 896, 4864, DType::Q4_K),
    ("qwen2.5-0.5b", "mlp_down", 896, 4864, DType::Q6_K),
    ("qwen2.5-0.5b", "lm_head", 151936, 896, DType::Q8_0),
    ("smollm2-135m", "q_proj", 576, 576, DType::Q4_1),
    ("smollm2-135m", "mlp_up", 1536, 576, DType::Q4_1),
    ("smollm2-135m", "mlp_down", 576, 1536, DType::Q4_1),
    ("smollm2-135m", "lm_head", 49152, 576, DType::Q8_0),
];
/// Activation rows of the quantized matvec cases (decode of 1, 4 and 16 sequences).
const QUANT_MATVEC_ROWS: [usize; 3] = [1, 4, 16];

fn input(dev: &Device, rng: &mut Rng, shape: &[usize], scale: f32) -> Result<(Tensor, Vec<f32>)> {
    let vals = rng.vec(shape.iter().product(), scale);
    Ok((Tensor::from_slice(dev, &vals, shape)?, vals))
}

fn check_f32(what: String, out: Tensor, want: impl Fn() -> Vec<f32> + 'static, tol: tolerance::Tol) -> CheckFn {
    Box::new(move || {
        let got = out.to_vec_f32()?;
        tolerance::compare(&what, &got, &want(), tol).map(|_| ()).map_err(|m| anyhow!(m))
    })
}

/// `x [m, k] · w [n, k]ᵀ` by matvec (m ≤ 16) or matmul, with `w` stored as `dtype`
/// (dense weights of scale 0.05; block types of order 1).
fn linear(
    kernel: &'static str,
    model: &'static str,
    layer: &'static str,
    m: usize,
    n: usize,
    k: usize,
    dtype: DType,
) -> Spec {
    let shape = format!("{layer} [{m}x{k}]·[{n}x{k}]ᵀ {dtype}");
    Spec::new(kernel, model, shape, dtype, m, move |dev, rng| {
        let (w, wv) = upload_weight(dev, rng, dtype, n, k, 0.05)?;
        let (x, xv) = input(dev, rng, &[m, k], 1.0)?;
        let out = Tensor::empty(dev, &[m, n], DType::F32)?;
        let o = out.clone();
        let by_matvec = kernel == "matvec";
        Ok(Case {
            record: Box::new(move |rec| {
                if by_matvec {
                    Ok(matvec::matvec(rec, &x, &w, &o)?)
                } else {
                    Ok(matmul::matmul(rec, &x, &w, &o)?)
                }
            }),
            check: check_f32(
                format!("{kernel} {model} {layer} {dtype}"),
                out,
                move || reference::matmul::matmul(&xv, &wv, 1, m, n, k, false),
                tolerance::matmul_for(dtype),
            ),
        })
    })
}

/// The square f32 matmul used to measure the device's best matmul throughput.
pub fn peak_matmul(size: usize) -> Spec {
    let shape = format!("[{size}x{size}]·[{size}x{size}]ᵀ f32");
    Spec::new("matmul", "peak", shape, DType::F32, size, move |dev, rng| {
        let (w, wv) = upload_weight(dev, rng, DType::F32, size, size, 0.05)?;
        let (a, av) = input(dev, rng, &[size, size], 1.0)?;
        let out = Tensor::empty(dev, &[size, size], DType::F32)?;
        let o = out.clone();
        Ok(Case {
            record: Box::new(move |rec| Ok(matmul::matmul(rec, &a, &w, &o)?)),
            check: check_f32(
                "peak matmul".into(),
                out,
                move || reference::matmul::matmul(&av, &wv, 1, size, size, size, false),
                tolerance::MATMUL_F32,
            ),
        })
    })
}

fn attention_case(s: &'static Shapes, n_q: usize, ctx: usize) -> Spec {
    let (h, kvh, hd) = (s.heads, s.kv_heads, s.head_dim);
    let decode = n_q == 1;
    let kernel = if decode { "attention_decode" } else { "attention" };
    let shape = format!("q [{n_q}x{h}x{hd}] over {ctx} cached positions, {kvh} kv heads");
    Spec::new(kernel, s.name, shape, DType::F32, n_q, move |dev, rng| {
        let (q, qv) = input(dev, rng, &[n_q, h, hd], 1.0)?;
        let (k, kv) = input(dev, rng, &[CONTEXT, kvh, hd], 1.0)?;
        let (v, vv) = input(dev, rng, &[CONTEXT, kvh, hd], 1.0)?;
        let out = Tensor::empty(dev, &[n_q, h, hd], DType::F32)?;
        let o = out.clone();
        let pos = ctx - n_q;
        Ok(Case {
            record: Box::new(move |rec| {
                if decode {
                    Ok(attention::attention_decode(rec, &q, &k, &v, pos, &o)?)
                } else {
                    Ok(attention::attention(rec, &q, &k, &v, pos, &o)?)
                }
            }),
            check: check_f32(
                "attention".into(),
                out,
                move || reference::attention::attention(&qv, &kv, &vv, n_q, h, kvh, hd, pos),
                tolerance::ATTENTION,
            ),
        })
    })
}

fn norm_case(s: &'static Shapes, rows: usize) -> Spec {
    let d = s.hidden;
    let layer = s.name == GPT2.name;
    let kernel = if layer { "layer_norm" } else { "rms_norm" };
    Spec::new(kernel, s.name, format!("[{rows}x{d}]"), DType::F32, rows, move |dev, rng| {
        let (x, xv) = input(dev, rng, &[rows, d], 3.0)?;
        let (w, wv) = input(dev, rng, &[d], 1.0)?;
        let out = Tensor::empty(dev, &[rows, d], DType::F32)?;
        let o = out.clone();
        let eps = 1e-5;
        if layer {
            let (b, bv) = input(dev, rng, &[d], 1.0)?;
            Ok(Case {
                record: Box::new(move |rec| Ok(norm::layer_norm(rec, &x, &w, &b, eps, &o)?)),
                check: check_f32(
                    "layer_norm".into(),
                    out,
                    move || reference::norm::layer_norm(&xv, &wv, &bv, eps),
                    tolerance::REDUCTION,
                ),
            })
        } else {
            Ok(Case {
                record: Box::new(move |rec| Ok(norm::rms_norm(rec, &x, &w, eps, &o)?)),
                check: check_f32(
                    "rms_norm".into(),
                    out,
                    move || reference::norm::rms_norm(&xv, &wv, eps),
                    tolerance::REDUCTION,
                ),
            })
        }
    })
}

fn rope_case(s: &'static Shapes) -> Spec {
    let (h, hd) = (s.heads, s.head_dim);
    let pos = 7;
    let shape = format!("[{PREFILL}x{h}x{hd}] half-split, positions {pos}..{}", pos + PREFILL);
    Spec::new("rope", s.name, shape, DType::F32, PREFILL, move |dev, rng| {
        let (x, xv) = input(dev, rng, &[PREFILL, h, hd], 1.0)?;
        let theta = 1_000_000.0;
        let table = rope::RopeTable::new(dev, hd, theta, CONTEXT)?;
        let cpu_table = reference::rope::cpu_table(hd, theta, CONTEXT);
        let out = Tensor::empty(dev, &[PREFILL, h, hd], DType::F32)?;
        let o = out.clone();
        Ok(Case {
            record: Box::new(move |rec| Ok(rope::rope(rec, &x, &table, pos, rope::RopeMode::HalfSplit, &o)?)),
            check: check_f32(
                "rope".into(),
                out,
                move || reference::rope::rope(&xv, PREFILL, h, hd, &cpu_table, pos, false),
                tolerance::ROPE,
            ),
        })
    })
}

fn activation_case(s: &'static Shapes) -> Spec {
    let f = s.ffn;
    let gelu = s.name == GPT2.name;
    let kernel = if gelu { "gelu_tanh" } else { "swiglu" };
    Spec::new(kernel, s.name, format!("[{PREFILL}x{f}]"), DType::F32, PREFILL, move |dev, rng| {
        let (g, gv) = input(dev, rng, &[PREFILL, f], 4.0)?;
        let out = Tensor::empty(dev, &[PREFILL, f], DType::F32)?;
        let o = out.clone();
        if gelu {
            Ok(Case {
                record: Box::new(move |rec| Ok(elementwise::gelu_tanh(rec, &g, &o)?)),
                check: check_f32("gelu_tanh".into(), out, move || reference::gelu_tanh(&gv), tolerance::ELEMENTWISE),
            })
        } else {
            let (u, uv) = input(dev, rng, &[PREFILL, f], 4.0)?;
            Ok(Case {
                record: Box::new(move |rec| Ok(elementwise::swiglu(rec, &g, &u, &o)?)),
                check: check_f32("swiglu".into(), out, move || reference::swiglu(&gv, &uv), tolerance::ELEMENTWISE),
            })
        }
    })
}

fn add_case(s: &'static Shapes) -> Spec {
    let d = s.hidden;
    Spec::new("add", s.name, format!("residual [{PREFILL}x{d}]"), DType::F32, PREFILL, move |dev, rng| {
        let (a, av) = input(dev, rng, &[PREFILL, d], 1.0)?;
        let (b, bv) = input(dev, rng, &[PREFILL, d], 1.0)?;
        let out = Tensor::empty(dev, &[PREFILL, d], DType::F32)?;
        let o = out.clone();
        Ok(Case {
            record: Box::new(move |rec| Ok(elementwise::add(rec, &a, &b, &o)?)),
            check: check_f32("add".into(), out, move || reference::add(&av, &bv), tolerance::ELEMENTWISE),
        })
    })
}

fn embedding_case(s: &'static Shapes) -> Spec {
    let (vocab, d, dtype) = (s.vocab, s.hidden, s.weight);
    let shape = format!("{PREFILL} ids from [{vocab}x{d}] {dtype}");
    Spec::new("embedding", s.name, shape, dtype, PREFILL, move |dev, rng| {
        let (table, tv) = upload_weight(dev, rng, dtype, vocab, d, 0.05)?;
        let ids_v: Vec<u32> = (0..PREFILL).map(|_| rng.below(vocab as u32)).collect();
        let ids = Tensor::from_slice(dev, &ids_v, &[PREFILL])?;
        let out = Tensor::empty(dev, &[PREFILL, d], DType::F32)?;
        let o = out.clone();
        Ok(Case {
            record: Box::new(move |rec| Ok(embedding::embedding(rec, &ids, &table, &o)?)),
            check: check_f32(
                "embedding".into(),
                out,
                move || reference::embedding::embedding(&ids_v, &tv, d),
                tolerance::EXACT,
            ),
        })
    })
}

fn kv_append_case(s: &'static Shapes) -> Spec {
    let (kvh, hd) = (s.kv_heads, s.head_dim);
    let pos = CONTEXT - 1;
    let shape = format!("[1x{kvh}x{hd}] into [{CONTEXT}x{kvh}x{hd}] at {pos}");
    Spec::new("kv_append", s.name, shape, DType::F32, 1, move |dev, rng| {
        let (new, nv) = input(dev, rng, &[1, kvh, hd], 1.0)?;
        let cache = Tensor::zeros(dev, &[CONTEXT, kvh, hd], DType::F32)?;
        let c = cache.clone();
        Ok(Case {
            record: Box::new(move |rec| Ok(kv_cache::kv_append(rec, &new, &c, pos)?)),
            check: check_f32(
                "kv_append".into(),
                cache,
                move || reference::kv_cache::kv_append(&vec![0.0; CONTEXT * kvh * hd], &nv, kvh * hd, pos),
                tolerance::EXACT,
            ),
        })
    })
}

fn softmax_case(s: &'static Shapes, log: bool) -> Spec {
    let n = s.vocab;
    let kernel = if log { "log_softmax" } else { "softmax" };
    Spec::new(kernel, s.name, format!("logits [1x{n}]"), DType::F32, 1, move |dev, rng| {
        let (x, xv) = input(dev, rng, &[1, n], 30.0)?;
        let out = Tensor::empty(dev, &[1, n], DType::F32)?;
        let o = out.clone();
        Ok(Case {
            record: Box::new(move |rec| {
                if log {
                    Ok(softmax::log_softmax(rec, &x, &o)?)
                } else {
                    Ok(softmax::softmax(rec, &x, &o)?)
                }
            }),
            check: check_f32(
                "softmax".into(),
                out,
                move || if log { reference::softmax::log_softmax(&xv, n) } else { reference::softmax::softmax(&xv, n) },
                tolerance::REDUCTION,
            ),
        })
    })
}

fn argmax_case(s: &'static Shapes) -> Spec {
    let n = s.vocab;
    Spec::new("argmax", s.name, format!("logits [1x{n}]"), DType::F32, 1, move |dev, rng| {
        let (x, xv) = input(dev, rng, &[1, n], 30.0)?;
        let out = Tensor::empty(dev, &[1], DType::U32)?;
        let o = out.clone();
        Ok(Case {
            record: Box::new(move |rec| Ok(argmax::argmax(rec, &x, &o)?)),
            check: Box::new(move || {
                let got = out.to_vec_u32()?;
                tolerance::compare_u32("argmax", &got, &reference::argmax::argmax(&xv, n)).map_err(|m| anyhow!(m))
            }),
        })
    })
}

/// Every case, in table order (nothing allocated until a case is built).
pub fn all() -> Vec<Spec> {
    let mut specs = Vec::new();
    for s in [&GPT2, &QWEN2] {
        let (d, w) = (s.hidden, s.weight);
        let qkv = (s.heads + 2 * s.kv_heads) * s.head_dim;
        // Decode: one token through every projection.
        specs.push(linear("matvec", s.name, "qkv", 1, qkv, d, w));
        specs.push(linear("matvec", s.name, "attn_out", 1, d, s.heads * s.head_dim, w));
        specs.push(linear("matvec", s.name, "mlp_up", 1, s.ffn, d, w));
        specs.push(linear("matvec", s.name, "mlp_down", 1, d, s.ffn, w));
        specs.push(linear("matvec", s.name, "lm_head", 1, s.vocab, d, w));
        // Prefill: 128 tokens.
        specs.push(linear("matmul", s.name, "qkv", PREFILL, qkv, d, w));
        specs.push(linear("matmul", s.name, "mlp_up", PREFILL, s.ffn, d, w));
        specs.push(linear("matmul", s.name, "mlp_down", PREFILL, d, s.ffn, w));
        specs.push(attention_case(s, 1, CONTEXT));
        specs.push(attention_case(s, PREFILL, PREFILL));
        specs.push(norm_case(s, 1));
        specs.push(norm_case(s, PREFILL));
        specs.push(rope_case(s));
        specs.push(activation_case(s));
        specs.push(add_case(s));
        specs.push(embedding_case(s));
        specs.push(kv_append_case(s));
        specs.push(softmax_case(s, false));
        specs.push(softmax_case(s, true));
        specs.push(argmax_case(s));
    }
    // The quantized weights of the real files: decode of 1, 4 and 16 rows, and a
    // 128-token prefill (the LM head runs on the last position only, so not in prefill).
    for (model, layer, n, k, dtype) in QUANT_WEIGHTS {
        for m in QUANT_MATVEC_ROWS {
            specs.push(linear("matvec", model, layer, m, n, k, dtype));
        }
        if layer != "lm_head" {
            specs.push(linear("matmul", model, layer, PREFILL, n, k, dtype));
        }
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quant_filter_covers_the_real_block_types_shapes_and_row_counts() {
        let quant: Vec<Spec> = all().into_iter().filter(|s| s.matches("quant")).collect();
        assert!(quant.iter().all(|s| s.dtype.is_quantized()), "only block-type cases");
        for (model, dtype) in [
            ("qwen2.5-0.5b", DType::Q5_0),
            ("qwen2.5-0.5b", DType::Q8_0),
            ("qwen2.5-0.5b", DType::Q4_K),
            ("qwen2.5-0.5b", DType::Q6_K),
            ("smollm2-135m", DType::Q4_1),
            ("smollm2-135m", DType::Q8_0),
        ] {
            assert!(quant.iter().any(|s| s.model == model && s.dtype == dtype), "{model} {dtype}");
        }
        for (model, layer) in [
            ("qwen2.5-0.5b", "q_proj"),
            ("qwen2.5-0.5b", "mlp_up"),
            ("qwen2.5-0.5b", "mlp_down"),
            ("smollm2-135m", "lm_head"),
        ] {
            let cases: Vec<&Spec> = quant.iter().filter(|s| s.model == model && s.shape.starts_with(layer)).collect();
            for m in QUANT_MATVEC_ROWS {
                assert!(cases.iter().any(|s| s.kernel == "matvec" && s.m == m), "{model} {layer} matvec M = {m}");
            }
            if layer != "lm_head" {
                assert!(cases.iter().any(|s| s.kernel == "matmul" && s.m == PREFILL), "{model} {layer} matmul");
            }
        }
        // K-quants only where rows hold whole 256-element blocks.
        for s in &quant {
            let k: usize = s.shape.split('x').nth(1).and_then(|t| t.split(']').next()).unwrap().parse().unwrap();
            assert_eq!(k % s.dtype.block_size(), 0, "{}", s.shape);
        }
        // Filtering by dtype name or model selects without building anything.
        assert!(all().iter().filter(|s| s.matches("q4_k")).all(|s| s.dtype == DType::Q4_K));
        assert!(all().iter().any(|s| s.matches("gpt2")));
    }
}
