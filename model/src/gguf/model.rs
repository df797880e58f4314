//! GPT-2, Qwen2, Qwen3, Llama and Gemma 3 from a GGUF file: the config from `<arch>.*` metadata, and a
//! [`WeightSource`] that serves llama.cpp's tensor names under the Hugging Face names the
//! model code asks for. Block-quantized tensors are repacked (not dequantized) for the
//! GPU. llama.cpp's converter stores the Q and K rows of *llama* models permuted for its
//! RoPE; they are put back in Hugging Face order here, as transformers does on load.

use std::path::Path;

use kiln_kernels::attention::MAX_HEAD_DIM;
use kiln_kernels::quant;
use kiln_tensor::{DType, Device, Tensor};

use super::{GgufFile, GgufTensorInfo};
use crate::source::WeightSource;
use crate::{Arch, ModelConfig, ModelError, Result};

/// llama.cpp's name for a Hugging Face tensor name of an `arch` model: Gemma 3's four
/// layer norms have names of their own, the rest is [`gguf_name`].
pub fn gguf_name_for(arch: Arch, hf: &str) -> Option<String> {
    if let (Arch::Gemma3, Some(rest)) = (arch, hf.strip_prefix("model.layers.")) {
        let renamed = [
            ("post_attention_layernorm.weight", "post_attention_norm.weight"),
            ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
            ("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
        ];
        if let Some((layer, field)) = rest.split_once('.') {
            if let Some((_, g)) = renamed.iter().find(|(h, _)| *h == field) {
                return Some(format!("blk.{layer}.{g}"));
            }
        }
    }
    gguf_name(hf)
}

/// llama.cpp's name for a Hugging Face tensor name (`None` when it has no counterpart).
pub fn gguf_name(hf: &str) -> Option<String> {
    let simple = match hf {
        "model.embed_tokens.weight" | "transformer.wte.weight" => Some("token_embd.weight"),
        "transformer.wpe.weight" => Some("position_embd.weight"),
        "transformer.ln_f.weight" => Some("output_norm.weight"),
        "transformer.ln_f.bias" => Some("output_norm.bias"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(s) = simple {
        return Some(s.to_string());
    }
    let rest = hf.strip_prefix("model.layers.").or_else(|| hf.strip_prefix("transformer.h."))?;
    let (layer, field) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = field.rsplit_once('.')?; // kind: weight | bias
    let gguf = match module {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        // GPT-2 (convert_hf_to_gguf.py stores its Conv1D weights transposed, [out, in]).
        "ln_1" => "attn_norm",
        "attn.c_attn" => "attn_qkv",
        "attn.c_proj" => "attn_output",
        "ln_2" => "ffn_norm",
        "mlp.c_fc" => "ffn_up",
        "mlp.c_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf}.{kind}"))
}

fn meta_err(file: &GgufFile, key: &str, detail: impl Into<String>) -> ModelError {
    ModelError::GgufMetadata { path: file.path().to_path_buf(), key: key.to_string(), detail: detail.into() }
}

/// The model config from GGUF metadata (`general.architecture` = gpt2, qwen2, qwen3, llama
/// or gemma3).
pub fn config_from_gguf(file: &GgufFile) -> Result<ModelConfig> {
    let arch_name = file.architecture()?.to_string();
    let arch = match arch_name.as_str() {
        "qwen2" => Arch::Qwen2,
        "llama" => Arch::Llama,
        "qwen3" => Arch::Qwen3,
        "gpt2" => Arch::Gpt2,
        "gemma3" => Arch::Gemma3,
        _ => {
            return Err(ModelError::UnknownArchitecture {
                path: file.path().to_path_buf(),
                value: format!("{arch_name:?} (general.architecture); kiln runs gpt2, qwen2, qwen3, llama and gemma3 GGUF files"),
            })
        }
    };
    let key = |k: &str| format!("{arch_name}.{k}");
    let hidden = file.get_usize(&key("embedding_length"))?;
    let n_heads = file.get_usize(&key("attention.head_count"))?;
    let n_kv_heads = file.opt_u64(&key("attention.head_count_kv"))?.map_or(n_heads, |v| v as usize);
    // Gemma 3's head_dim is its own (key_length), not hidden / heads.
    if n_heads == 0 || n_kv_heads == 0 || n_heads % n_kv_heads != 0 || (arch != Arch::Gemma3 && hidden % n_heads != 0) {
        return Err(meta_err(
            file,
            &key("attention.head_count_kv"),
            format!("{n_heads} heads over {n_kv_heads} kv heads with hidden size {hidden} is not a valid attention layout"),
        ));
    }
    let head_dim = match file.opt_u64(&key("attention.key_length"))? {
        None => hidden / n_heads,
        Some(v) if v == 0 || v % 2 != 0 || v > MAX_HEAD_DIM as u64 => {
            return Err(meta_err(
                file,
                &key("attention.key_length"),
                format!("head_dim {v}: kiln runs an even head_dim from 2 to {MAX_HEAD_DIM}"),
            ))
        }
        Some(v) => v as usize,
    };
    if let Some(v) = file.opt_u64(&key("attention.value_length"))? {
        if v != head_dim as u64 {
            return Err(meta_err(
                file,
                &key("attention.value_length"),
                format!("{v} differs from the key length {head_dim}; kiln needs values as wide as keys"),
            ));
        }
    }
    let embd = file.tensor_info("token_embd.weight")?;
    let vocab_size = *embd.shape().first().unwrap_or(&0);
    let rope_scaling = match file.opt_str(&key("rope.scaling.type"))? {
        None | Some("none") => None,
        Some(kind) => Some(serde_json::json!({ "rope_type": kind })),
    };
    let eos: Vec<u32> = file.opt_u32("tokenizer.ggml.eos_token_id")?.into_iter().collect();
    let n_layers = file.get_usize(&key("block_count"))?;
    // Every layer has several tensors: a corrupt count must not size allocations.
    if n_layers == 0 || n_layers > file.tensors().len() {
        return Err(meta_err(
            file,
            &key("block_count"),
            format!("{n_layers} layers, but the file holds {} tensors", file.tensors().len()),
        ));
    }
    let gemma3 = if arch == Arch::Gemma3 { Some(gemma3_params(file, &arch_name, n_layers, head_dim)?) } else { None };
    let config = ModelConfig {
        arch,
        vocab_size,
        hidden_size: hidden,
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim,
        intermediate_size: file.get_usize(&key("feed_forward_length"))?,
        max_position_embeddings: file.get_usize(&key("context_length"))?,
        norm_eps: match arch {
            Arch::Gpt2 => file.get_f64(&key("attention.layer_norm_epsilon"))?,
            _ => file.get_f64(&key("attention.layer_norm_rms_epsilon"))?,
        },
        rope_theta: file.opt_f64(&key("rope.freq_base"))?.unwrap_or(10000.0),
        rope_scaling,
        tie_word_embeddings: file.tensor("output.weight").is_none(),
        qkv_bias: file.tensor("blk.0.attn_q.bias").is_some() || file.tensor("blk.0.attn_qkv.bias").is_some(),
        o_bias: file.tensor("blk.0.attn_output.bias").is_some(),
        mlp_bias: file.tensor("blk.0.ffn_up.bias").is_some(),
        hidden_act: match arch {
            Arch::Gpt2 => "gelu_new",
            Arch::Gemma3 => "gelu_pytorch_tanh",
            _ => "silu",
        }
        .into(),
        sliding_window: gemma3.as_ref().map(|g| g.sliding_window),
        gemma3,
        bos_token_id: file.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_ids: eos,
        pad_token_id: file.opt_u32("tokenizer.ggml.padding_token_id")?,
        dtype: None,
        path: file.path().to_path_buf(),
    };
    config.check_widths()?;
    Ok(config)
}

/// Gemma 3's fields as llama.cpp reads them: `attention.sliding_window` (required), every
/// 6th layer global (llama.cpp's fixed pattern, also transformers' default), local RoPE base
/// 10000 (neither file format nor llama.cpp sets another), attention scale
/// 1/sqrt(key_length) as llama.cpp uses for every Gemma 3 but the 27B.
fn gemma3_params(file: &GgufFile, arch: &str, n_layers: usize, head_dim: usize) -> Result<crate::Gemma3Params> {
    let key = format!("{arch}.attention.sliding_window");
    let window = file.get_usize(&key)?;
    if window == 0 {
        return Err(meta_err(file, &key, "a sliding window must hold at least 1 position"));
    }
    Ok(crate::Gemma3Params {
        query_pre_attn_scalar: head_dim as f64,
        rope_local_theta: 10000.0,
        sliding_window: window,
        sliding_layers: crate::Gemma3Params::pattern_layers(n_layers, 6),
    })
}

/// Serves a GGUF file's tensors under Hugging Face names.
pub struct GgufSource<'a> {
    file: &'a GgufFile,
    /// The family, for its tensor names ([`gguf_name_for`]).
    arch: Arch,
    /// `(n_heads, n_kv_heads)` when Q/K rows must be un-permuted (llama).
    permuted_qk: Option<(usize, usize)>,
}

impl<'a> GgufSource<'a> {
    /// The tensors of `file` for a model with `config`; for Llama, Q and K rows are un-permuted
    /// as they are read.
    pub fn new(file: &'a GgufFile, config: &ModelConfig) -> GgufSource<'a> {
        let permuted_qk = (config.arch == Arch::Llama).then_some((config.n_heads, config.n_kv_heads));
        GgufSource { file, arch: config.arch, permuted_qk }
    }

    fn lookup(&self, hf: &str) -> Result<(String, &'a GgufTensorInfo, &'a [u8])> {
        let name = gguf_name_for(self.arch, hf).ok_or_else(|| ModelError::MissingTensor {
            name: hf.to_string(),
            tried: vec![],
            files: vec![self.file.path().to_path_buf()],
        })?;
        let (info, bytes) = self.file.tensor_data(&name)?;
        Ok((name, info, bytes))
    }

    fn check_shape(&self, name: &str, info: &GgufTensorInfo, shape: &[usize]) -> Result<()> {
        if info.shape() != shape {
            return Err(ModelError::Shape {
                name: name.to_string(),
                path: self.file.path().to_path_buf(),
                expected: shape.to_vec(),
                got: info.shape(),
            });
        }
        Ok(())
    }

    fn dtype(&self, name: &str, info: &GgufTensorInfo) -> Result<DType> {
        info.dtype().ok_or_else(|| ModelError::GgufUnsupportedType {
            name: name.to_string(),
            path: self.file.path().to_path_buf(),
            ggml_type: info.ggml_type.name().to_string(),
        })
    }

    /// Heads whose rows llama.cpp permuted in this tensor, if any.
    fn permuted_heads(&self, hf: &str) -> Option<usize> {
        let (n_heads, n_kv_heads) = self.permuted_qk?;
        if hf.ends_with("self_attn.q_proj.weight") || hf.ends_with("self_attn.q_proj.bias") {
            Some(n_heads)
        } else if hf.ends_with("self_attn.k_proj.weight") || hf.ends_with("self_attn.k_proj.bias") {
            Some(n_kv_heads)
        } else {
            None
        }
    }

    /// Rows `rows` of the tensor in GPU form: un-permuted if needed, repacked if quantized.
    fn gpu_rows(&self, hf: &str, shape: [usize; 2], rows: std::ops::Range<usize>) -> Result<(DType, Vec<u8>)> {
        let (name, info, bytes) = self.lookup(hf)?;
        self.check_shape(&name, info, &shape)?;
        let dtype = self.dtype(&name, info)?;
        let row_bytes = bytes.len() / shape[0];
        let owned;
        let data: &[u8] = match self.permuted_heads(hf) {
            Some(heads) => {
                owned = unpermute_rows(bytes, shape[0], row_bytes, heads);
                &owned
            }
            None => bytes,
        };
        let piece = &data[rows.start * row_bytes..rows.end * row_bytes];
        let gpu = if dtype.is_quantized() {
            quant::repack(dtype, piece).map_err(|e| self.tensor_err(&name, e))?
        } else {
            piece.to_vec()
        };
        Ok((dtype, gpu))
    }

    fn tensor_err(&self, name: &str, source: kiln_tensor::TensorError) -> ModelError {
        ModelError::Tensor { name: name.to_string(), path: self.file.path().to_path_buf(), source: Box::new(source) }
    }

    fn upload(&self, dev: &Device, hf: &str, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::from_bytes(dev, bytes, shape, dtype)
            .map_err(|e| self.tensor_err(&gguf_name_for(self.arch, hf).unwrap_or_else(|| hf.to_string()), e))
    }
}

/// Undo llama.cpp's Q/K permutation: within each head, GGUF row `2i + t` holds Hugging
/// Face row `t * head_dim/2 + i` (transformers' `reverse_permute_weights`).
fn unpermute_rows(bytes: &[u8], rows: usize, row_bytes: usize, heads: usize) -> Vec<u8> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0u8; bytes.len()];
    for h in 0..heads {
        for i in 0..half {
            for t in 0..2 {
                let src = h * head_dim + 2 * i + t;
                let dst = h * head_dim + t * half + i;
                out[dst * row_bytes..(dst + 1) * row_bytes].copy_from_slice(&bytes[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    out
}

impl WeightSource for GgufSource<'_> {
    fn matrix(&self, dev: &Device, name: &str, shape: [usize; 2]) -> Result<Tensor> {
        let (dtype, bytes) = self.gpu_rows(name, shape, 0..shape[0])?;
        self.upload(dev, name, &bytes, &shape, dtype)
    }

    fn matrix_blocks(&self, dev: &Device, name: &str, shape: [usize; 2]) -> Result<Vec<(usize, Tensor)>> {
        let (gname, info, _) = self.lookup(name)?;
        self.check_shape(&gname, info, &shape)?;
        let dtype = self.dtype(&gname, info)?;
        let row_bytes = dtype.storage_bytes(shape[1]).max(1);
        let per_block = (dev.max_binding_bytes() / row_bytes) as usize;
        if per_block == 0 {
            return Err(self.tensor_err(
                &gname,
                kiln_tensor::TensorError::TooLarge {
                    what: format!("one row of {gname}"),
                    bytes: row_bytes,
                    limit: dev.max_binding_bytes(),
                    limit_name: "max_storage_buffer_binding_size",
                },
            ));
        }
        let mut blocks = Vec::new();
        let mut start = 0;
        while start < shape[0] {
            let end = (start + per_block).min(shape[0]);
            let (dtype, bytes) = self.gpu_rows(name, shape, start..end)?;
            blocks.push((start, self.upload(dev, name, &bytes, &[end - start, shape[1]], dtype)?));
            start = end;
        }
        Ok(blocks)
    }

    fn vector_f32(&self, dev: &Device, name: &str, len: usize) -> Result<Tensor> {
        let (gname, info, bytes) = self.lookup(name)?;
        self.check_shape(&gname, info, &[len])?;
        let values: Vec<f32> = match self.dtype(&gname, info)? {
            DType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            q => quant::dequantize(q, bytes).map_err(|e| self.tensor_err(&gname, e))?,
        };
        let values = match self.permuted_heads(name) {
            Some(heads) => bytemuck_f32(&unpermute_rows(&f32_bytes(&values), len, 4, heads)),
            None => values,
        };
        Tensor::from_slice(dev, &values, &[len]).map_err(|e| self.tensor_err(&gname, e))
    }

    fn contains(&self, name: &str) -> bool {
        gguf_name_for(self.arch, name).is_some_and(|g| self.file.tensor(&g).is_some())
    }

    fn conv1d(&self, dev: &Device, name: &str, [n_in, n_out]: [usize; 2]) -> Result<Tensor> {
        // GGUF stores every matrix as [out, in] (ggml's ne = [in, out]) already.
        self.matrix(dev, name, [n_out, n_in])
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytemuck_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// True if `path` looks like a GGUF file (by its magic), so `-m` can take either a
/// Hugging Face directory or a .gguf file.
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    path.is_file() && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"GGUF"
}
