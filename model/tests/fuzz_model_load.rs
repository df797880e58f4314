//! The fuzz harness of fuzz_loaders.rs driven through `Model::load` / `Model::load_gguf`
//! and one forward step, on every family: tiny GPT-2, Qwen2, Llama and Qwen3 as Hugging
//! Face directories (config.json + safetensors) and as GGUF files (built here with
//! llama.cpp's names and keys; the Llama one with a Q8_0 tensor, so block repacking and
//! llama's Q/K un-permutation are reached). Each mutated input must load and run two
//! tokens, or fail with an error naming the file — never panic, hang, or make one
//! allocation larger than the input plus [`MODEL_SLACK`]. A header field that would size
//! a table (the context length sizing the RoPE table, say) is caught by that bound.
//!
//! Same knobs as fuzz_loaders.rs (`KILN_FUZZ_CASES`, `KILN_FUZZ_SECS`, `KILN_FUZZ_SEED`,
//! `KILN_FUZZ_CASE_SEED`). Errors of the forward step (after a successful load) are
//! reported prefixed with the target's path, as a caller would.

mod common;
#[path = "common/fuzz_harness.rs"]
mod fuzz_harness;
#[path = "common/gguf_writer.rs"]
mod gguf_writer;

use std::path::Path;
use std::sync::OnceLock;

use common::*;
use fuzz_harness::*;
use gguf_writer::{tensor, ty, GgufBuilder};
use kiln_model::gguf::{GgufFile, GgufValue};
use kiln_model::{Model, ModelDir};
use kiln_tensor::{Device, Recorder, Tensor};
use safetensors::Dtype;
use serde_json::json;

/// On top of the input size, for the largest single allocation while loading and running:
/// room for the Vulkan driver's own host allocations on the opening thread (compiling a
/// pipeline for a new shape), which do not grow with the input. Seen on lavapipe: 41 KB.
/// With the RoPE table sized by `context_length` (the old loader) a mutated header asked
/// for 203 GB here.
const MODEL_SLACK: usize = 8 << 20;

/// One device for every case (creating one per case would dominate the time).
fn dev() -> &'static Device {
    static DEV: OnceLock<Device> = OnceLock::new();
    DEV.get_or_init(kiln_kernels::testing::test_device)
}

/// Two tokens (id 0, in every vocabulary) through the model, read back.
fn two_tokens(target: &Path, model: &Model) -> Result<(), String> {
    let named = |e: &dyn std::fmt::Display| format!("{}: {e}", target.display());
    let dev = dev();
    let mut cache = model.new_cache(dev, 2).map_err(|e| named(&e))?;
    let ids = Tensor::from_slice(dev, &[0u32, 0], &[2]).map_err(|e| named(&e))?;
    let mut rec = Recorder::new(dev);
    let logits = model.forward(&mut rec, &ids, &mut cache, false).map_err(|e| named(&e))?;
    rec.submit().map_err(|e| named(&e))?;
    logits.to_vec_f32().map_err(|e| named(&e))?;
    Ok(())
}

fn load_dir(target: &Path) -> Result<(), String> {
    let dir = ModelDir::open(target).map_err(|e| e.to_string())?;
    let model = Model::load(dev(), &dir).map_err(|e| e.to_string())?;
    two_tokens(target, &model)
}

fn load_gguf(target: &Path) -> Result<(), String> {
    let file = GgufFile::open(target).map_err(|e| e.to_string())?;
    let model = Model::load_gguf(dev(), &file).map_err(|e| e.to_string())?;
    two_tokens(target, &model)
}

/// A Hugging Face directory of `cfg` (f32 weights, tied head).
fn dir_base(cfg: serde_json::Value, dtype: Dtype) -> Base {
    let dir = tempdir();
    let specs = model_specs(&cfg, dtype, false, None);
    write_safetensors(&dir.path().join("model.safetensors"), &specs);
    let weights = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    Base {
        files: vec![("config.json".into(), serde_json::to_vec_pretty(&cfg).unwrap()), ("model.safetensors".into(), weights)],
        fields: vec![],
    }
}

fn dir_bases() -> Vec<Base> {
    let mut llama = qwen2_config();
    llama["architectures"] = json!(["LlamaForCausalLM"]);
    llama["model_type"] = json!("llama");
    let mut qwen3 = qwen2_config();
    qwen3["architectures"] = json!(["Qwen3ForCausalLM"]);
    qwen3["model_type"] = json!("qwen3");
    qwen3["head_dim"] = json!(4); // apart from hidden / heads = 2
    let gemma3 = json!({
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "vocab_size": 300,
        "hidden_size": 8,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "num_hidden_layers": 2,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 2,
        "intermediate_size": 12,
        "max_position_embeddings": 64,
        "query_pre_attn_scalar": 8,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "full_attention": {"rope_theta": 1000000.0, "rope_type": "default"},
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}
        },
        "hidden_activation": "gelu_pytorch_tanh",
        "tie_word_embeddings": true,
        "bos_token_id": 256,
        "eos_token_id": 256
    });
    vec![
        dir_base(gpt2_config(), Dtype::F32),
        dir_base(qwen2_config(), Dtype::BF16),
        dir_base(llama, Dtype::F16),
        dir_base(qwen3, Dtype::F32),
        dir_base(gemma3, Dtype::F32),
    ]
}

const H: u64 = 32; // hidden size of the GGUF bases
const VOCAB: u64 = 48;
const FFN: u64 = 64;

/// F32 bytes of `n` seeded values.
fn f32s(n: u64, seed: usize) -> Vec<u8> {
    gguf_writer::f32_bytes(&values(n as usize, seed))
}

/// A one-layer GGUF of llama.cpp's `arch` (gemma3, qwen3, llama or gpt2).
fn gguf_base(arch: &str) -> Base {
    let key = |k: &str| format!("{arch}.{k}");
    let (heads, kv_heads, head_dim) = (2u64, 1u64, 16u64);
    let mut b = GgufBuilder::new(3)
        .kv("general.architecture", GgufValue::String(arch.into()))
        .kv(&key("context_length"), GgufValue::U32(64))
        .kv(&key("embedding_length"), GgufValue::U32(H as u32))
        .kv(&key("block_count"), GgufValue::U32(1))
        .kv(&key("feed_forward_length"), GgufValue::U32(FFN as u32))
        .kv(&key("attention.head_count"), GgufValue::U32(heads as u32))
        .tensor(tensor("token_embd.weight", &[H, VOCAB], ty::F32, f32s(H * VOCAB, 1)));
    if arch == "gpt2" {
        b = b
            .kv(&key("attention.layer_norm_epsilon"), GgufValue::F32(1e-5))
            .tensor(tensor("position_embd.weight", &[H, 64], ty::F32, f32s(H * 64, 2)));
        for (name, n_in, n_out) in [("attn_qkv", H, 3 * H), ("attn_output", H, H), ("ffn_up", H, FFN), ("ffn_down", FFN, H)] {
            b = b
                .tensor(tensor(&format!("blk.0.{name}.weight"), &[n_in, n_out], ty::F32, f32s(n_in * n_out, 3)))
                .tensor(tensor(&format!("blk.0.{name}.bias"), &[n_out], ty::F32, f32s(n_out, 4)));
        }
        for name in ["blk.0.attn_norm", "blk.0.ffn_norm", "output_norm"] {
            b = b
                .tensor(tensor(&format!("{name}.weight"), &[H], ty::F32, f32s(H, 5)))
                .tensor(tensor(&format!("{name}.bias"), &[H], ty::F32, f32s(H, 6)));
        }
    } else {
        let (q, kv) = (heads * head_dim, kv_heads * head_dim);
        b = b
            .kv(&key("attention.head_count_kv"), GgufValue::U32(kv_heads as u32))
            .kv(&key("attention.key_length"), GgufValue::U32(head_dim as u32))
            .kv(&key("rope.freq_base"), GgufValue::F32(10000.0))
            .kv(&key("attention.layer_norm_rms_epsilon"), GgufValue::F32(1e-6));
        for (name, n_in, n_out) in [("attn_q", H, q), ("attn_k", H, kv), ("attn_v", H, kv), ("attn_output", q, H), ("ffn_gate", H, FFN), ("ffn_up", H, FFN)] {
            b = b.tensor(tensor(&format!("blk.0.{name}.weight"), &[n_in, n_out], ty::F32, f32s(n_in * n_out, 7)));
        }
        // ffn_down [FFN → H]: Q8_0 for llama (2 blocks of 34 bytes per row), F32 otherwise.
        b = if arch == "llama" {
            b.tensor(tensor("blk.0.ffn_down.weight", &[FFN, H], ty::Q8_0, gguf_writer::pattern((H * FFN / 32 * 34) as usize, 8)))
        } else {
            b.tensor(tensor("blk.0.ffn_down.weight", &[FFN, H], ty::F32, f32s(FFN * H, 8)))
        };
        for name in ["blk.0.attn_norm", "blk.0.ffn_norm", "output_norm"] {
            b = b.tensor(tensor(&format!("{name}.weight"), &[H], ty::F32, f32s(H, 9)));
        }
        if arch == "qwen3" || arch == "gemma3" {
            for name in ["attn_q_norm", "attn_k_norm"] {
                b = b.tensor(tensor(&format!("blk.0.{name}.weight"), &[head_dim], ty::F32, f32s(head_dim, 10)));
            }
        }
        if arch == "gemma3" {
            b = b.kv(&key("attention.sliding_window"), GgufValue::U32(4));
            for name in ["post_attention_norm", "post_ffw_norm"] {
                b = b.tensor(tensor(&format!("blk.0.{name}.weight"), &[H], ty::F32, f32s(H, 11)));
            }
        }
    }
    let w = b.build();
    Base { files: vec![("model.gguf".into(), w.bytes)], fields: vec![w.fields] }
}

#[test]
fn fuzz_model_load_from_directories() {
    fuzz("model_load_dir", load_dir, "", dir_bases(), MODEL_SLACK);
}

#[test]
fn fuzz_model_load_from_gguf() {
    let bases = ["gemma3", "qwen3", "llama", "gpt2"].into_iter().map(gguf_base).collect();
    fuzz("model_load_gguf", load_gguf, "model.gguf", bases, MODEL_SLACK);
}
