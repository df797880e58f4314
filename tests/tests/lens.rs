//! The logit lens (kiln_sampler::lens, docs/lens.md) against transformers computed by hand
//! (tests/fixtures/make_lens_goldens.py: lm_head(norm(hidden_states[i + 1])), the last
//! block = the model's logits), on every tiny family and on Qwen2.5-0.5B and Gemma 3 270M
//! Q4_K_M (gated like gguf_models.rs; three blocks each): every block × position's top-5 log-probs within a
//! stated tolerance, and the same ids wherever transformers' log-probs are further apart
//! than the tolerance allows a swap.

mod common;

use kiln_kernels::testing::test_device;
use kiln_model::KvDtype;
use kiln_model::hooks::Hooks;
use kiln_sampler::lens::{logit_lens, logit_lens_with, Lens};
use serde_json::Value;

use common::{golden, ids, real_model_path, tiny_model, TINY};

/// Tiny checkpoints (f32 KV cache): logits are O(1) and differ from transformers only by
/// summation order. Measured: 1.5e-5 at most (the bf16 Qwen2).
const TINY_LOGPROB: f32 = 1e-4;
/// Qwen2.5 / Gemma 3 Q4_K_M (both engines dequantize the same blocks; f32 KV cache), 24 and
/// 18 blocks, vocabularies of 152k and 262k. Measured over every block: 1.2e-4 (Qwen2.5),
/// 1.4e-4 (Gemma 3).
const REAL_LOGPROB: f32 = 2e-3;

/// Compare `lens` to the golden cell by cell; returns the largest log-prob difference.
fn check_against(what: &str, g: &Value, lens: &Lens, tol: f32) -> f32 {
    let golden_rows = g["lens"].as_array().unwrap();
    assert_eq!(lens.layers(), lens.blocks.len(), "{what}: blocks");
    let mut worst = 0f32;
    for (r, &i) in lens.blocks.iter().enumerate() {
        let row = golden_rows[i].as_array().unwrap();
        assert_eq!(lens.positions(), row.len(), "{what}: positions");
        for (t, cell) in row.iter().enumerate() {
            let want_ids = ids(&cell["ids"]);
            let want: Vec<f32> = cell["logprobs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let got = &lens.top[r][t];
            assert_eq!(got.len(), want.len(), "{what}: block {i} position {t}: top size");
            for (j, (&(id, lp), &w)) in got.iter().zip(&want).enumerate() {
                let err = (lp - w).abs();
                worst = worst.max(err);
                assert!(
                    err <= tol,
                    "{what}: block {i} position {t} rank {j}: log-prob {lp} vs transformers {w} (|diff| {err:.2e} > {tol:.1e})"
                );
                // An id must match where no neighbour is within reach of a swap (the last
                // rank's lower neighbour is not in the golden, so it is not checked).
                let apart = |a: f32, b: f32| (a - b).abs() > 2.0 * tol;
                let clear = j + 1 < want.len() && apart(w, want[j + 1]) && (j == 0 || apart(want[j - 1], w));
                if clear {
                    assert_eq!(id, want_ids[j], "{what}: block {i} position {t} rank {j}: id {id} vs transformers {}", want_ids[j]);
                }
            }
        }
    }
    worst
}

fn top(g: &Value) -> usize {
    g["top"].as_u64().unwrap() as usize
}

#[test]
fn lens_matches_transformers_on_every_tiny_family() {
    let dev = test_device();
    for name in TINY {
        let g = golden(&format!("lens_{name}.json"));
        let (mut model, _) = tiny_model(&dev, name);
        model.set_kv_dtype(KvDtype::F32);
        let lens = logit_lens(&dev, &model, &ids(&g["prompt_ids"]), top(&g)).unwrap();
        assert_eq!(lens.blocks, (0..model.config().n_layers).collect::<Vec<_>>());
        let worst = check_against(name, &g, &lens, TINY_LOGPROB);
        eprintln!("{name}: lens max |kiln - transformers| {worst:.2e}");
    }
}

/// The real models' lens at their first, middle and last blocks (each block's 13-14 rows
/// through a 152k/262k-row LM head take lavapipe about 10 s; the tiny families check
/// every block). The blocks come out in the order asked.
fn real(file: &str, golden_name: &str) {
    let Some(path) = real_model_path(file) else { return };
    let dev = test_device();
    let g = golden(golden_name);
    let (mut model, tok) = common::gguf_model(&dev, &path);
    model.set_kv_dtype(KvDtype::F32);
    assert_eq!(tok.encode_with_special(g["prompt"].as_str().unwrap(), true).unwrap(), ids(&g["prompt_ids"]), "prompt ids");
    let n = model.config().n_layers;
    let blocks = [n - 1, 0, n / 2];
    let lens = logit_lens_with(&dev, &model, &ids(&g["prompt_ids"]), top(&g), &blocks, Hooks::new()).unwrap();
    assert_eq!(lens.blocks, blocks);
    let worst = check_against(file, &g, &lens, REAL_LOGPROB);
    let answer = tok.decode(&[lens.top[0][lens.positions() - 1][0].0], false).unwrap();
    eprintln!("{file}: lens max |kiln - transformers| {worst:.2e}; last block, last position: {answer:?}");
}

#[test]
fn lens_matches_transformers_on_qwen25_q4_k_m() {
    real("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "lens_qwen2.5-coder-0.5b-q4_k_m.json");
}

#[test]
fn lens_matches_transformers_on_gemma3_270m_q4_k_m() {
    real("gemma-3-270m-q4_k_m.gguf", "lens_gemma3-270m-q4_k_m.json");
}

#[test]
fn bad_lens_requests_are_clear_errors() {
    let dev = test_device();
    let (model, _) = tiny_model(&dev, "qwen2-tiny-tied-f32");
    let vocab = model.config().vocab_size as u32;
    for (ids, top, needle) in [
        (vec![1u32, 2], 0, "top"),
        (vec![1, 2], 33, "top"),
        (vec![], 5, "prompt"),
        (vec![1, vocab], 5, "vocab"),
    ] {
        let err = logit_lens(&dev, &model, &ids, top).unwrap_err().to_string();
        assert!(err.contains(needle), "ids {ids:?} top {top}: {err}");
    }
    let n = model.config().n_layers;
    for (blocks, needle) in [(vec![], "at least one"), (vec![n], "does not exist"), (vec![0, 0], "twice")] {
        let err = logit_lens_with(&dev, &model, &[1, 2], 5, &blocks, Hooks::new()).unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains("blocks"), "blocks {blocks:?}: {err}");
    }
}
