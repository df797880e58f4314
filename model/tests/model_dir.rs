//! Whole model directories: open, validate against the config, tied/untied LM head,
//! upload, and the directory-level errors.

mod common;

use common::*;
use kiln_kernels::testing::test_device;
use kiln_model::{embedding_name, expected_weights, Arch, ModelDir, ModelError, LM_HEAD};
use kiln_tensor::DType;
use safetensors::Dtype;
use serde_json::json;

fn open_err(dir: &std::path::Path) -> String {
    match ModelDir::open(dir) {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn gpt2_without_prefix_and_lm_head_is_tied() {
    let dev = test_device();
    let dir = tempdir();
    let cfg = gpt2_config();
    // Like openai-community/gpt2: names without `transformer.`, no lm_head.weight.
    let specs = model_specs(&cfg, Dtype::F16, false, Some("transformer."));
    assert!(specs.iter().any(|s| s.name == "h.1.mlp.c_proj.weight"));
    write_model_dir(dir.path(), &cfg, &specs, 1);
    std::fs::write(dir.path().join("vocab.json"), "{}").unwrap(); // extra files are ignored
    std::fs::write(dir.path().join("merges.txt"), "").unwrap();
    let m = ModelDir::open(dir.path()).unwrap();
    assert_eq!(m.config.arch, Arch::Gpt2);
    assert!(m.lm_head_tied());
    assert_eq!(m.eos_token_ids(), vec![256]);
    let tok = m.tokenizer().unwrap();
    assert_eq!(tok.eos_ids(), &[256], "config's eos id wins over the tokenizer's guess");
    assert_eq!(tok.encode("hello").unwrap(), vec![merged_id("hello")]);

    // Conv1D weights come out [out, in] in f16.
    let h = m.config.hidden_size;
    let spec =
        expected_weights(&m.config).into_iter().find(|w| w.name == "transformer.h.0.attn.c_attn.weight").unwrap();
    assert!(spec.conv1d);
    let t = m.weights.load_transposed(&dev, &spec.name, [h, 3 * h]).unwrap();
    assert_eq!((t.shape(), t.dtype()), (&[3 * h, h][..], DType::F16));
    let stored = m.weights.get_f32(&spec.name, &[h, 3 * h]).unwrap();
    let got = t.to_vec_f32().unwrap();
    for r in 0..h {
        for c in 0..3 * h {
            assert_eq!(got[c * h + r], stored[r * 3 * h + c]);
        }
    }
    // The tied head is the embedding.
    let emb = m.weights.load(&dev, embedding_name(Arch::Gpt2), &[300, h]).unwrap();
    assert_eq!(emb.dtype(), DType::F16);
}

#[test]
fn gpt2_untied_when_config_says_so_and_lm_head_exists() {
    let dir = tempdir();
    let cfg = with_fields(gpt2_config(), json!({"tie_word_embeddings": false}));
    write_model_dir(dir.path(), &cfg, &model_specs(&cfg, Dtype::F32, true, None), 1);
    let m = ModelDir::open(dir.path()).unwrap();
    assert!(!m.lm_head_tied());
    // No lm_head.weight means tied whatever the config says.
    let dir = tempdir();
    write_model_dir(dir.path(), &cfg, &model_specs(&cfg, Dtype::F32, false, None), 1);
    assert!(ModelDir::open(dir.path()).unwrap().lm_head_tied());
}

#[test]
fn qwen2_tied_and_untied_with_upload() {
    let dev = test_device();
    // Tied (config true, no lm_head), bf16.
    let dir = tempdir();
    let cfg = qwen2_config();
    write_model_dir(dir.path(), &cfg, &model_specs(&cfg, Dtype::BF16, false, None), 1);
    let m = ModelDir::open(dir.path()).unwrap();
    assert_eq!(m.config.arch, Arch::Qwen2);
    assert!(m.lm_head_tied());
    let q = m.weights.load(&dev, "model.layers.1.self_attn.q_proj.weight", &[m.config.q_dim(), 8]).unwrap();
    assert_eq!(q.dtype(), DType::BF16);
    let kb = m.weights.load_f32(&dev, "model.layers.1.self_attn.k_proj.bias", &[m.config.kv_dim()]).unwrap();
    assert_eq!(kb.dtype(), DType::F32);
    assert_eq!(kb.to_vec_f32().unwrap(), m.weights.get_f32("model.layers.1.self_attn.k_proj.bias", &[4]).unwrap());

    // Untied, sharded, f16.
    let dir = tempdir();
    let cfg = with_fields(qwen2_config(), json!({"tie_word_embeddings": false}));
    write_model_dir(dir.path(), &cfg, &model_specs(&cfg, Dtype::F16, true, None), 3);
    let m = ModelDir::open(dir.path()).unwrap();
    assert!(!m.lm_head_tied());
    assert_eq!(m.weights.files().len(), 3);
    let head = m.weights.load(&dev, LM_HEAD, &[300, 8]).unwrap();
    assert_eq!((head.shape(), head.dtype()), (&[300, 8][..], DType::F16));
}

#[test]
fn llama_needs_no_bias_tensors() {
    let dir = tempdir();
    let cfg = with_fields(qwen2_config(), json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}));
    let specs = model_specs(&cfg, Dtype::F32, false, None);
    assert!(!specs.iter().any(|s| s.name.ends_with(".bias")));
    write_model_dir(dir.path(), &cfg, &specs, 1);
    let m = ModelDir::open(dir.path()).unwrap();
    assert_eq!(m.config.arch, Arch::Llama);
    // The same checkpoint read as Qwen2 lacks the q/k/v biases.
    write_json(dir.path(), "config.json", &qwen2_config());
    let msg = open_err(dir.path());
    assert_mentions(&msg, &["model.layers.0.self_attn.q_proj.bias", "not found", "model.safetensors"]);
}

#[test]
fn wrong_shape_against_config_names_tensor_and_file() {
    let dir = tempdir();
    let cfg = qwen2_config();
    let mut specs = model_specs(&cfg, Dtype::F32, false, None);
    // k_proj written as if there were 4 kv heads instead of 2.
    let k = specs.iter_mut().find(|s| s.name == "model.layers.1.self_attn.k_proj.weight").unwrap();
    *k = spec("model.layers.1.self_attn.k_proj.weight", Dtype::F32, &[8, 8], 0);
    write_model_dir(dir.path(), &cfg, &specs, 1);
    let err = ModelDir::open(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Shape { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["model.layers.1.self_attn.k_proj.weight", "model.safetensors", "[8, 8]", "expected [4, 8]"],
    );
}

#[test]
fn weight_with_integer_dtype_is_rejected_at_open() {
    let dir = tempdir();
    let cfg = qwen2_config();
    let mut specs = model_specs(&cfg, Dtype::F32, false, None);
    let n = specs.iter_mut().find(|s| s.name == "model.norm.weight").unwrap();
    *n = spec("model.norm.weight", Dtype::I64, &[8], 0);
    write_model_dir(dir.path(), &cfg, &specs, 1);
    assert_mentions(&open_err(dir.path()), &["model.norm.weight", "model.safetensors", "I64"]);
}

#[test]
fn directory_errors() {
    // Missing directory, a file instead of a directory, missing config.json.
    let dir = tempdir();
    let gone = dir.path().join("nope");
    assert_mentions(&open_err(&gone), &["model directory", "nope", "does not exist"]);
    let file = dir.path().join("model.gguf");
    std::fs::write(&file, b"GGUF").unwrap();
    assert_mentions(&open_err(&file), &["model.gguf", "not a directory"]);
    assert_mentions(&open_err(dir.path()), &["config.json", "does not exist"]);

    // Unknown architecture is reported before the weights are looked at.
    write_json(dir.path(), "config.json", &with_fields(qwen2_config(), json!({"architectures": ["PhiForCausalLM"]})));
    assert_mentions(&open_err(dir.path()), &["config.json", "PhiForCausalLM"]);

    // A good config but no weights.
    write_json(dir.path(), "config.json", &qwen2_config());
    assert_mentions(&open_err(dir.path()), &["no weights", "model.safetensors"]);

    // Missing shard of a full model.
    let cfg = qwen2_config();
    let shards = write_sharded(dir.path(), &model_specs(&cfg, Dtype::F32, false, None), 2);
    std::fs::remove_file(dir.path().join(&shards[0])).unwrap();
    assert_mentions(&open_err(dir.path()), &["model.safetensors.index.json", &shards[0], "does not exist"]);
}

#[test]
fn tokenizer_is_optional_until_asked_for() {
    let dir = tempdir();
    let cfg = qwen2_config();
    write_json(dir.path(), "config.json", &cfg);
    write_safetensors(&dir.path().join("model.safetensors"), &model_specs(&cfg, Dtype::F32, false, None));
    let m = ModelDir::open(dir.path()).unwrap();
    assert!(m.tokenizer.is_none());
    assert_mentions(&m.tokenizer().unwrap_err().to_string(), &["tokenizer.json", "does not exist"]);
    assert_eq!(m.eos_token_ids(), vec![256]);

    // A broken tokenizer.json fails the open, naming the file.
    std::fs::write(dir.path().join("tokenizer.json"), "{").unwrap();
    assert_mentions(&open_err(dir.path()), &["tokenizer.json"]);
}

fn with_fields(mut base: serde_json::Value, changes: serde_json::Value) -> serde_json::Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}
