//! `kiln_sampler::score` end to end:
//! - a text's per-token log-probs equal log_softmax of ONE full forward pass's logits
//!   (read back, computed on the CPU), and chunked forwards change nothing (within
//!   `CHUNKED`, or `CHUNKED_F16_KV` with the f16 KV cache);
//! - the tiny checkpoints vs transformers (goldens from tests/fixtures/make_score_goldens.py):
//!   per-token log-probs and entropies within `TINY_TOKEN` nats with an f32 KV cache,
//!   `TINY_TOKEN_F16_KV` with the default f16 one, totals consistent;
//! - Qwen2.5-Coder-0.5B GGUF: "The capital of France is" + " Paris." within `QWEN_ANSWER`
//!   nats of transformers, per token within `QWEN_TOKEN` (f32 cache) / `QWEN_TOKEN_F16_KV`
//!   (f16 cache) (skipped without the model unless KILN_REQUIRE_MODELS=1);
//! - bad parameters are clear errors naming the parameter.

mod common;


use kiln_kernels::reference;
use kiln_kernels::testing::test_device;
use kiln_kernels::tolerance::{self, Tol};
use kiln_model::gguf::tokenizer::{build, GgufTokenizerSpec};
use kiln_model::gguf::GgufFile;
use kiln_model::{KvDtype, Model, ModelDir};
use kiln_sampler::score::{score_answer, score_answer_only, score_ids, score_ids_in_chunks, score_text, TokenScore, Totals};
use kiln_tensor::{Device, Recorder, Tensor};
use serde_json::Value;

use common::{fixtures, gguf_model, gguf_tokenizer, golden, ids, real_model_path};

/// Same logits, log-softmax on the GPU (f32, online) vs the CPU (f64): the kernel tolerance.
const SAME_LOGITS: Tol = tolerance::LOGPROBS;
/// Chunked forward passes vs one pass: the logits come from different kernels (matvec for
/// one row, matmul for many), which differ by summation order (~1e-6 on these models).
const CHUNKED: Tol = Tol { abs: 1e-4, rel: 0.0 };
/// Tiny f32 checkpoints vs transformers' float32 log-probs, per token, in nats: the logits
/// agree within `tolerance::MODEL_LOGITS_F32` (1e-3), and a log-prob moves by at most the
/// largest logit difference.
const TINY_TOKEN: Tol = Tol { abs: 1e-3, rel: 0.0 };
/// Qwen2.5 Q4_K_M vs transformers (same dequantized weights, f32 math), per token, in nats
/// (top logits agree within 1e-3 in gguf_models.rs).
const QWEN_TOKEN: Tol = Tol { abs: 2e-3, rel: 0.0 };
/// With the default f16 KV cache, K and V are rounded to f16 (transformers keeps f32), and
/// a K value whose f32 differs by an ulp between two paths (matvec vs matmul projections)
/// can round to a neighbouring f16. Measured on lavapipe (2026-11-29): chunked vs one pass
/// 4.9e-4 nats, tiny checkpoints vs transformers 6.6e-3, Qwen2.5 Q4_K_M 2.4e-3; each bound
/// is about three times that.
const CHUNKED_F16_KV: Tol = Tol { abs: 2e-3, rel: 0.0 };
const TINY_TOKEN_F16_KV: Tol = Tol { abs: 2e-2, rel: 0.0 };
const QWEN_TOKEN_F16_KV: Tol = Tol { abs: 1e-2, rel: 0.0 };
/// The acceptance bound for the answer's total log-prob, in nats.
const QWEN_ANSWER: f64 = 0.05;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn load(name: &str) -> (Device, Model, ModelDir) {
    let dev = test_device();
    let dir = ModelDir::open(fixtures().join("models").join(name)).unwrap();
    let model = Model::load(&dev, &dir).unwrap();
    (dev, model, dir)
}

fn column(scores: &[TokenScore], f: impl Fn(&TokenScore) -> f32) -> Vec<f32> {
    scores.iter().map(f).collect()
}

fn check(what: &str, got: &[f32], want: &[f32], tol: Tol) -> f32 {
    match tolerance::compare(what, got, want, tol) {
        Ok(r) => {
            eprintln!("{what}: {r}");
            r.max_abs
        }
        Err(msg) => panic!("{msg}"),
    }
}

/// Logits `[n, vocab]` of every position, one forward pass.
fn full_logits(dev: &Device, model: &Model, ids: &[u32]) -> Vec<f32> {
    let mut cache = model.new_cache(dev, ids.len()).unwrap();
    let input = Tensor::from_slice(dev, ids, &[ids.len()]).unwrap();
    let mut rec = Recorder::new(dev);
    let logits = model.forward(&mut rec, &input, &mut cache, true).unwrap();
    rec.submit().unwrap();
    logits.to_vec_f32().unwrap()
}

#[test]
fn text_score_is_the_sum_of_one_full_pass_log_softmax() {
    for (name, kv) in [("gpt2-tiny-f32", KvDtype::F32), ("qwen2-tiny-tied-f32", KvDtype::F32), ("gpt2-tiny-f32", KvDtype::F16), ("qwen2-tiny-tied-f32", KvDtype::F16)] {
        let (dev, mut model, dir) = load(name);
        model.set_kv_dtype(kv);
        let chunked = if kv == KvDtype::F32 { CHUNKED } else { CHUNKED_F16_KV };
        let name = format!("{name} ({kv} KV cache)");
        let tok = dir.tokenizer().unwrap();
        let text = "The quick brown fox jumps over the lazy dog. It was a sunny day in the park.";
        let s = score_text(&dev, &model, tok, text).unwrap();
        assert_eq!(s.ids, tok.encode(text).unwrap(), "{name}: no BOS, the text's own ids");
        assert_eq!(s.first_scored, 1);
        assert_eq!(s.tokens.len(), s.ids.len() - 1);

        let vocab = model.config().vocab_size;
        let logits = full_logits(&dev, &model, &s.ids);
        let logp = reference::softmax::log_softmax(&logits, vocab);
        let want: Vec<f32> = (1..s.ids.len()).map(|p| logp[(p - 1) * vocab + s.ids[p] as usize]).collect();
        check(&format!("{name}: logprob vs full pass"), &column(&s.tokens, |t| t.logprob), &want, SAME_LOGITS);
        let twin: Vec<_> = (1..s.ids.len())
            .map(|p| reference::logprobs::row_score(&logits[(p - 1) * vocab..p * vocab], s.ids[p]))
            .collect();
        let want_h: Vec<f32> = twin.iter().map(|r| r.entropy as f32).collect();
        check(&format!("{name}: entropy vs full pass"), &column(&s.tokens, |t| t.entropy), &want_h, SAME_LOGITS);
        for (t, r) in s.tokens.iter().zip(&twin) {
            assert_eq!((t.rank as f64, t.argmax), (r.rank, r.argmax), "{name}: position {}", t.position);
        }
        let sum: f64 = want.iter().map(|&v| f64::from(v)).sum();
        assert!((s.totals.sum_logprob - sum).abs() < 1e-3, "{name}: sum {} vs {sum}", s.totals.sum_logprob);
        assert!((s.totals.perplexity - (-sum / want.len() as f64).exp()).abs() < 1e-3 * s.totals.perplexity);

        // Chunks of 1 (decode path), 4 and 7 positions continue the KV cache.
        for chunk in [1, 4, 7] {
            let c = score_ids_in_chunks(&dev, &model, &s.ids, 1, chunk).unwrap();
            let got = column(&c, |t| t.logprob);
            check(&format!("{name}: chunks of {chunk}"), &got, &column(&s.tokens, |t| t.logprob), chunked);
        }
        // Scoring from a later position gives the tail of the same scores.
        let tail = score_ids(&dev, &model, &s.ids, 5).unwrap();
        assert_eq!(tail.first().map(|t| t.position), Some(5));
        check(
            &format!("{name}: from position 5"),
            &column(&tail, |t| t.logprob),
            &column(&s.tokens[4..], |t| t.logprob),
            chunked,
        );
    }
}

fn check_totals(what: &str, got: &Totals, want: &Value, token: Tol) {
    assert_eq!(got.tokens, want["tokens"].as_u64().unwrap() as usize, "{what}: tokens");
    assert_eq!(got.bytes, want["bytes"].as_u64().unwrap() as usize, "{what}: bytes");
    let bound = token.abs as f64 * got.tokens as f64;
    let d = (got.sum_logprob - want["sum_logprob"].as_f64().unwrap()).abs();
    assert!(d <= bound, "{what}: sum_logprob {} vs {} (bound {bound})", got.sum_logprob, want["sum_logprob"]);
    // The totals follow from the per-token bound: the mean moves by at most `token.abs`,
    // perplexity = exp(-mean) by a factor exp(token.abs), bits/byte by bound / (bytes ln 2).
    for key in ["mean_logprob", "perplexity", "bits_per_byte"] {
        let w = want[key].as_f64().unwrap();
        let (g, derived) = match key {
            "mean_logprob" => (got.mean_logprob, token.abs as f64),
            "perplexity" => (got.perplexity, w.abs() * (token.abs as f64).exp_m1()),
            _ => (got.bits_per_byte, bound / (got.bytes.max(1) as f64 * std::f64::consts::LN_2)),
        };
        let allowed = derived.max(1e-3 * w.abs().max(1.0));
        assert!((g - w).abs() <= allowed, "{what}: {key} {g} vs {w} (bound {allowed})");
    }
}

#[test]
fn tiny_checkpoints_match_transformers() {
    for kv in [KvDtype::F32, KvDtype::F16] {
        tiny_checkpoints_match_transformers_with(kv);
    }
}

fn tiny_checkpoints_match_transformers_with(kv: KvDtype) {
    let token = if kv == KvDtype::F32 { TINY_TOKEN } else { TINY_TOKEN_F16_KV };
    let mut worst = 0f32;
    for name in ["gpt2-tiny-f32", "qwen2-tiny-tied-f32", "llama-tiny-f32"] {
        let (dev, mut model, dir) = load(name);
        model.set_kv_dtype(kv);
        let tok = dir.tokenizer().unwrap();
        let g = golden(&format!("score_{name}.json"));
        for case in g["cases"].as_array().unwrap() {
            let what = format!("{name}/{} ({kv} KV cache)", case["name"].as_str().unwrap());
            let (text, answer) = match case.get("given") {
                None => (score_text(&dev, &model, tok, case["text"].as_str().unwrap()).unwrap(), None),
                Some(given) => {
                    let a = score_answer(
                        &dev,
                        &model,
                        tok,
                        given["context"].as_str().unwrap(),
                        given["answer"].as_str().unwrap(),
                    )
                    .unwrap();
                    (a.text.clone(), Some(a))
                }
            };
            assert_eq!(text.ids, ids(&case["ids"]), "{what}: ids");
            assert_eq!(text.first_scored as u64, case["first_scored"].as_u64().unwrap(), "{what}: first_scored");
            let lp = column(&text.tokens, |t| t.logprob);
            worst = worst.max(check(&format!("{what}: logprobs"), &lp, &floats(&case["token_logprobs"]), token));
            check(&format!("{what}: entropies"), &column(&text.tokens, |t| t.entropy), &floats(&case["entropies"]), token);
            check_totals(&what, &text.totals, &case["totals"], token);
            if let Some(a) = answer {
                assert_eq!(a.answer_start as u64, case["answer_start"].as_u64().unwrap(), "{what}: answer_start");
                assert_eq!(a.context, case["context"].as_str().unwrap());
                assert_eq!(a.answer, case["answer"].as_str().unwrap());
                check_totals(&format!("{what} (answer)"), &a.answer_totals, &case["answer_totals"], token);
                let sum: f64 = a.answer_tokens().iter().map(|t| f64::from(t.logprob)).sum();
                assert_eq!(sum, a.answer_totals.sum_logprob, "{what}: answer sum over answer tokens only");
                // Scoring the answer alone (the context only fills the cache) gives the
                // same answer tokens and totals.
                let only = score_answer_only(&dev, &model, tok, &a.context, &a.answer).unwrap();
                assert_eq!(only.text.first_scored, a.answer_start, "{what}: answer-only starts at the answer");
                assert_eq!(only.text.tokens.len(), a.answer_tokens().len(), "{what}: answer-only token count");
                check(
                    &format!("{what}: answer-only logprobs"),
                    &column(&only.text.tokens, |t| t.logprob),
                    &column(a.answer_tokens(), |t| t.logprob),
                    token,
                );
                check_totals(&format!("{what} (answer only)"), &only.answer_totals, &case["answer_totals"], token);
            }
        }
    }
    eprintln!("tiny checkpoints, {kv} KV cache: largest per-token log-prob difference {worst:.3e} nats (bound {:e})", token.abs);
}

#[test]
fn qwen2_5_answer_matches_transformers() {
    let Some(path) = real_model_path("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else { return };
    let g = golden("score_qwen2.5-coder-0.5b-q4_k_m.json");
    let dev = test_device();
    let (mut model, tok) = gguf_model(&dev, &path);
    for kv in [KvDtype::F32, KvDtype::F16] {
        model.set_kv_dtype(kv);
        let token = if kv == KvDtype::F32 { QWEN_TOKEN } else { QWEN_TOKEN_F16_KV };
    for case in g["cases"].as_array().unwrap() {
        let what = format!("qwen2.5/{} ({kv} KV cache)", case["name"].as_str().unwrap());
        let text = match case.get("given") {
            None => score_text(&dev, &model, &tok, case["text"].as_str().unwrap()).unwrap(),
            Some(given) => {
                let a = score_answer(
                    &dev,
                    &model,
                    &tok,
                    given["context"].as_str().unwrap(),
                    given["answer"].as_str().unwrap(),
                )
                .unwrap();
                let want = case["answer_logprob"].as_f64().unwrap();
                let got = a.answer_totals.sum_logprob;
                eprintln!(
                    "{what}: answer_logprob kiln {got:.6} transformers {want:.6} (|diff| {:.2e})",
                    (got - want).abs()
                );
                assert!((got - want).abs() <= QWEN_ANSWER, "{what}: answer_logprob {got} vs {want}");
                assert_eq!(a.answer_start as u64, case["answer_start"].as_u64().unwrap());
                assert!(a.answer_totals.greedy, "{what}: \" Paris.\" is the greedy answer");
                a.text
            }
        };
        assert_eq!(text.ids, ids(&case["ids"]), "{what}: ids");
        check(
            &format!("{what}: logprobs"),
            &column(&text.tokens, |t| t.logprob),
            &floats(&case["token_logprobs"]),
            token,
        );
        check(
            &format!("{what}: entropies"),
            &column(&text.tokens, |t| t.entropy),
            &floats(&case["entropies"]),
            token,
        );
    }
    }
}

#[test]
fn with_a_bos_every_text_token_is_scored() {
    let Some(path) = real_model_path("smollm2-135m-instruct-q4_1.gguf") else { return };
    let dev = test_device();
    let file = GgufFile::open(&path).unwrap();
    let model = Model::load_gguf(&dev, &file).unwrap();
    let text = "Hello world";

    // SmolLM2's GGUF says add_bos_token = false: no BOS, the first token is context only.
    let tok = gguf_tokenizer(&file);
    let plain = tok.encode(text).unwrap();
    let s = score_text(&dev, &model, &tok, text).unwrap();
    assert_eq!(s.ids, plain, "no BOS");
    assert_eq!(s.first_scored, 1);
    assert_eq!(s.tokens.len(), plain.len() - 1, "the first text token is not scored");

    // The same vocabulary from a file that asks for its BOS <|im_start|>.
    let spec = GgufTokenizerSpec { add_bos: Some(true), ..GgufTokenizerSpec::from_gguf(&file).unwrap() };
    let tok = build(&spec).unwrap();
    let s = score_text(&dev, &model, &tok, text).unwrap();
    assert_eq!(s.ids.len(), plain.len() + 1, "BOS then the text");
    assert_eq!(s.ids[0], spec.bos.unwrap());
    assert_eq!(&s.ids[1..], plain.as_slice());
    assert_eq!(s.first_scored, 1);
    assert_eq!(s.tokens.len(), plain.len(), "every text token scored");
    assert_eq!(s.totals.bytes, text.len());
}

/// The message of an expected error.
fn err<T>(r: Result<T, kiln_sampler::SamplerError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_parameters_are_clear_errors() {
    let (dev, model, dir) = load("gpt2-tiny-f32");
    let tok = dir.tokenizer().unwrap();
    let e = err(score_text(&dev, &model, tok, ""));
    assert!(e.contains("invalid text") && e.contains("empty"), "{e}");
    let e = err(score_text(&dev, &model, tok, "a"));
    assert!(e.contains("invalid text") && e.contains("single token"), "{e}");
    let long = "word ".repeat(200); // > 128 positions (n_positions of gpt2-tiny)
    let e = err(score_text(&dev, &model, tok, &long));
    assert!(e.contains("invalid text") && e.contains("exceed the model's context of 128"), "{e}");
    let e = err(score_answer(&dev, &model, tok, "The capital", ""));
    assert!(e.contains("invalid answer") && e.contains("empty"), "{e}");
    let e = err(score_answer(&dev, &model, tok, "", "Paris"));
    assert!(e.contains("invalid context") && e.contains("no BOS"), "{e}");
    let e = err(score_answer(&dev, &model, tok, "a", &long));
    assert!(e.contains("invalid context + answer") && e.contains("exceed"), "{e}");
    let e = err(score_ids(&dev, &model, &[1, 2, 3], 0));
    assert!(e.contains("invalid first_scored"), "{e}");
    let e = err(score_ids(&dev, &model, &[1, 2, 3], 3));
    assert!(e.contains("invalid first_scored"), "{e}");
    let e = err(score_ids(&dev, &model, &[1, 5000, 3], 1));
    assert!(e.contains("token id 5000 at position 1 is out of range"), "{e}");
    let e = err(score_ids_in_chunks(&dev, &model, &[1, 2, 3], 1, 0));
    assert!(e.contains("invalid chunk_rows"), "{e}");
}
