//! Real models from GGUF (weights kept quantized on the GPU) vs Hugging Face transformers 5
//! (the same GGUF loaded with `gguf_file=`, dequantized to float32), goldens made by
//! tests/fixtures/make_gguf_goldens.py:
//! - Qwen2.5-Coder-0.5B-Instruct Q4_K_M on code and prose prompts: prompt ids equal (with
//!   the special tokens the file asks for: none), last-position top-10 ids equal as a
//!   set, their logits within `TOP_LOGITS` with an f32 KV cache and within
//!   `TOP_LOGITS_F16_KV` with the default f16 one, 16 greedy ids exact (f16 cache);
//! - SmolLM2-135M-Instruct Q4_1 (llama, Q/K rows un-permuted): prompt ids equal (no BOS:
//!   the GGUF's `add_bos_token` is false), the first 4 greedy ids exact.
//! - Gemma 3 270M Q4_K_M (SentencePiece vocabulary, sliding-window layers, norms stored
//!   as `1 + w`): prompt ids with the file's BOS equal, top-10 ids as a set and their
//!   logits as for Qwen2.5, 16 greedy ids exact on four prompts; the tokenizer's ids on
//!   tricky strings equal transformers'.
//!
//! The models come from `kiln fetch` (cached outside the repo). Without them these tests
//! print a note and pass, unless KILN_REQUIRE_MODELS=1 (CI), where they fail.

mod common;

use kiln_kernels::testing::test_device;
use kiln_kernels::tolerance::{self, Tol};
use kiln_model::gguf::chat::{render_chat, ChatMessage};
use kiln_model::gguf::GgufFile;
use kiln_model::{KvDtype, Model};
use kiln_sampler::generate::{generate, Flow, GenerateOptions};
use kiln_tensor::{Recorder, Tensor};

use common::{gguf_tokenizer, golden, ids, real_model_path};

/// Top-10 logits vs transformers. Both dequantize the same blocks to f32 and compute in
/// f32; only summation order differs, through 24 layers (logits are ~10-20 in size;
/// the largest difference seen is 3.4e-5).
const TOP_LOGITS: Tol = Tol { abs: 1e-3, rel: 0.0 };
/// The same with the default f16 KV cache, which rounds K and V to f16 (transformers keeps
/// f32): measured 1.05e-2 on `code_fib` (logits ~17.6, so 6e-4 relative).
const TOP_LOGITS_F16_KV: Tol = Tol { abs: 3e-2, rel: 0.0 };

/// Gemma 3 270M's top-10 logits vs transformers with an f32 KV cache: as for Qwen2.5, the
/// same dequantized blocks in f32 on both sides (largest difference seen 2.1e-5, on
/// `code_numpy`; logits ~10-30).
const GEMMA3_TOP_LOGITS: Tol = Tol { abs: 1e-3, rel: 0.0 };
/// The same with the default f16 KV cache: measured 2.4e-3 (`code_fib`).
const GEMMA3_TOP_LOGITS_F16_KV: Tol = Tol { abs: 1e-2, rel: 0.0 };

fn greedy(dev: &kiln_tensor::Device, model: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let opts = GenerateOptions::greedy(n, vec![]);
    generate(dev, model, prompt, &opts, |_| Ok(Flow::Continue)).unwrap().0.iter().map(|t| t.id).collect()
}

/// Greedy decoding that also returns the prefill's last-position logits: one prefill
/// serves both the top-10 check and the first greedy id (lavapipe is slow).
fn prefill_then_greedy(dev: &kiln_tensor::Device, model: &Model, prompt: &[u32], n: usize) -> (Vec<f32>, Vec<u32>) {
    let mut cache = model.new_cache(dev, prompt.len() + n).unwrap();
    let step = |cache: &mut kiln_model::KvCache, ids: &[u32]| {
        let input = Tensor::from_slice(dev, ids, &[ids.len()]).unwrap();
        let mut rec = Recorder::new(dev);
        let logits = model.forward(&mut rec, &input, cache, false).unwrap();
        rec.submit().unwrap();
        logits.to_vec_f32().unwrap()
    };
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap() as u32;
    let first = step(&mut cache, prompt);
    let mut out = vec![argmax(&first)];
    while out.len() < n {
        let logits = step(&mut cache, &[*out.last().unwrap()]);
        out.push(argmax(&logits));
    }
    (first, out)
}

/// The last position's logits of one prefill over an f32 KV cache.
fn prefill_f32_cache(dev: &kiln_tensor::Device, model: &Model, prompt: &[u32]) -> Vec<f32> {
    let mut cache = model.new_cache_with(dev, 1, prompt.len(), KvDtype::F32).unwrap();
    let input = Tensor::from_slice(dev, prompt, &[prompt.len()]).unwrap();
    let mut rec = Recorder::new(dev);
    let logits = model.forward(&mut rec, &input, &mut cache, false).unwrap();
    rec.submit().unwrap();
    logits.to_vec_f32().unwrap()
}

#[test]
fn qwen2_5_coder_q4_k_m_matches_transformers() {
    let Some(path) = real_model_path("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else { return };
    let g = golden("gguf_qwen2.5-coder-0.5b-q4_k_m.json");
    let dev = test_device();
    let file = GgufFile::open(&path).unwrap();
    let tokenizer = gguf_tokenizer(&file);
    let model = Model::load_gguf(&dev, &file).unwrap();
    let mut checked = 0;
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = ids(&case["prompt_ids"]);
        if let Some(text) = case["prompt"].as_str() {
            assert_eq!(
                tokenizer.encode_with_special(text, true).unwrap(),
                ids(&case["prompt_ids_add_special_tokens"]),
                "{name}: prompt ids"
            );
        }
        // Two code and two prose prompts run through the model; the rest only check ids.
        if !["code_fib", "code_numpy", "prose_france", "prose_once"].contains(&name) {
            continue;
        }
        let want_greedy = ids(&case["greedy"]["new_ids"]);
        assert_eq!(want_greedy.len(), 16, "{name}: the golden has 16 greedy ids");
        let (f16_logits, got) = prefill_then_greedy(&dev, &model, &prompt, 16);
        let f32_logits = prefill_f32_cache(&dev, &model, &prompt);
        let want_ids = ids(&case["last"]["top_ids"]);
        let want_logits: Vec<f32> =
            case["last"]["top_logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        for (kv, logits, tol) in [("f32", &f32_logits, TOP_LOGITS), ("f16", &f16_logits, TOP_LOGITS_F16_KV)] {
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            let mut got_top: Vec<u32> = order[..10].iter().map(|&i| i as u32).collect();
            let mut want_set = want_ids.clone();
            got_top.sort();
            want_set.sort();
            assert_eq!(got_top, want_set, "{name}: top-10 ids as a set ({kv} KV cache)");
            let got_logits: Vec<f32> = want_ids.iter().map(|&i| logits[i as usize]).collect();
            match tolerance::compare(&format!("{name}: top-10 logits ({kv} KV cache)"), &got_logits, &want_logits, tol) {
                Ok(r) => eprintln!("{name}: top-10 logits ({kv} KV cache) {r}"),
                Err(m) => panic!("{m}"),
            }
        }
        assert_eq!(got, want_greedy, "{name}: 16 greedy ids");
        checked += 1;
    }
    assert_eq!(checked, 4, "two code and two prose prompts checked");
}

#[test]
fn qwen2_5_chat_template_gives_transformers_prompt_ids() {
    let Some(path) = real_model_path("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else { return };
    let g = golden("gguf_tokenizer_qwen2.5.json");
    let file = GgufFile::open(&path).unwrap();
    let tokenizer = gguf_tokenizer(&file);
    let template = kiln_model::gguf::chat::chat_template(&file).unwrap().expect("Qwen2.5 has a chat template");
    let chats = g["chat_template"].as_object().expect("chat renderings in the golden");
    for (name, chat) in chats {
        let messages: Vec<ChatMessage> = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let text = render_chat(template, &messages, true, "", "<|im_end|>").unwrap();
        assert_eq!(text, chat["text"].as_str().unwrap(), "{name}: rendered template");
        assert_eq!(tokenizer.encode_with_special(&text, false).unwrap(), ids(&chat["ids"]), "{name}: ids");
    }
}

#[test]
fn smollm2_q4_1_first_greedy_ids_match_transformers() {
    let Some(path) = real_model_path("smollm2-135m-instruct-q4_1.gguf") else { return };
    let g = golden("gguf_smollm2-135m-q4_1.json");
    let dev = test_device();
    let file = GgufFile::open(&path).unwrap();
    let tokenizer = gguf_tokenizer(&file);
    let model = Model::load_gguf(&dev, &file).unwrap();
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = ids(&case["prompt_ids"]);
        let want = ids(&case["greedy"]["new_ids"]);
        let got = greedy(&dev, &model, &prompt, 4);
        assert_eq!(got, want[..4], "{name}: first 4 greedy ids");
        if let Some(text) = case["prompt"].as_str() {
            // kiln encodes like transformers 5's tokenizer(prompt), as the file says: no BOS.
            let default_ids = tokenizer.encode_with_special(text, true).unwrap();
            assert_eq!(default_ids, ids(&case["prompt_ids_add_special_tokens"]), "{name}: prompt ids");
            assert_eq!(default_ids, prompt, "{name}: no special tokens added");
        }
    }
}

/// Gemma 3 270M: top-10 logits within `tol_f32` (f32 KV cache) / `tol_f16` (f16 cache)
/// and 16 greedy ids exact, on the four prompts of the golden.
#[test]
fn gemma3_270m_q4_k_m_matches_transformers() {
    let Some(path) = real_model_path("gemma-3-270m-q4_k_m.gguf") else { return };
    let g = golden("gguf_gemma3-270m-q4_k_m.json");
    let dev = test_device();
    let file = GgufFile::open(&path).unwrap();
    let tokenizer = gguf_tokenizer(&file);
    let model = Model::load_gguf(&dev, &file).unwrap();
    assert_eq!(model.config().arch, kiln_model::Arch::Gemma3);
    let mut checked = 0;
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = ids(&case["prompt_ids"]);
        let text = case["prompt"].as_str().unwrap();
        // The model's input is tokenizer(prompt): the file asks for a BOS.
        let with_bos = tokenizer.encode_with_special(text, true).unwrap();
        assert_eq!(with_bos, ids(&case["prompt_ids_add_special_tokens"]), "{name}: prompt ids");
        assert_eq!(with_bos, prompt, "{name}: the golden ran tokenizer(prompt)");
        let want_greedy = ids(&case["greedy"]["new_ids"]);
        assert_eq!(want_greedy.len(), 16, "{name}: the golden has 16 greedy ids");
        let (f16_logits, got) = prefill_then_greedy(&dev, &model, &prompt, 16);
        let f32_logits = prefill_f32_cache(&dev, &model, &prompt);
        let want_ids = ids(&case["last"]["top_ids"]);
        let want_logits: Vec<f32> =
            case["last"]["top_logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        for (kv, logits, tol) in [("f32", &f32_logits, GEMMA3_TOP_LOGITS), ("f16", &f16_logits, GEMMA3_TOP_LOGITS_F16_KV)] {
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            let mut got_top: Vec<u32> = order[..10].iter().map(|&i| i as u32).collect();
            let mut want_set = want_ids.clone();
            got_top.sort();
            want_set.sort();
            assert_eq!(got_top, want_set, "{name}: top-10 ids as a set ({kv} KV cache)");
            let got_logits: Vec<f32> = want_ids.iter().map(|&i| logits[i as usize]).collect();
            match tolerance::compare(&format!("{name}: top-10 logits ({kv} KV cache)"), &got_logits, &want_logits, tol) {
                Ok(r) => eprintln!("{name}: top-10 logits ({kv} KV cache) {r}"),
                Err(m) => panic!("{m}"),
            }
        }
        assert_eq!(got, want_greedy, "{name}: 16 greedy ids");
        checked += 1;
    }
    assert_eq!(checked, 4, "four prompts checked");
}

/// Gemma's SentencePiece vocabulary (no merges in the file, byte fallback, runs of
/// newlines as added tokens, `▁` for spaces) gives transformers' ids, with and without
/// the BOS, and decodes back as transformers does.
#[test]
fn gemma3_tokenizer_matches_transformers() {
    let Some(path) = real_model_path("gemma-3-270m-q4_k_m.gguf") else { return };
    let g = golden("gguf_tokenizer_gemma3.json");
    let file = GgufFile::open(&path).unwrap();
    let tokenizer = gguf_tokenizer(&file);
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "the golden covers the tricky strings");
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        assert_eq!(tokenizer.encode(text).unwrap(), want, "ids of {text:?}");
        assert_eq!(
            tokenizer.encode_with_special(text, true).unwrap(),
            ids(&case["ids_add_special_tokens"]),
            "ids of {text:?} with special tokens"
        );
        assert_eq!(tokenizer.decode(&want, false).unwrap(), case["decoded"].as_str().unwrap(), "decode of {text:?}");
        assert_eq!(
            tokenizer.decode(&want, true).unwrap(),
            case["decoded_skip_special"].as_str().unwrap(),
            "decode of {text:?} without special tokens"
        );
    }
}
