//! config.json / generation_config.json parsing (no GPU needed).

mod common;

use common::*;
use kiln_model::{Arch, GenerationConfig, ModelConfig, ModelError};
use kiln_tensor::DType;
use serde_json::{json, Value};

fn parse(cfg: &Value) -> Result<ModelConfig, ModelError> {
    let dir = tempdir();
    write_json(dir.path(), "config.json", cfg);
    ModelConfig::from_dir(dir.path()).map(|(c, _)| c)
}

fn parse_err(cfg: &Value) -> String {
    match parse(cfg) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn without(mut base: Value, keys: &[&str]) -> Value {
    for k in keys {
        base.as_object_mut().unwrap().remove(*k);
    }
    base
}

#[test]
fn gpt2_fields_and_defaults() {
    let c = parse(&gpt2_config()).unwrap();
    assert_eq!(c.arch, Arch::Gpt2);
    assert_eq!((c.vocab_size, c.hidden_size, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim), (300, 8, 2, 2, 2, 4));
    assert_eq!(c.intermediate_size, 32, "n_inner null means 4 * n_embd");
    assert_eq!(c.max_position_embeddings, 16);
    assert_eq!(c.norm_eps, 1e-5);
    assert!(c.tie_word_embeddings, "GPT-2 ties by default");
    assert!(c.qkv_bias && c.o_bias && c.mlp_bias);
    assert_eq!(c.hidden_act, "gelu_new");
    assert_eq!(c.eos_token_ids, vec![256]);
    assert_eq!(c.bos_token_id, Some(256));
    assert_eq!(c.dtype, Some(DType::F32));

    // n_ctx when n_positions is absent; explicit n_inner; explicit untied.
    let c = parse(&with(
        without(gpt2_config(), &["n_positions"]),
        json!({"n_ctx": 32, "n_inner": 20, "tie_word_embeddings": false}),
    ))
    .unwrap();
    assert_eq!(c.max_position_embeddings, 32);
    assert_eq!(c.intermediate_size, 20);
    assert!(!c.tie_word_embeddings);
}

#[test]
fn qwen2_fields_and_defaults() {
    let c = parse(&qwen2_config()).unwrap();
    assert_eq!(c.arch, Arch::Qwen2);
    assert_eq!((c.hidden_size, c.n_heads, c.n_kv_heads, c.head_dim, c.intermediate_size), (8, 4, 2, 2, 12));
    assert_eq!((c.q_dim(), c.kv_dim()), (8, 4));
    assert_eq!(c.rope_theta, 1_000_000.0);
    assert!(c.rope_scaling.is_none());
    assert!(c.qkv_bias && !c.o_bias && !c.mlp_bias, "Qwen2: bias on q/k/v only");
    assert!(c.tie_word_embeddings);
    assert_eq!(c.dtype, Some(DType::BF16));
    assert_eq!(c.norm_eps, 1e-6);

    // Defaults: kv heads = heads, rope_theta 10000, untied.
    let c =
        parse(&without(qwen2_config(), &["num_key_value_heads", "rope_theta", "tie_word_embeddings", "rms_norm_eps"]))
            .unwrap();
    assert_eq!(c.n_kv_heads, 4);
    assert_eq!(c.rope_theta, 10000.0);
    assert!(!c.tie_word_embeddings);
    assert_eq!(c.norm_eps, 1e-6);
}

#[test]
fn rope_theta_in_both_spellings() {
    let top = parse(&with(qwen2_config(), json!({"rope_theta": 500000.0}))).unwrap();
    assert_eq!(top.rope_theta, 500000.0);
    let nested = parse(&with(
        without(qwen2_config(), &["rope_theta"]),
        json!({"rope_parameters": {"rope_type": "default", "rope_theta": 250000.0}}),
    ))
    .unwrap();
    assert_eq!(nested.rope_theta, 250000.0);
    assert!(nested.rope_scaling.is_none());

    // A non-default rope type is kept for the forward pass to judge.
    let scaled = parse(&with(
        qwen2_config(),
        json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}}),
    ))
    .unwrap();
    assert_eq!(scaled.rope_scaling.as_ref().unwrap()["rope_type"], "llama3");

    let msg = parse_err(&with(qwen2_config(), json!({"rope_parameters": {"rope_theta": -1.0}})));
    assert_mentions(&msg, &["config.json", "rope_parameters.rope_theta", "positive"]);
}

#[test]
fn torch_dtype_and_dtype() {
    let old = parse(&with(qwen2_config(), json!({"torch_dtype": "float16"}))).unwrap();
    assert_eq!(old.dtype, Some(DType::F16));
    let new = parse(&with(without(qwen2_config(), &["torch_dtype"]), json!({"dtype": "bfloat16"}))).unwrap();
    assert_eq!(new.dtype, Some(DType::BF16));
    let none = parse(&without(qwen2_config(), &["torch_dtype"])).unwrap();
    assert_eq!(none.dtype, None);
    let msg = parse_err(&with(qwen2_config(), json!({"torch_dtype": "int8"})));
    assert_mentions(&msg, &["config.json", "torch_dtype", "int8"]);
}

#[test]
fn llama_attention_bias_and_tying() {
    let llama = with(qwen2_config(), json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}));
    let llama = without(llama, &["tie_word_embeddings"]);
    let c = parse(&llama).unwrap();
    assert_eq!(c.arch, Arch::Llama);
    assert!(!c.qkv_bias && !c.o_bias && !c.mlp_bias, "Llama has no bias by default");
    assert!(!c.tie_word_embeddings, "Llama unties by default");
    let c = parse(&with(llama.clone(), json!({"attention_bias": true, "mlp_bias": true, "tie_word_embeddings": true})))
        .unwrap();
    assert!(c.qkv_bias && c.o_bias && c.mlp_bias);
    assert!(c.tie_word_embeddings);
    // Explicit head_dim that does not equal hidden / heads is accepted for Llama-style models.
    let c = parse(&with(llama, json!({"head_dim": 4}))).unwrap();
    assert_eq!((c.head_dim, c.q_dim(), c.kv_dim()), (4, 16, 8));
}

#[test]
fn architecture_from_model_type_alone() {
    let c = parse(&without(gpt2_config(), &["architectures"])).unwrap();
    assert_eq!(c.arch, Arch::Gpt2);
    let c = parse(&with(without(qwen2_config(), &["architectures"]), json!({"model_type": "llama"}))).unwrap();
    assert_eq!(c.arch, Arch::Llama);
}

#[test]
fn unknown_architecture_names_file_and_value() {
    let msg =
        parse_err(&with(qwen2_config(), json!({"architectures": ["MistralForCausalLM"], "model_type": "mistral"})));
    assert_mentions(&msg, &["config.json", "MistralForCausalLM", "unsupported architecture"]);
    let msg = parse_err(&with(without(qwen2_config(), &["architectures"]), json!({"model_type": "bert"})));
    assert_mentions(&msg, &["config.json", "\"bert\""]);
    let msg = parse_err(&without(qwen2_config(), &["architectures", "model_type"]));
    assert_mentions(&msg, &["config.json", "architectures", "model_type", "missing"]);
}

#[test]
fn eos_ids_int_or_list_merged_with_generation_config() {
    let dir = tempdir();
    write_json(dir.path(), "config.json", &with(qwen2_config(), json!({"eos_token_id": 151643u32})));
    write_json(
        dir.path(),
        "generation_config.json",
        &json!({"eos_token_id": [151645u32, 151643u32], "bos_token_id": 151643u32, "temperature": 0.7, "top_p": 0.8,
                "top_k": 20, "repetition_penalty": 1.05, "do_sample": true, "transformers_version": "4.45.0"}),
    );
    let (c, g) = ModelConfig::from_dir(dir.path()).unwrap();
    assert_eq!(c.eos_token_ids, vec![151645, 151643], "generation_config first, no duplicates");
    assert_eq!(c.bos_token_id, Some(151643));
    assert_eq!(g.temperature, Some(0.7));
    assert_eq!(g.top_k, Some(20));
    assert_eq!(g.do_sample, Some(true));
    assert!(g.path.unwrap().ends_with("generation_config.json"));

    let c = parse(&with(qwen2_config(), json!({"eos_token_id": [1, 2]}))).unwrap();
    assert_eq!(c.eos_token_ids, vec![1, 2]);
    let c = parse(&with(qwen2_config(), json!({"eos_token_id": null}))).unwrap();
    assert!(c.eos_token_ids.is_empty());
    let msg = parse_err(&with(qwen2_config(), json!({"eos_token_id": -1})));
    assert_mentions(&msg, &["config.json", "eos_token_id", "-1"]);
}

#[test]
fn malformed_generation_config_names_its_file() {
    let dir = tempdir();
    write_json(dir.path(), "config.json", &qwen2_config());
    std::fs::write(dir.path().join("generation_config.json"), "{\"eos_token_id\": [1,").unwrap();
    let msg = ModelConfig::from_dir(dir.path()).unwrap_err().to_string();
    assert_mentions(&msg, &["generation_config.json", "not valid JSON"]);
    assert_eq!(GenerationConfig::from_dir(tempdir().path()).unwrap(), GenerationConfig::default());
}

#[test]
fn missing_config_names_the_file() {
    let dir = tempdir();
    let err = ModelConfig::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::MissingFile { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["config.json", "does not exist"]);
}

#[test]
fn malformed_config_names_the_file() {
    let dir = tempdir();
    std::fs::write(dir.path().join("config.json"), "{\"model_type\": \"gpt2\", ").unwrap();
    let msg = ModelConfig::from_dir(dir.path()).unwrap_err().to_string();
    assert_mentions(&msg, &["config.json", "not valid JSON", "line 1"]);
    std::fs::write(dir.path().join("config.json"), "[1, 2]").unwrap();
    let msg = ModelConfig::from_dir(dir.path()).unwrap_err().to_string();
    assert_mentions(&msg, &["config.json", "JSON object"]);
}

#[test]
fn invalid_fields_name_file_and_field() {
    let cases: Vec<(Value, &[&str])> = vec![
        (with(qwen2_config(), json!({"num_key_value_heads": 3})), &["num_key_value_heads", "not a multiple"]),
        (with(qwen2_config(), json!({"hidden_size": 0})), &["hidden_size", "positive"]),
        (with(qwen2_config(), json!({"hidden_size": 10})), &["hidden_size", "not divisible"]),
        (with(qwen2_config(), json!({"num_hidden_layers": "two"})), &["num_hidden_layers", "\"two\""]),
        (with(qwen2_config(), json!({"intermediate_size": -5})), &["intermediate_size", "-5"]),
        (with(qwen2_config(), json!({"rms_norm_eps": 0.0})), &["rms_norm_eps", "positive"]),
        (with(qwen2_config(), json!({"tie_word_embeddings": "yes"})), &["tie_word_embeddings", "true or false"]),
        (with(qwen2_config(), json!({"head_dim": 3})), &["head_dim", "even"]),
        (without(qwen2_config(), &["vocab_size"]), &["vocab_size", "missing"]),
        (without(qwen2_config(), &["max_position_embeddings"]), &["max_position_embeddings", "missing"]),
        (with(gpt2_config(), json!({"n_embd": 9})), &["n_embd", "not divisible", "n_head"]),
        (without(gpt2_config(), &["n_positions"]), &["n_positions", "n_ctx", "missing"]),
        (with(gpt2_config(), json!({"scale_attn_by_inverse_layer_idx": true})), &["scale_attn_by_inverse_layer_idx"]),
        (with(gpt2_config(), json!({"architectures": "GPT2LMHeadModel"})), &["architectures", "list"]),
    ];
    for (cfg, needles) in cases {
        let msg = parse_err(&cfg);
        assert_mentions(&msg, &["config.json"]);
        assert_mentions(&msg, needles);
    }
}
