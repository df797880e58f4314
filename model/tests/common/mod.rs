//! Fixture builders: tiny Hugging Face model directories written by the tests
//! themselves (config.json, safetensors through the `safetensors` crate's serializer,
//! a small byte-level BPE tokenizer.json).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kiln_model::{expected_weights, ModelConfig};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("kiln-model-test").tempdir().expect("temp dir")
}

pub fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    path
}

/// Deterministic values exactly representable in f32, f16 and bf16.
pub fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 7 + seed * 13) % 33) as f32 - 16.0) * 0.125).collect()
}

/// A tensor to write: name, dtype, shape, f32 values (encoded to the dtype).
pub struct Spec {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

pub fn encode(vals: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F16 => vals.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        Dtype::BF16 => vals.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
        Dtype::I64 => vals.iter().flat_map(|v| (*v as i64).to_le_bytes()).collect(),
        other => panic!("fixture cannot encode {other:?}"),
    }
}

pub fn spec(name: &str, dtype: Dtype, shape: &[usize], seed: usize) -> Spec {
    let n: usize = shape.iter().product();
    Spec { name: name.to_string(), dtype, shape: shape.to_vec(), bytes: encode(&values(n, seed), dtype) }
}

pub fn write_safetensors(path: &Path, specs: &[Spec]) {
    let views: Vec<(String, TensorView<'_>)> = specs
        .iter()
        .map(|s| (s.name.clone(), TensorView::new(s.dtype, s.shape.clone(), &s.bytes).expect("valid view")))
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("serialize safetensors");
}

/// Write `specs` split over `n_shards` shard files plus model.safetensors.index.json.
pub fn write_sharded(dir: &Path, specs: &[Spec], n_shards: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut weight_map = serde_json::Map::new();
    let per = specs.len().div_ceil(n_shards);
    for (i, chunk) in specs.chunks(per).enumerate() {
        let shard = format!("model-{:05}-of-{:05}.safetensors", i + 1, n_shards);
        let owned: Vec<Spec> = chunk
            .iter()
            .map(|s| Spec { name: s.name.clone(), dtype: s.dtype, shape: s.shape.clone(), bytes: s.bytes.clone() })
            .collect();
        write_safetensors(&dir.join(&shard), &owned);
        for s in chunk {
            weight_map.insert(s.name.clone(), Value::String(shard.clone()));
        }
        names.push(shard);
    }
    let total: usize = specs.iter().map(|s| s.bytes.len()).sum();
    write_json(
        dir,
        "model.safetensors.index.json",
        &json!({"metadata": {"total_size": total}, "weight_map": weight_map}),
    );
    names
}

pub fn gpt2_config() -> Value {
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": 300,
        "n_embd": 8,
        "n_head": 2,
        "n_layer": 2,
        "n_positions": 16,
        "n_inner": null,
        "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new",
        "bos_token_id": 256,
        "eos_token_id": 256,
        "torch_dtype": "float32"
    })
}

pub fn qwen2_config() -> Value {
    json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": 300,
        "hidden_size": 8,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "intermediate_size": 12,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": true,
        "hidden_act": "silu",
        "bos_token_id": 256,
        "eos_token_id": 256,
        "torch_dtype": "bfloat16"
    })
}

/// Every tensor `config` needs (from the layout), with `prefix_strip` removed from names
/// (GPT-2 checkpoints saved by older code carry no `transformer.` prefix).
pub fn model_specs(dir_cfg: &Value, dtype: Dtype, with_lm_head: bool, prefix_strip: Option<&str>) -> Vec<Spec> {
    let obj = dir_cfg.as_object().unwrap().clone();
    let cfg = ModelConfig::from_json(Path::new("config.json"), &obj, None).expect("fixture config parses");
    let mut out = Vec::new();
    for (i, w) in expected_weights(&cfg).into_iter().enumerate() {
        if w.optional && !with_lm_head {
            continue;
        }
        let name = match prefix_strip {
            Some(p) => w.name.strip_prefix(p).unwrap_or(&w.name).to_string(),
            None => w.name.clone(),
        };
        out.push(spec(&name, dtype, &w.shape, i));
    }
    out
}

/// A complete model directory: config.json, weights, tokenizer.json, generation_config.json.
pub fn write_model_dir(dir: &Path, cfg: &Value, specs: &[Spec], shards: usize) {
    write_json(dir, "config.json", cfg);
    if shards <= 1 {
        write_safetensors(&dir.join("model.safetensors"), specs);
    } else {
        write_sharded(dir, specs, shards);
    }
    write_json(dir, "tokenizer.json", &tokenizer_json(None));
}

pub use kiln_model::tokenizer::bytes_to_unicode;

/// Ids of the merged tokens of [`tokenizer_json`] (bytes are ids 0..=255 in GPT-2's table order).
pub const MERGED: [&str; 9] = ["he", "ll", "hell", "hello", "Ġw", "or", "Ġwor", "ld", "Ġworld"];
pub const ENDOFTEXT: u32 = 256 + MERGED.len() as u32;
pub const BOS: u32 = ENDOFTEXT + 1;

pub fn merged_id(tok: &str) -> u32 {
    256 + MERGED.iter().position(|m| *m == tok).unwrap() as u32
}

/// A byte-level BPE tokenizer.json like GPT-2's, with a few merges, `<|endoftext|>` and
/// `<s>` as special tokens; `post_processor` replaces the default ByteLevel one (e.g. a
/// TemplateProcessing that adds `<s>`).
pub fn tokenizer_json(post_processor: Option<Value>) -> Value {
    let mut vocab = serde_json::Map::new();
    let mut by_byte: HashMap<u8, char> = HashMap::new();
    for (i, (b, c)) in bytes_to_unicode().into_iter().enumerate() {
        vocab.insert(c.to_string(), json!(i));
        by_byte.insert(b, c);
    }
    for (i, m) in MERGED.iter().enumerate() {
        vocab.insert(m.to_string(), json!(256 + i));
    }
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"];
    let added = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
               "normalized": false, "special": true})
    };
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(ENDOFTEXT, "<|endoftext|>"), added(BOS, "<s>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": post_processor.unwrap_or(
            json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})),
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    })
}

/// A post-processor that puts `<s>` in front, as Llama 3's does with `<|begin_of_text|>`.
pub fn bos_template() -> Value {
    json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [BOS], "tokens": ["<s>"]}}
    })
}

/// Assert `text` contains every needle, with a readable failure.
pub fn assert_mentions(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "error message should mention {n:?}:\n{text}");
    }
}
