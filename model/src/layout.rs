//! The tensors each family's checkpoint must hold, with the shapes its config implies.
//! Checked when a model directory is opened, so a wrong checkpoint fails before any
//! upload, with every message naming the tensor and its file.

use crate::config::{Arch, ModelConfig};

/// One tensor a model needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightSpec {
    /// Hugging Face module path (lookups also accept it without / with a
    /// `transformer.` or `model.` prefix).
    pub name: String,
    /// Shape as stored in the checkpoint.
    pub shape: Vec<usize>,
    /// GPT-2 Conv1D weight stored `[in, out]`: upload with
    /// [`WeightStore::load_transposed`](crate::WeightStore::load_transposed).
    pub conv1d: bool,
    /// Only `lm_head.weight`: absent means tied to the token embedding.
    pub optional: bool,
}

fn spec(name: String, shape: &[usize]) -> WeightSpec {
    WeightSpec { name, shape: shape.to_vec(), conv1d: false, optional: false }
}

fn conv1d(name: String, shape: &[usize]) -> WeightSpec {
    WeightSpec { name, shape: shape.to_vec(), conv1d: true, optional: false }
}

/// Name of the LM head weight for every family.
pub const LM_HEAD: &str = "lm_head.weight";

/// Name of the token embedding for `arch` (also the LM head when tied).
pub fn embedding_name(arch: Arch) -> &'static str {
    match arch {
        Arch::Gpt2 => "transformer.wte.weight",
        Arch::Qwen2 | Arch::Llama | Arch::Qwen3 | Arch::Gemma3 => "model.embed_tokens.weight",
    }
}

/// Every tensor of the model, in load order.
pub fn expected_weights(cfg: &ModelConfig) -> Vec<WeightSpec> {
    let h = cfg.hidden_size;
    let v = cfg.vocab_size;
    let inter = cfg.intermediate_size;
    let mut out = Vec::new();
    match cfg.arch {
        Arch::Gpt2 => {
            out.push(spec("transformer.wte.weight".into(), &[v, h]));
            out.push(spec("transformer.wpe.weight".into(), &[cfg.max_position_embeddings, h]));
            for i in 0..cfg.n_layers {
                let p = format!("transformer.h.{i}");
                out.push(spec(format!("{p}.ln_1.weight"), &[h]));
                out.push(spec(format!("{p}.ln_1.bias"), &[h]));
                out.push(conv1d(format!("{p}.attn.c_attn.weight"), &[h, 3 * h]));
                out.push(spec(format!("{p}.attn.c_attn.bias"), &[3 * h]));
                out.push(conv1d(format!("{p}.attn.c_proj.weight"), &[h, h]));
                out.push(spec(format!("{p}.attn.c_proj.bias"), &[h]));
                out.push(spec(format!("{p}.ln_2.weight"), &[h]));
                out.push(spec(format!("{p}.ln_2.bias"), &[h]));
                out.push(conv1d(format!("{p}.mlp.c_fc.weight"), &[h, inter]));
                out.push(spec(format!("{p}.mlp.c_fc.bias"), &[inter]));
                out.push(conv1d(format!("{p}.mlp.c_proj.weight"), &[inter, h]));
                out.push(spec(format!("{p}.mlp.c_proj.bias"), &[h]));
            }
            out.push(spec("transformer.ln_f.weight".into(), &[h]));
            out.push(spec("transformer.ln_f.bias".into(), &[h]));
        }
        Arch::Qwen2 | Arch::Llama | Arch::Qwen3 => {
            let q = cfg.q_dim();
            let kv = cfg.kv_dim();
            out.push(spec("model.embed_tokens.weight".into(), &[v, h]));
            for i in 0..cfg.n_layers {
                let p = format!("model.layers.{i}");
                out.push(spec(format!("{p}.input_layernorm.weight"), &[h]));
                for (proj, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                    out.push(spec(format!("{p}.self_attn.{proj}.weight"), &[rows, h]));
                    if cfg.qkv_bias {
                        out.push(spec(format!("{p}.self_attn.{proj}.bias"), &[rows]));
                    }
                }
                if cfg.arch.has_qk_norm() {
                    out.push(spec(format!("{p}.self_attn.q_norm.weight"), &[cfg.head_dim]));
                    out.push(spec(format!("{p}.self_attn.k_norm.weight"), &[cfg.head_dim]));
                }
                out.push(spec(format!("{p}.self_attn.o_proj.weight"), &[h, q]));
                if cfg.o_bias {
                    out.push(spec(format!("{p}.self_attn.o_proj.bias"), &[h]));
                }
                out.push(spec(format!("{p}.post_attention_layernorm.weight"), &[h]));
                for (proj, shape) in [("gate_proj", [inter, h]), ("up_proj", [inter, h]), ("down_proj", [h, inter])] {
                    out.push(spec(format!("{p}.mlp.{proj}.weight"), &shape));
                    if cfg.mlp_bias {
                        out.push(spec(format!("{p}.mlp.{proj}.bias"), &[shape[0]]));
                    }
                }
            }
            out.push(spec("model.norm.weight".into(), &[h]));
        }
        Arch::Gemma3 => {
            let (q, kv, hd) = (cfg.q_dim(), cfg.kv_dim(), cfg.head_dim);
            out.push(spec("model.embed_tokens.weight".into(), &[v, h]));
            for i in 0..cfg.n_layers {
                let p = format!("model.layers.{i}");
                out.push(spec(format!("{p}.input_layernorm.weight"), &[h]));
                for (proj, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                    out.push(spec(format!("{p}.self_attn.{proj}.weight"), &[rows, h]));
                }
                out.push(spec(format!("{p}.self_attn.q_norm.weight"), &[hd]));
                out.push(spec(format!("{p}.self_attn.k_norm.weight"), &[hd]));
                out.push(spec(format!("{p}.self_attn.o_proj.weight"), &[h, q]));
                out.push(spec(format!("{p}.post_attention_layernorm.weight"), &[h]));
                out.push(spec(format!("{p}.pre_feedforward_layernorm.weight"), &[h]));
                for (proj, shape) in [("gate_proj", [inter, h]), ("up_proj", [inter, h]), ("down_proj", [h, inter])] {
                    out.push(spec(format!("{p}.mlp.{proj}.weight"), &shape));
                }
                out.push(spec(format!("{p}.post_feedforward_layernorm.weight"), &[h]));
            }
            out.push(spec("model.norm.weight".into(), &[h]));
        }
    }
    out.push(WeightSpec { name: LM_HEAD.into(), shape: vec![v, h], conv1d: false, optional: true });
    out
}
