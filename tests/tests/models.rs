//! GPT-2, Qwen2, Llama, Qwen3 and Gemma 3 vs Hugging Face transformers, on the tiny seeded checkpoints
//! in tests/fixtures/models (made by tests/fixtures/make_goldens.py):
//! - prompt ids equal transformers' tokenizer,
//! - logits at every prompt position within `tolerance::MODEL_LOGITS_*` with an f32 KV
//!   cache, and within `tolerance::MODEL_LOGITS_F16_KV` with the default f16 cache,
//! - 12 greedy ids (KV-cache decode) exactly equal transformers' `generate` (both caches),
//! - prefill + decode equals a full recompute.

use std::path::PathBuf;

use kiln_kernels::testing::test_device;
use kiln_kernels::tolerance;
use kiln_sampler::generate::{generate, Flow, GenerateOptions};
use kiln_model::{KvDtype, Model, ModelDir};
use kiln_tensor::{Device, Recorder, Tensor};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn golden(name: &str) -> Value {
    let path = fixtures().join("goldens").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A case's float32 reference logits `[seq, vocab]` from its safetensors sidecar.
fn reference_logits(case: &Value) -> Vec<f32> {
    let path = fixtures().join("goldens").join(case["logits_file"].as_str().unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = file.tensor(case["logits_tensor"].as_str().unwrap()).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    let shape: Vec<usize> = case["logits_shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    assert_eq!(t.shape(), shape.as_slice());
    t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// Logits `[seq, vocab]` for all positions of `prompt`, in one prefill.
fn all_logits(dev: &Device, model: &Model, prompt: &[u32]) -> Vec<f32> {
    let mut cache = model.new_cache(dev, prompt.len()).unwrap();
    let input = Tensor::from_slice(dev, prompt, &[prompt.len()]).unwrap();
    let mut rec = Recorder::new(dev);
    let logits = model.forward(&mut rec, &input, &mut cache, true).unwrap();
    rec.submit().unwrap();
    assert_eq!(logits.shape(), &[prompt.len(), model.config().vocab_size]);
    logits.to_vec_f32().unwrap()
}

fn check_model(name: &str) {
    for kv in [KvDtype::F32, KvDtype::F16] {
        check_model_with(name, kv);
    }
}

fn check_model_with(name: &str, kv: KvDtype) {
    let dev = test_device();
    let g = golden(name);
    let dir = ModelDir::open(fixtures().join("models").join(name)).unwrap();
    let tol = if kv == KvDtype::F16 {
        tolerance::MODEL_LOGITS_F16_KV
    } else if dir.config.dtype == Some(kiln_tensor::DType::F32) {
        tolerance::MODEL_LOGITS_F32
    } else {
        tolerance::MODEL_LOGITS_HALF
    };
    let mut model = Model::load(&dev, &dir).unwrap();
    model.set_kv_dtype(kv);
    let tokenizer = dir.tokenizer().unwrap();
    for case in g["cases"].as_array().unwrap() {
        let case_name = format!("{name}/{}, {kv} KV cache", case["name"].as_str().unwrap());
        let prompt = ids(&case["prompt_ids"]);
        assert_eq!(tokenizer.encode(case["prompt"].as_str().unwrap()).unwrap(), prompt, "{case_name}: prompt ids");

        let want = reference_logits(case);
        let got = all_logits(&dev, &model, &prompt);
        match tolerance::compare(&format!("{case_name}: logits"), &got, &want, tol) {
            Ok(r) => eprintln!("{case_name}: all-position logits {r}"),
            Err(msg) => panic!("{msg}"),
        }

        let greedy = &case["greedy"];
        let n = greedy["max_new_tokens"].as_u64().unwrap() as usize;
        let opts = GenerateOptions::greedy(n, dir.eos_token_ids());
        let (out, _) = generate(&dev, &model, &prompt, &opts, |_| Ok(Flow::Continue)).unwrap();
        let out: Vec<u32> = out.iter().map(|t| t.id).collect();
        assert_eq!(out, ids(&greedy["new_ids"]), "{case_name}: greedy ids with the KV cache");
        assert!(out.len() >= 8, "{case_name}: at least 8 greedy steps");

        // Prefill + decode (the KV-cache path) equals recomputing everything at once.
        let mut all = prompt.clone();
        all.extend_from_slice(&out[..out.len() - 1]);
        let full = all_logits(&dev, &model, &all);
        let vocab = model.config().vocab_size;
        let mut cache = model.new_cache(&dev, all.len()).unwrap();
        let mut stepwise = Vec::new();
        for (i, &id) in all.iter().enumerate() {
            let input = Tensor::from_slice(&dev, &[id], &[1]).unwrap();
            let mut rec = Recorder::new(&dev);
            let logits = model.forward(&mut rec, &input, &mut cache, false).unwrap();
            rec.submit().unwrap();
            if i + 1 >= prompt.len() {
                stepwise.extend(logits.to_vec_f32().unwrap());
            }
        }
        let tail = &full[(prompt.len() - 1) * vocab..];
        tolerance::compare(&format!("{case_name}: decode vs recompute"), &stepwise, tail, tolerance::MODEL_LOGITS_F32)
            .unwrap_or_else(|m| panic!("{m}"));
    }
}

#[test]
fn gpt2_f32_matches_transformers() {
    check_model("gpt2-tiny-f32");
}

#[test]
fn gpt2_f16_matches_transformers() {
    check_model("gpt2-tiny-f16");
}

#[test]
fn qwen2_tied_f32_matches_transformers() {
    check_model("qwen2-tiny-tied-f32");
}

#[test]
fn qwen2_untied_sharded_bf16_matches_transformers() {
    check_model("qwen2-tiny-untied-bf16");
}

#[test]
fn qwen2_f16_matches_transformers() {
    check_model("qwen2-tiny-f16");
}

#[test]
fn llama_f32_matches_transformers() {
    check_model("llama-tiny-f32");
}

#[test]
fn qwen3_f32_matches_transformers() {
    // q_norm/k_norm over each head before RoPE, head_dim 32 apart from hidden / heads = 16.
    check_model("qwen3-tiny-f32");
}

#[test]
fn gemma3_f32_matches_transformers() {
    // Sliding window 4 on layers 0 and 2 (every prompt is longer), a global layer 1 with
    // another RoPE base, head_dim 32 apart from hidden / heads = 16, attention scale
    // query_pre_attn_scalar^-0.5 = 24^-0.5, (1 + w) norms before and after each block.
    check_model("gemma3-tiny-f32");
}

#[test]
fn gemma3_logit_softcapping_is_refused_naming_the_field() {
    let src = fixtures().join("models").join("gemma3-tiny-f32");
    for field in ["final_logit_softcapping", "attn_logit_softcapping"] {
        let tmp = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
        }
        let cfg_path = tmp.path().join("config.json");
        let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
        cfg[field] = serde_json::json!(30.0);
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let err = ModelDir::open(tmp.path()).expect_err("refused").to_string();
        assert!(err.contains("config.json") && err.contains(field), "{err}");
    }
}

/// A tiny checkpoint written as a GGUF file (llama.cpp's names and keys, F32 tensors, the
/// tokenizer as tokenizer.ggml.*; tests/fixtures/make_tiny_gguf.py) against transformers
/// reading that file back with `gguf_file=`: the file's own tokenizer gives the same ids,
/// all-position logits within the same tolerances, greedy ids exact, with both caches.
fn check_gguf(stem: &str, arch: kiln_model::Arch) {
    let dev = test_device();
    let g = golden(&format!("{stem}.gguf"));
    let file = kiln_model::gguf::GgufFile::open(fixtures().join(format!("models/{stem}.gguf"))).unwrap();
    let tokenizer = kiln_model::gguf::tokenizer::from_gguf(&file).unwrap();
    let mut model = Model::load_gguf(&dev, &file).unwrap();
    assert_eq!(model.config().arch, arch);
    for (kv, tol) in [(KvDtype::F32, tolerance::MODEL_LOGITS_F32), (KvDtype::F16, tolerance::MODEL_LOGITS_F16_KV)] {
        model.set_kv_dtype(kv);
        for case in g["cases"].as_array().unwrap() {
            let case_name = format!("{stem}.gguf/{}, {kv} KV cache", case["name"].as_str().unwrap());
            let prompt = ids(&case["prompt_ids"]);
            assert_eq!(tokenizer.encode(case["prompt"].as_str().unwrap()).unwrap(), prompt, "{case_name}: prompt ids");
            let got = all_logits(&dev, &model, &prompt);
            match tolerance::compare(&format!("{case_name}: logits"), &got, &reference_logits(case), tol) {
                Ok(r) => eprintln!("{case_name}: all-position logits {r}"),
                Err(msg) => panic!("{msg}"),
            }
            let greedy = &case["greedy"];
            let opts = GenerateOptions::greedy(greedy["max_new_tokens"].as_u64().unwrap() as usize, vec![]);
            let (out, _) = generate(&dev, &model, &prompt, &opts, |_| Ok(Flow::Continue)).unwrap();
            let out: Vec<u32> = out.iter().map(|t| t.id).collect();
            assert_eq!(out, ids(&greedy["new_ids"]), "{case_name}: greedy ids");
        }
    }
}

#[test]
fn qwen3_gguf_matches_transformers() {
    check_gguf("qwen3-tiny-f32", kiln_model::Arch::Qwen3);
}

#[test]
fn gpt2_gguf_matches_transformers() {
    // llama.cpp's gpt2 architecture: attn_qkv / ffn_up / ... with biases, position_embd.
    check_gguf("gpt2-tiny-f32", kiln_model::Arch::Gpt2);
}

#[test]
fn tokenizers_match_transformers_and_round_trip() {
    for (golden_name, model) in [("tokenizer_gpt2", "gpt2-tiny-f32"), ("tokenizer_qwen2", "qwen2-tiny-tied-f32")] {
        let g = golden(golden_name);
        let dir = ModelDir::open(fixtures().join("models").join(model)).unwrap();
        let tok = dir.tokenizer().unwrap();
        for case in g["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let want = ids(&case["ids"]);
            assert_eq!(tok.encode(text).unwrap(), want, "{golden_name}: ids of {text:?}");
            assert_eq!(tok.decode(&want, false).unwrap(), case["decoded"].as_str().unwrap(), "{golden_name}: decode of {text:?}");
            if case["roundtrip"].as_bool().unwrap() {
                assert_eq!(tok.decode(&want, false).unwrap(), text, "{golden_name}: round trip of {text:?}");
            }
            // Streaming decode emits the same text, never half a character.
            let mut stream = tok.stream(false);
            let mut streamed = String::new();
            for &id in &want {
                streamed.push_str(&stream.push(id).unwrap());
            }
            streamed.push_str(&stream.finish().unwrap());
            assert_eq!(streamed, case["decoded"].as_str().unwrap(), "{golden_name}: streamed {text:?}");
        }
    }
}

/// add_bos_token / add_eos_token in tokenizer_config.json change nothing next to a
/// tokenizer.json: transformers 5 drops them and so does kiln; tokenizer.json's
/// post-processor decides what `encode_with_special` adds.
#[test]
fn tokenizer_config_bos_eos_flags_are_ignored_like_transformers() {
    for (golden_name, model) in [("tokenizer_gpt2", "gpt2-tiny-f32"), ("tokenizer_qwen2", "qwen2-tiny-tied-f32")] {
        let g = golden(golden_name);
        let src = fixtures().join("models").join(model);
        let variants = g["tokenizer_config_flags"].as_array().unwrap();
        assert_eq!(variants.len(), 4, "{golden_name}");
        for v in variants {
            let tmp = tempfile::tempdir().unwrap();
            std::fs::copy(src.join("tokenizer.json"), tmp.path().join("tokenizer.json")).unwrap();
            let cfg_text = std::fs::read_to_string(src.join("tokenizer_config.json")).unwrap();
            let mut cfg: Value = serde_json::from_str(&cfg_text).unwrap();
            for (k, flag) in v["set_in_tokenizer_config"].as_object().unwrap() {
                cfg[k] = flag.clone();
            }
            std::fs::write(tmp.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
            let tok = kiln_model::Tokenizer::from_dir(tmp.path()).unwrap();
            for case in v["cases"].as_array().unwrap() {
                let text = case["text"].as_str().unwrap();
                let flags = &v["set_in_tokenizer_config"];
                assert_eq!(tok.encode(text).unwrap(), ids(&case["ids"]), "{golden_name} {flags}: {text:?}");
                assert_eq!(
                    tok.encode_with_special(text, true).unwrap(),
                    ids(&case["ids_add_special_tokens"]),
                    "{golden_name} {flags}: {text:?} with special tokens"
                );
            }
        }
    }
}

#[test]
fn unsupported_rope_scaling_is_refused_naming_the_field() {
    let src = fixtures().join("models").join("qwen2-tiny-tied-f32");
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    let cfg_path = tmp.path().join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let dir = ModelDir::open(tmp.path()).unwrap();
    let err = Model::load(&test_device(), &dir).err().expect("refused").to_string();
    assert!(err.contains("config.json") && err.contains("rope_scaling") && err.contains("yarn"), "{err}");
}
