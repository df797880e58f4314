//! Synthetic models for benchmarks (Qwen2.5-0.5B, SmolLM2-135M, GPT-2 124M): the real
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

use std::path::PathBuf;

use kiln_tensor::{DType, Device, Tensor};

use crate::config::{Arch, ModelConfig};
use crate::model::Model;
use crate::gpt2::Gpt2;
use crate::qwen2::Qwen2;
use crate::source::WeightSource;
use crate::{ModelError, Result};

/// The architectures `--synthetic` knows.
pub const SYNTHETIC_MODELS: &[&str] = &["qwen2.5-0.5b", "smollm2-135m", "gpt2"];

/// Weight types of a synthetic model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightTypes {
    F16,
    Q8_0,
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
        bos_token_id: None,
        eos_token_ids: vec![],
        pad_token_id: None,
        dtype: None,
        path: PathBuf::from(format!("synthetic:{name}")),
    };
    match name {
        "qwen2.5-0.5b" => Ok(base(Arch::Qwen2, 151936, 896, 24, 14, 2, 4864, 32768, 1e6, true)),
        "smollm2-135m" => Ok(base(Arch::Llama, 49152, 576, 30, 9, 3, 1536, 8192, 1e5, false)),
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
    let mut config = synthetic_config(name)?;
    let exact_qwen = name == "qwen2.5-0.5b" && types == WeightTypes::Q4KM;
    // The published Q4_K_M Qwen2.5 file has an untied Q8_0 output matrix.
    config.tie_word_embeddings = !exact_qwen;
    let weights = SyntheticWeights { types, exact_qwen, tied: config.tie_word_embeddings };
    if config.arch == Arch::Gpt2 {
        return Ok(Model::Gpt2(Gpt2::load(dev, &config, &weights, true)?));
    }
    Ok(Model::Qwen2(Qwen2::load(dev, &config, &weights, config.tie_word_embeddings)?))
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

/// A random `[rows, cols]` matrix of `dtype`, scaled like trained weights (|w| ≲ 0.1).
fn random_matrix(dev: &Device, name: &str, rows: usize, cols: usize, dtype: DType) -> Result<Tensor> {
    let n = rows * cols;
    let mut bytes = random_bytes(if dtype.is_quantized() { n / dtype.block_size() * dtype.gguf_block_bytes() } else { n * 2 }, seed_of(name));
    let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
    match dtype {
        DType::F16 => {
            for c in bytes.chunks_exact_mut(2) {
                let r = u16::from_le_bytes([c[0], c[1]]) as f32 / 65535.0 - 0.5;
                c.copy_from_slice(&f16(r * 0.1));
            }
            return Ok(Tensor::from_bytes(dev, &bytes, &[rows, cols], dtype)?);
        }
        _ => {
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
        }
    }
    let repacked = kiln_kernels::quant::repack(dtype, &bytes)?;
    Ok(Tensor::from_bytes(dev, &repacked, &[rows, cols], dtype)?)
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
        // Norm weights near 1, biases near 0.
        let base = if name.contains("norm") { 1.0 } else { 0.0 };
        let v: Vec<f32> = random_bytes(len, seed_of(name)).iter().map(|&b| base + (b as f32 / 255.0 - 0.5) * 0.02).collect();
        Ok(Tensor::from_slice(dev, &v, &[len])?)
    }

    fn contains(&self, name: &str) -> bool {
        name != crate::LM_HEAD || !self.tied
    }

    fn conv1d(&self, dev: &Device, name: &str, [n_in, n_out]: [usize; 2]) -> Result<Tensor> {
        self.matrix(dev, name, [n_out, n_in])
    }
}
