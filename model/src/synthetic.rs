//! Synthetic models for benchmarks (Qwen2.5-0.5B, SmolLM2-135M, Qwen3-0.6B, GPT-2 124M,
//! Gemma 3 270M): the real
//! architectures' shapes and weight types,
//! filled with seeded random values in memory — no download, nothing on disk. The
//! outputs are meaningless; the memory traffic and the kernels are the real ones.
//!
//! Weight types (`--dtype`):
//! - `f16`, `q8_0`: every matrix in that type;
//! - `q4_k`: the mix of a llama.cpp Q4_K_M file. For Qwen2.5-0.5B it is exactly the
//!   published file's: Q5_0 for q/k/o, gate, up and the embedding (llama.cpp falls back
//!   from Q4_K to Q5_0 when a row of 896 is not a multiple of 256), attn_v alternating
//!   Q8_0 / Q5_0, ffn_down alternating Q6_K / Q4_K, and an untied Q8_0 output. For other
//!   models: Q4_K where the row length allows it (else Q5_0), Q6_K for the output.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_tensor::{DType, Device, Tensor};

use crate::config::{Arch, ModelConfig};
use crate::gguf::model::gguf_name_for;
use crate::gemma3::{Gemma3, NormWeights};
use crate::gguf::writer::{write_gguf, TensorEntry};
use crate::gguf::{GgufArray, GgufValue};
use crate::layout::expected_weights;
use crate::model::Model;
use crate::gpt2::Gpt2;
use crate::qwen2::Qwen2;
use crate::source::WeightSource;
use crate::{ModelError, Result};

/// The architectures `--synthetic` knows.
pub const SYNTHETIC_MODELS: &[&str] = &["qwen2.5-0.5b", "smollm2-135m", "qwen3-0.6b", "gpt2", "gemma3-270m"];

/// Weight types of a synthetic model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightTypes {
    /// Every matrix in f16.
    F16,
    /// Every matrix in Q8_0.
    Q8_0,
    /// The mix of a llama.cpp Q4_K_M file (see the module docs).
    Q4KM,
}

impl std::str::FromStr for WeightTypes {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f16" => Ok(WeightTypes::F16),
            "q8_0" => Ok(WeightTypes::Q8_0),
            "q4_k" | "q4_k_m" => Ok(WeightTypes::Q4KM),
            _ => Err(ModelError::Param { name: "dtype".into(), detail: format!("{s:?}: expected f16, q8_0 or q4_k") }),
        }
    }
}

/// The config of a known architecture (as its Hugging Face config.json says).
pub fn synthetic_config(name: &str) -> Result<ModelConfig> {
    let base = |arch, vocab, hidden, layers, heads, kv, inter, ctx, theta: f64, qkv_bias| ModelConfig {
        arch,
        vocab_size: vocab,
        hidden_size: hidden,
        n_layers: layers,
        n_heads: heads,
        n_kv_heads: kv,
        head_dim: hidden / heads,
        intermediate_size: inter,
        max_position_embeddings: ctx,
        norm_eps: 1e-6,
        rope_theta: theta,
        rope_scaling: None,
        tie_word_embeddings: true,
        qkv_bias,
        o_bias: false,
        mlp_bias: false,
        hidden_act: "silu".into(),
        sliding_window: None,
        gemma3: None,
        bos_token_id: None,
        eos_token_ids: vec![],
        pad_token_id: None,
        dtype: None,
        path: PathBuf::from(format!("synthetic:{name}")),
    };
    match name {
        "qwen2.5-0.5b" => Ok(base(Arch::Qwen2, 151936, 896, 24, 14, 2, 4864, 32768, 1e6, true)),
        "smollm2-135m" => Ok(base(Arch::Llama, 49152, 576, 30, 9, 3, 1536, 8192, 1e5, false)),
        // Qwen3-0.6B: head_dim 128, not hidden / heads = 64.
        "qwen3-0.6b" => Ok(ModelConfig { head_dim: 128, ..base(Arch::Qwen3, 151936, 1024, 28, 16, 8, 3072, 40960, 1e6, false) }),
        // Gemma 3 270M: head_dim 256 (hidden / heads = 160), one KV head, every 6th layer
        // global, a 512-position window on the others.
        "gemma3-270m" => Ok(ModelConfig {
            head_dim: 256,
            hidden_act: "gelu_pytorch_tanh".into(),
            sliding_window: Some(512),
            gemma3: Some(crate::Gemma3Params {
                query_pre_attn_scalar: 256.0,
                rope_local_theta: 10000.0,
                sliding_window: 512,
                sliding_layers: crate::Gemma3Params::pattern_layers(18, 6),
            }),
            ..base(Arch::Gemma3, 262144, 640, 18, 4, 1, 2048, 32768, 1e6, false)
        }),
        "gpt2" => Ok(ModelConfig {
            norm_eps: 1e-5,
            hidden_act: "gelu_new".into(),
            ..base(Arch::Gpt2, 50257, 768, 12, 12, 12, 3072, 1024, 0.0, false)
        }),
        _ => Err(ModelError::Param {
            name: "synthetic".into(),
            detail: format!("{name:?}: known synthetic models are {}", SYNTHETIC_MODELS.join(", ")),
        }),
    }
}

/// A synthetic model on `dev`: `name` from [`SYNTHETIC_MODELS`], weights of `types`.
pub fn load_synthetic(dev: &Device, name: &str, types: WeightTypes) -> Result<Model> {
    let (config, weights) = synthetic_parts(name, types)?;
    if config.arch == Arch::Gpt2 {
        return Ok(Model::Gpt2(Gpt2::load(dev, &config, &weights, true)?));
    }
    if config.arch == Arch::Gemma3 {
        // The synthetic norm weights are scales near 1, as a GGUF file stores them.
        let tied = config.tie_word_embeddings;
        return Ok(Model::Gemma3(Gemma3::load(dev, &config, &weights, tied, NormWeights::WithOne)?));
    }
    Ok(Model::Qwen2(Qwen2::load(dev, &config, &weights, config.tie_word_embeddings)?))
}

/// The config and the weight source of a synthetic model.
fn synthetic_parts(name: &str, types: WeightTypes) -> Result<(ModelConfig, SyntheticWeights)> {
    let mut config = synthetic_config(name)?;
    let exact_qwen = name == "qwen2.5-0.5b" && types == WeightTypes::Q4KM;
    // The published Q4_K_M Qwen2.5 file has an untied Q8_0 output matrix.
    config.tie_word_embeddings = !exact_qwen;
    let weights = SyntheticWeights { types, exact_qwen, tied: config.tie_word_embeddings };
    Ok((config, weights))
}

struct SyntheticWeights {
    types: WeightTypes,
    exact_qwen: bool,
    tied: bool,
}

impl SyntheticWeights {
    /// The type of matrix `name` `[rows, cols]`.
    fn dtype(&self, name: &str, cols: usize) -> DType {
        let layer: usize = name.split('.').nth(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        if name.starts_with("transformer.wpe") {
            // GPT-2's position table is added by a float kernel.
            return DType::F16;
        }
        match self.types {
            WeightTypes::F16 => DType::F16,
            WeightTypes::Q8_0 => DType::Q8_0,
            WeightTypes::Q4KM if self.exact_qwen => {
                if name.contains("v_proj") {
                    [DType::Q8_0, DType::Q5_0][layer % 2]
                } else if name.contains("down_proj") {
                    [DType::Q6_K, DType::Q4_K][layer % 2]
                } else if name == crate::LM_HEAD {
                    DType::Q8_0
                } else {
                    DType::Q5_0
                }
            }
            WeightTypes::Q4KM => {
                if name == crate::LM_HEAD || name.contains("embed") || name.contains("wte") {
                    if cols.is_multiple_of(256) { DType::Q6_K } else { DType::Q8_0 }
                } else if cols.is_multiple_of(256) {
                    DType::Q4_K
                } else {
                    DType::Q5_0
                }
            }
        }
    }
}

/// Seeded xorshift bytes.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(n);
    out
}

fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// A random `[rows, cols]` matrix of `dtype` in GGUF's own layout, scaled like trained
/// weights (|w| ≲ 0.1), seeded by `name`.
fn gguf_matrix_bytes(name: &str, rows: usize, cols: usize, dtype: DType) -> Vec<u8> {
    let n = rows * cols;
    let mut bytes = random_bytes(if dtype.is_quantized() { n / dtype.block_size() * dtype.gguf_block_bytes() } else { n * 2 }, seed_of(name));
    let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
    if dtype == DType::F16 {
        for c in bytes.chunks_exact_mut(2) {
            let r = u16::from_le_bytes([c[0], c[1]]) as f32 / 65535.0 - 0.5;
            c.copy_from_slice(&f16(r * 0.1));
        }
        return bytes;
    }
    // Overwrite each block's f16 scale(s) with small, finite values.
    let bb = dtype.gguf_block_bytes();
    for block in bytes.chunks_exact_mut(bb) {
        match dtype {
            DType::Q6_K => block[bb - 2..].copy_from_slice(&f16(0.002)),
            DType::Q4_K | DType::Q5_K | DType::Q4_1 | DType::Q5_1 => {
                block[..2].copy_from_slice(&f16(0.005));
                block[2..4].copy_from_slice(&f16(0.003));
            }
            _ => block[..2].copy_from_slice(&f16(0.005)),
        }
    }
    bytes
}

/// [`gguf_matrix_bytes`] uploaded (block types repacked into kiln's GPU layout).
fn random_matrix(dev: &Device, name: &str, rows: usize, cols: usize, dtype: DType) -> Result<Tensor> {
    let bytes = gguf_matrix_bytes(name, rows, cols, dtype);
    if !dtype.is_quantized() {
        return Ok(Tensor::from_bytes(dev, &bytes, &[rows, cols], dtype)?);
    }
    let repacked = kiln_kernels::quant::repack(dtype, &bytes)?;
    Ok(Tensor::from_bytes(dev, &repacked, &[rows, cols], dtype)?)
}

/// A 1-D weight: norm weights near 1, biases near 0, seeded by `name`.
fn vector_values(name: &str, len: usize) -> Vec<f32> {
    let base = if name.contains("norm") { 1.0 } else { 0.0 };
    random_bytes(len, seed_of(name)).iter().map(|&b| base + (b as f32 / 255.0 - 0.5) * 0.02).collect()
}

impl WeightSource for SyntheticWeights {
    fn matrix(&self, dev: &Device, name: &str, [rows, cols]: [usize; 2]) -> Result<Tensor> {
        random_matrix(dev, name, rows, cols, self.dtype(name, cols))
    }

    fn matrix_blocks(&self, dev: &Device, name: &str, [rows, cols]: [usize; 2]) -> Result<Vec<(usize, Tensor)>> {
        let dtype = self.dtype(name, cols);
        let row_bytes = dtype.storage_bytes(cols);
        let per_block = (dev.max_binding_bytes() / row_bytes.max(1)).max(1) as usize;
        (0..rows)
            .step_by(per_block)
            .map(|start| {
                let n = per_block.min(rows - start);
                Ok((start, random_matrix(dev, &format!("{name}#{start}"), n, cols, dtype)?))
            })
            .collect()
    }

    fn vector_f32(&self, dev: &Device, name: &str, len: usize) -> Result<Tensor> {
        Ok(Tensor::from_slice(dev, &vector_values(name, len), &[len])?)
    }

    fn contains(&self, name: &str) -> bool {
        name != crate::LM_HEAD || !self.tied
    }

    fn conv1d(&self, dev: &Device, name: &str, [n_in, n_out]: [usize; 2]) -> Result<Tensor> {
        self.matrix(dev, name, [n_out, n_in])
    }
}

/// ggml's type id of a weight dtype (GGUF tensor infos).
fn ggml_type_id(dtype: DType) -> u32 {
    match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::Q4_0 => 2,
        DType::Q4_1 => 3,
        DType::Q5_0 => 6,
        DType::Q5_1 => 7,
        DType::Q8_0 => 8,
        DType::Q4_K => 12,
        DType::Q5_K => 13,
        DType::Q6_K => 14,
        DType::BF16 => 30,
        DType::U32 => unreachable!("no weight is u32"),
    }
}

/// A synthetic model's metadata: llama.cpp's keys for its architecture, and a byte-level
/// BPE vocabulary of the model's size (the 256 byte symbols, then placeholder tokens; no
/// merges), which both kiln and llama.cpp load.
fn gguf_metadata(name: &str, c: &ModelConfig) -> Vec<(String, GgufValue)> {
    let arch = if c.arch == Arch::Gemma3 { "gemma3" } else { c.arch.name() };
    let u32v = |v: usize| GgufValue::U32(v as u32);
    let key = |k: &str| format!("{arch}.{k}");
    let mut tokens: Vec<String> = crate::tokenizer::bytes_to_unicode().into_iter().map(|(_, ch)| ch.to_string()).collect();
    tokens.extend((tokens.len()..c.vocab_size).map(|i| format!("<|synthetic_{i}|>")));
    let mut kvs: Vec<(String, GgufValue)> = vec![
        ("general.architecture".into(), GgufValue::String(arch.into())),
        ("general.name".into(), GgufValue::String(format!("kiln synthetic {name}"))),
        (key("context_length"), u32v(c.max_position_embeddings)),
        (key("embedding_length"), u32v(c.hidden_size)),
        (key("block_count"), u32v(c.n_layers)),
        (key("feed_forward_length"), u32v(c.intermediate_size)),
        (key("attention.head_count"), u32v(c.n_heads)),
    ];
    if c.arch == Arch::Gpt2 {
        kvs.push((key("attention.layer_norm_epsilon"), GgufValue::F32(c.norm_eps as f32)));
    } else {
        kvs.extend([
            (key("attention.head_count_kv"), u32v(c.n_kv_heads)),
            (key("attention.key_length"), u32v(c.head_dim)),
            (key("attention.value_length"), u32v(c.head_dim)),
            (key("rope.freq_base"), GgufValue::F32(c.rope_theta as f32)),
            (key("attention.layer_norm_rms_epsilon"), GgufValue::F32(c.norm_eps as f32)),
        ]);
    }
    if let Some(g) = &c.gemma3 {
        kvs.push((key("attention.sliding_window"), u32v(g.sliding_window)));
    }
    kvs.extend([
        ("tokenizer.ggml.model".into(), GgufValue::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), GgufValue::String("default".into())),
        ("tokenizer.ggml.token_type".into(), GgufValue::Array(GgufArray::I32(vec![1; tokens.len()]))),
        ("tokenizer.ggml.tokens".into(), GgufValue::Array(GgufArray::String(tokens))),
        ("tokenizer.ggml.merges".into(), GgufValue::Array(GgufArray::String(vec![]))),
        ("tokenizer.ggml.eos_token_id".into(), u32v(c.vocab_size - 1)),
        ("tokenizer.ggml.add_bos_token".into(), GgufValue::Bool(false)),
    ]);
    kvs
}

/// Write synthetic model `name` (weights of `types`) to `path` as a GGUF file: the shapes,
/// weight types and kind of seeded values `load_synthetic` builds (matrices in GGUF's
/// block layout), with metadata and a placeholder vocabulary that kiln and llama.cpp both
/// load — so both engines can run the very same file. GPT-2's Conv1D weights are written
/// as llama.cpp's converter writes them, transposed to `[out, in]`. Returns the bytes
/// written.
pub fn write_synthetic_gguf(name: &str, types: WeightTypes, path: &Path) -> Result<u64> {
    let (config, weights) = synthetic_parts(name, types)?;
    enum Kind {
        Matrix { hf: String, rows: usize, cols: usize, dtype: DType },
        Vector { hf: String, len: usize },
    }
    let mut kinds = Vec::new();
    let mut entries = Vec::new();
    for spec in expected_weights(&config) {
        if spec.name == crate::LM_HEAD && config.tie_word_embeddings {
            continue;
        }
        let gname = gguf_name_for(config.arch, &spec.name).expect("every weight of a known family has a GGUF name");
        match *spec.shape.as_slice() {
            [a, b] => {
                // A Conv1D weight [in, out] is the Linear weight [out, in] (`conv1d` of the source).
                let (rows, cols) = if spec.conv1d { (b, a) } else { (a, b) };
                let dtype = weights.dtype(&spec.name, cols);
                let n = rows * cols;
                let bytes = if dtype.is_quantized() { n / dtype.block_size() * dtype.gguf_block_bytes() } else { n * dtype.elem_bytes() } as u64;
                entries.push(TensorEntry { name: gname, dims: vec![cols as u64, rows as u64], type_id: ggml_type_id(dtype), bytes });
                kinds.push(Kind::Matrix { hf: spec.name.clone(), rows, cols, dtype });
            }
            [len] => {
                entries.push(TensorEntry { name: gname, dims: vec![len as u64], type_id: 0, bytes: 4 * len as u64 });
                kinds.push(Kind::Vector { hf: spec.name.clone(), len });
            }
            _ => unreachable!("weights are 1-D or 2-D"),
        }
    }
    let io_err = |e: std::io::Error| ModelError::io(path, e);
    let file = std::fs::File::create(path).map_err(io_err)?;
    let mut w = std::io::BufWriter::new(file);
    let written = write_gguf(&mut w, &gguf_metadata(name, &config), &entries, |i| {
        Ok(match &kinds[i] {
            Kind::Matrix { hf, rows, cols, dtype } => gguf_matrix_bytes(hf, *rows, *cols, *dtype),
            Kind::Vector { hf, len } => vector_values(hf, *len).iter().flat_map(|v| v.to_le_bytes()).collect(),
        })
    })
    .map_err(io_err)?;
    w.flush().map_err(io_err)?;
    Ok(written)
}
