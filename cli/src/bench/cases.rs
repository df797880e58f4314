//! The benchmark cases: every kernel at the layer shapes of GPT-2 124M and
//! Qwen2.5-0.5B, for decode (one token) and prefill (128 tokens). Each case records
//! its dispatches and can check its output against the kernel's CPU twin.

use anyhow::{anyhow, Result};
use half::{bf16, f16};
use kiln_kernels::testing::Rng;
use kiln_kernels::{
    argmax, attention, elementwise, embedding, kv_cache, matmul, matvec, norm, reference, rope, softmax,
    tolerance, DType, Device, Recorder, Tensor,
};

pub type RecordFn = Box<dyn Fn(&mut Recorder) -> Result<()>>;
pub type CheckFn = Box<dyn Fn() -> Result<()>>;

pub struct Case {
    pub kernel: &'static str,
    pub model: &'static str,
    pub shape: String,
    pub record: RecordFn,
    pub check: CheckFn,
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

pub const GPT2: Shapes =
    Shapes { name: "gpt2-124m", hidden: 768, ffn: 3072, heads: 12, kv_heads: 12, head_dim: 64, vocab: 50257, weight: DType::F16 };
pub const QWEN2: Shapes =
    Shapes { name: "qwen2.5-0.5b", hidden: 896, ffn: 4864, heads: 14, kv_heads: 2, head_dim: 64, vocab: 151936, weight: DType::BF16 };

pub const PREFILL: usize = 128;
pub const CONTEXT: usize = 1024;

/// Random weights in `dtype` plus the f32 values the GPU will actually see.
fn weights(dev: &Device, rng: &mut Rng, rows: usize, cols: usize, dtype: DType) -> Result<(Tensor, Vec<f32>)> {
    let vals = rng.vec(rows * cols, 0.05);
    let shape = [rows, cols];
    Ok(match dtype {
        DType::F16 => {
            let h: Vec<f16> = vals.iter().map(|&v| f16::from_f32(v)).collect();
            (Tensor::from_slice(dev, &h, &shape)?, h.iter().map(|v| v.to_f32()).collect())
        }
        DType::BF16 => {
            let h: Vec<bf16> = vals.iter().map(|&v| bf16::from_f32(v)).collect();
            (Tensor::from_slice(dev, &h, &shape)?, h.iter().map(|v| v.to_f32()).collect())
        }
        _ => (Tensor::from_slice(dev, &vals, &shape)?, vals),
    })
}

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

fn matvec_case(dev: &Device, rng: &mut Rng, s: &Shapes, layer: &str, n: usize, k: usize) -> Result<Case> {
    let (w, wv) = weights(dev, rng, n, k, s.weight)?;
    let (x, xv) = input(dev, rng, &[1, k], 1.0)?;
    let out = Tensor::empty(dev, &[1, n], DType::F32)?;
    let o = out.clone();
    Ok(Case {
        kernel: "matvec",
        model: s.name,
        shape: format!("{layer} [1x{k}]·[{n}x{k}]ᵀ {}", s.weight),
        record: Box::new(move |rec| Ok(matvec::matvec(rec, &x, &w, &o)?)),
        check: check_f32(format!("matvec {layer}"), out, move || reference::matvec::matvec(&xv, &wv, n, k), tolerance::MATMUL_HALF),
    })
}

fn matmul_case(dev: &Device, rng: &mut Rng, s: &Shapes, layer: &str, m: usize, n: usize, k: usize) -> Result<Case> {
    let (w, wv) = weights(dev, rng, n, k, s.weight)?;
    let (a, av) = input(dev, rng, &[m, k], 1.0)?;
    let out = Tensor::empty(dev, &[m, n], DType::F32)?;
    let o = out.clone();
    Ok(Case {
        kernel: "matmul",
        model: s.name,
        shape: format!("{layer} [{m}x{k}]·[{n}x{k}]ᵀ {}", s.weight),
        record: Box::new(move |rec| Ok(matmul::matmul(rec, &a, &w, &o)?)),
        check: check_f32(
            format!("matmul {layer}"),
            out,
            move || reference::matmul::matmul(&av, &wv, 1, m, n, k, false),
            tolerance::MATMUL_HALF,
        ),
    })
}

/// The square f32 matmul used to measure the device's best matmul throughput.
pub fn peak_matmul(dev: &Device, size: usize) -> Result<Case> {
    let mut rng = Rng::new(7);
    let (w, wv) = weights(dev, &mut rng, size, size, DType::F32)?;
    let (a, av) = input(dev, &mut rng, &[size, size], 1.0)?;
    let out = Tensor::empty(dev, &[size, size], DType::F32)?;
    let o = out.clone();
    Ok(Case {
        kernel: "matmul",
        model: "peak",
        shape: format!("[{size}x{size}]·[{size}x{size}]ᵀ f32"),
        record: Box::new(move |rec| Ok(matmul::matmul(rec, &a, &w, &o)?)),
        check: check_f32(
            "peak matmul".into(),
            out,
            move || reference::matmul::matmul(&av, &wv, 1, size, size, size, false),
            tolerance::MATMUL_F32,
        ),
    })
}

fn attention_case(dev: &Device, rng: &mut Rng, s: &Shapes, n_q: usize, ctx: usize) -> Result<Case> {
    let (h, kvh, hd) = (s.heads, s.kv_heads, s.head_dim);
    let (q, qv) = input(dev, rng, &[n_q, h, hd], 1.0)?;
    let (k, kv) = input(dev, rng, &[CONTEXT, kvh, hd], 1.0)?;
    let (v, vv) = input(dev, rng, &[CONTEXT, kvh, hd], 1.0)?;
    let out = Tensor::empty(dev, &[n_q, h, hd], DType::F32)?;
    let o = out.clone();
    let pos = ctx - n_q;
    let decode = n_q == 1;
    Ok(Case {
        kernel: if decode { "attention_decode" } else { "attention" },
        model: s.name,
        shape: format!("q [{n_q}x{h}x{hd}] over {ctx} cached positions, {kvh} kv heads"),
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
}

/// Every case, in table order. Cases whose tensors exceed this adapter's binding limit
/// come back as `Err` with the reason, so the caller can say what was skipped.
pub fn all(dev: &Device) -> Vec<Result<Case>> {
    let mut rng = Rng::new(42);
    let mut cases = Vec::new();
    for s in [&GPT2, &QWEN2] {
        let d = s.hidden;
        let qkv = (s.heads + 2 * s.kv_heads) * s.head_dim;
        // Decode: one token through every projection.
        cases.push(matvec_case(dev, &mut rng, s, "qkv", qkv, d));
        cases.push(matvec_case(dev, &mut rng, s, "attn_out", d, s.heads * s.head_dim));
        cases.push(matvec_case(dev, &mut rng, s, "mlp_up", s.ffn, d));
        cases.push(matvec_case(dev, &mut rng, s, "mlp_down", d, s.ffn));
        cases.push(matvec_case(dev, &mut rng, s, "lm_head", s.vocab, d).map_err(|e| e.context(format!("{} lm_head matvec", s.name))));
        // Prefill: 128 tokens.
        cases.push(matmul_case(dev, &mut rng, s, "qkv", PREFILL, qkv, d));
        cases.push(matmul_case(dev, &mut rng, s, "mlp_up", PREFILL, s.ffn, d));
        cases.push(matmul_case(dev, &mut rng, s, "mlp_down", PREFILL, d, s.ffn));
        cases.push(attention_case(dev, &mut rng, s, 1, CONTEXT));
        cases.push(attention_case(dev, &mut rng, s, PREFILL, PREFILL));
        cases.push(norm_case(dev, &mut rng, s, 1));
        cases.push(norm_case(dev, &mut rng, s, PREFILL));
        cases.push(rope_case(dev, &mut rng, s));
        cases.push(activation_case(dev, &mut rng, s));
        cases.push(add_case(dev, &mut rng, s));
        cases.push(embedding_case(dev, &mut rng, s).map_err(|e| e.context(format!("{} embedding", s.name))));
        cases.push(kv_append_case(dev, &mut rng, s));
        cases.push(softmax_case(dev, &mut rng, s, false));
        cases.push(softmax_case(dev, &mut rng, s, true));
        cases.push(argmax_case(dev, &mut rng, s));
    }
    cases
}

fn norm_case(dev: &Device, rng: &mut Rng, s: &Shapes, rows: usize) -> Result<Case> {
    let d = s.hidden;
    let (x, xv) = input(dev, rng, &[rows, d], 3.0)?;
    let (w, wv) = input(dev, rng, &[d], 1.0)?;
    let out = Tensor::empty(dev, &[rows, d], DType::F32)?;
    let o = out.clone();
    let eps = 1e-5;
    if s.name == GPT2.name {
        let (b, bv) = input(dev, rng, &[d], 1.0)?;
        Ok(Case {
            kernel: "layer_norm",
            model: s.name,
            shape: format!("[{rows}x{d}]"),
            record: Box::new(move |rec| Ok(norm::layer_norm(rec, &x, &w, &b, eps, &o)?)),
            check: check_f32("layer_norm".into(), out, move || reference::norm::layer_norm(&xv, &wv, &bv, eps), tolerance::REDUCTION),
        })
    } else {
        Ok(Case {
            kernel: "rms_norm",
            model: s.name,
            shape: format!("[{rows}x{d}]"),
            record: Box::new(move |rec| Ok(norm::rms_norm(rec, &x, &w, eps, &o)?)),
            check: check_f32("rms_norm".into(), out, move || reference::norm::rms_norm(&xv, &wv, eps), tolerance::REDUCTION),
        })
    }
}

fn rope_case(dev: &Device, rng: &mut Rng, s: &Shapes) -> Result<Case> {
    let (h, hd) = (s.heads, s.head_dim);
    let (x, xv) = input(dev, rng, &[PREFILL, h, hd], 1.0)?;
    let theta = 1_000_000.0;
    let table = rope::RopeTable::new(dev, hd, theta, CONTEXT)?;
    let cpu_table = reference::rope::cpu_table(hd, theta, CONTEXT);
    let out = Tensor::empty(dev, &[PREFILL, h, hd], DType::F32)?;
    let o = out.clone();
    let pos = 7;
    Ok(Case {
        kernel: "rope",
        model: s.name,
        shape: format!("[{PREFILL}x{h}x{hd}] half-split, positions {pos}..{}", pos + PREFILL),
        record: Box::new(move |rec| Ok(rope::rope(rec, &x, &table, pos, rope::RopeMode::HalfSplit, &o)?)),
        check: check_f32(
            "rope".into(),
            out,
            move || reference::rope::rope(&xv, PREFILL, h, hd, &cpu_table, pos, false),
            tolerance::ROPE,
        ),
    })
}

fn activation_case(dev: &Device, rng: &mut Rng, s: &Shapes) -> Result<Case> {
    let f = s.ffn;
    let (g, gv) = input(dev, rng, &[PREFILL, f], 4.0)?;
    let out = Tensor::empty(dev, &[PREFILL, f], DType::F32)?;
    let o = out.clone();
    if s.name == GPT2.name {
        Ok(Case {
            kernel: "gelu_tanh",
            model: s.name,
            shape: format!("[{PREFILL}x{f}]"),
            record: Box::new(move |rec| Ok(elementwise::gelu_tanh(rec, &g, &o)?)),
            check: check_f32("gelu_tanh".into(), out, move || reference::gelu_tanh(&gv), tolerance::ELEMENTWISE),
        })
    } else {
        let (u, uv) = input(dev, rng, &[PREFILL, f], 4.0)?;
        Ok(Case {
            kernel: "swiglu",
            model: s.name,
            shape: format!("[{PREFILL}x{f}]"),
            record: Box::new(move |rec| Ok(elementwise::swiglu(rec, &g, &u, &o)?)),
            check: check_f32("swiglu".into(), out, move || reference::swiglu(&gv, &uv), tolerance::ELEMENTWISE),
        })
    }
}

fn add_case(dev: &Device, rng: &mut Rng, s: &Shapes) -> Result<Case> {
    let d = s.hidden;
    let (a, av) = input(dev, rng, &[PREFILL, d], 1.0)?;
    let (b, bv) = input(dev, rng, &[PREFILL, d], 1.0)?;
    let out = Tensor::empty(dev, &[PREFILL, d], DType::F32)?;
    let o = out.clone();
    Ok(Case {
        kernel: "add",
        model: s.name,
        shape: format!("residual [{PREFILL}x{d}]"),
        record: Box::new(move |rec| Ok(elementwise::add(rec, &a, &b, &o)?)),
        check: check_f32("add".into(), out, move || reference::add(&av, &bv), tolerance::ELEMENTWISE),
    })
}

fn embedding_case(dev: &Device, rng: &mut Rng, s: &Shapes) -> Result<Case> {
    let (table, tv) = weights(dev, rng, s.vocab, s.hidden, s.weight)?;
    let ids_v: Vec<u32> = (0..PREFILL).map(|_| rng.below(s.vocab as u32)).collect();
    let ids = Tensor::from_slice(dev, &ids_v, &[PREFILL])?;
    let out = Tensor::empty(dev, &[PREFILL, s.hidden], DType::F32)?;
    let o = out.clone();
    let d = s.hidden;
    Ok(Case {
        kernel: "embedding",
        model: s.name,
        shape: format!("{PREFILL} ids from [{}x{d}] {}", s.vocab, s.weight),
        record: Box::new(move |rec| Ok(embedding::embedding(rec, &ids, &table, &o)?)),
        check: check_f32("embedding".into(), out, move || reference::embedding::embedding(&ids_v, &tv, d), tolerance::EXACT),
    })
}

fn kv_append_case(dev: &Device, rng: &mut Rng, s: &Shapes) -> Result<Case> {
    let (kvh, hd) = (s.kv_heads, s.head_dim);
    let (new, nv) = input(dev, rng, &[1, kvh, hd], 1.0)?;
    let cache = Tensor::zeros(dev, &[CONTEXT, kvh, hd], DType::F32)?;
    let c = cache.clone();
    let pos = CONTEXT - 1;
    Ok(Case {
        kernel: "kv_append",
        model: s.name,
        shape: format!("[1x{kvh}x{hd}] into [{CONTEXT}x{kvh}x{hd}] at {pos}"),
        record: Box::new(move |rec| Ok(kv_cache::kv_append(rec, &new, &c, pos)?)),
        check: check_f32(
            "kv_append".into(),
            cache,
            move || reference::kv_cache::kv_append(&vec![0.0; CONTEXT * kvh * hd], &nv, kvh * hd, pos),
            tolerance::EXACT,
        ),
    })
}

fn softmax_case(dev: &Device, rng: &mut Rng, s: &Shapes, log: bool) -> Result<Case> {
    let n = s.vocab;
    let (x, xv) = input(dev, rng, &[1, n], 30.0)?;
    let out = Tensor::empty(dev, &[1, n], DType::F32)?;
    let o = out.clone();
    Ok(Case {
        kernel: if log { "log_softmax" } else { "softmax" },
        model: s.name,
        shape: format!("logits [1x{n}]"),
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
}

fn argmax_case(dev: &Device, rng: &mut Rng, s: &Shapes) -> Result<Case> {
    let n = s.vocab;
    let (x, xv) = input(dev, rng, &[1, n], 30.0)?;
    let out = Tensor::empty(dev, &[1], DType::U32)?;
    let o = out.clone();
    Ok(Case {
        kernel: "argmax",
        model: s.name,
        shape: format!("logits [1x{n}]"),
        record: Box::new(move |rec| Ok(argmax::argmax(rec, &x, &o)?)),
        check: Box::new(move || {
            let got = out.to_vec_u32()?;
            tolerance::compare_u32("argmax", &got, &reference::argmax::argmax(&xv, n)).map_err(|m| anyhow!(m))
        }),
    })
}
