//! Hook points (kiln_model::hooks, docs/hooks.md):
//! - captures equal transformers' activations (goldens from
//!   tests/fixtures/make_hook_goldens.py) at every point of every tiny family, through the
//!   fused path (embed, resid_mid, resid_post) and the unfused one a hook on attn_in,
//!   attn_out, mlp_out or final_norm switches to; and on Qwen2.5-0.5B Q4_K_M (gated like
//!   gguf_models.rs);
//! - an empty hook set, and captures at points no fusion hides, add no dispatch;
//! - seed 002's lm_head hook (" coffee" = row max + 10) on the tiny GPT-2: the edited
//!   logit is max + 10 and the argmax, every other logit keeps its bits;
//! - steering, scaling and head zeroing do what they say; a chunked prefill captures the
//!   same rows; bad names, blocks, widths and heads are clear errors.

mod common;

use kiln_kernels::testing::test_device;
use kiln_kernels::tolerance::{self, Tol};
use kiln_model::hooks::{Capture, Edit, Hooks, LogitBase, LogitEdit, Point};
use kiln_model::{KvDtype, Model};
use kiln_tensor::{Device, Recorder, Tensor};
use serde_json::Value;

use common::{fixtures, golden, ids, real_model_path, tiny_model, TINY};

/// Tiny checkpoints vs transformers (f32 KV cache; f16/bf16 weights are dequantized
/// exactly by both): only summation order differs. Activations are O(1)-O(10); the
/// largest difference measured is 5.8e-6 for GPT-2/Qwen2/Llama/Qwen3, and 6.3e-5 at
/// 3.8 for Gemma 3 (√hidden embedding scale, RMSNorms with 1 + w after each block part),
/// hence the relative part.
const TINY_POINTS: Tol = Tol { abs: 5e-5, rel: 3e-5 };
/// Qwen2.5-0.5B Q4_K_M (both dequantize the same blocks, f32 KV cache), through 24
/// layers; its residual stream holds a few entries in the hundreds. Measured: 1.9e-4.
const QWEN_POINTS: Tol = Tol { abs: 1e-3, rel: 1e-4 };

/// The golden tensor `name` `[seq, width]` of `hooks_<model>.safetensors`.
fn reference(g: &Value, name: &str) -> Vec<f32> {
    let path = fixtures().join("goldens").join(g["file"].as_str().unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = file.tensor(name).unwrap_or_else(|e| panic!("{name} in {}: {e}", path.display()));
    t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// One prefill of `prompt` (all logits) in `chunk`-position passes with `hooks` set;
/// returns the captures and the dispatches recorded.
fn run(dev: &Device, model: &mut Model, prompt: &[u32], hooks: Hooks, chunk: usize) -> (Vec<Capture>, u64, Vec<f32>) {
    model.set_hooks(hooks).unwrap();
    let mut cache = model.new_cache(dev, prompt.len()).unwrap();
    let input = Tensor::from_slice(dev, prompt, &[prompt.len()]).unwrap();
    let mut rec = Recorder::new(dev);
    let logits = model.forward_chunked(&mut rec, &input, &mut cache, 0, true, chunk).unwrap();
    let dispatches = rec.dispatch_count();
    rec.submit().unwrap();
    let captures = model.take_captures().unwrap();
    (captures, dispatches, logits.to_vec_f32().unwrap())
}

fn capture_all(points: &[Point]) -> Hooks {
    let mut h = Hooks::new();
    for &p in points {
        h.capture(p);
    }
    h
}

fn check_against(what: &str, g: &Value, captures: &[Capture], tol: Tol) -> f32 {
    let seq = g["prompt_ids"].as_array().unwrap().len();
    let mut worst = 0f32;
    for c in captures {
        let name = c.point.to_string();
        assert_eq!(c.shape[0], seq, "{what} {name}: rows");
        let want = reference(g, &name);
        let report = tolerance::compare(&format!("{what} {name}"), &c.data, &want, tol).unwrap_or_else(|m| panic!("{m}"));
        worst = worst.max(report.max_abs);
    }
    worst
}

#[test]
fn captures_match_transformers_on_every_tiny_family() {
    let dev = test_device();
    for name in TINY {
        let g = golden(&format!("hooks_{name}.json"));
        let (mut model, _) = tiny_model(&dev, name);
        model.set_kv_dtype(KvDtype::F32);
        let prompt = ids(&g["prompt_ids"]);
        let n = model.config().n_layers;
        // Points no fusion hides: the fused pass, captured as it runs.
        let fused_points: Vec<Point> =
            Point::all(n).into_iter().filter(|p| matches!(p, Point::Embed | Point::ResidMid(_) | Point::ResidPost(_))).collect();
        let (captures, _, _) = run(&dev, &mut model, &prompt, capture_all(&fused_points), 256);
        assert_eq!(captures.len(), fused_points.len());
        let fused = check_against(&format!("{name} fused"), &g, &captures, TINY_POINTS);
        // Every point (logits aside): attn_in, attn_out, mlp_out and final_norm unfused.
        let all: Vec<Point> = Point::all(n).into_iter().filter(|&p| p != Point::Logits).collect();
        let (captures, _, _) = run(&dev, &mut model, &prompt, capture_all(&all), 256);
        let unfused = check_against(&format!("{name} all points"), &g, &captures, TINY_POINTS);
        eprintln!("{name}: max |kiln - transformers| {fused:.2e} (embed, resid_mid, resid_post), {unfused:.2e} (all points)");
    }
}

#[test]
fn captures_match_transformers_on_qwen25_q4_k_m() {
    let Some(path) = real_model_path("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else { return };
    let dev = test_device();
    let g = golden("hooks_qwen2.5-coder-0.5b-q4_k_m.json");
    let (mut model, tok) = common::gguf_model(&dev, &path);
    model.set_kv_dtype(KvDtype::F32);
    let prompt = ids(&g["prompt_ids"]);
    assert_eq!(tok.encode(g["prompt"].as_str().unwrap()).unwrap(), prompt, "prompt ids");
    let points: Vec<Point> = g["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Point::parse(p.as_str().unwrap(), model.config().n_layers, "point").unwrap())
        .collect();
    let (captures, _, _) = run(&dev, &mut model, &prompt, capture_all(&points), 256);
    assert_eq!(captures.len(), points.len());
    let worst = check_against("qwen2.5 Q4_K_M", &g, &captures, QWEN_POINTS);
    eprintln!("qwen2.5-coder-0.5b Q4_K_M: max |kiln - transformers| {worst:.2e}");
}

/// Dispatches of one forward pass of `ids` with `hooks`.
fn dispatches(dev: &Device, model: &mut Model, ids: &[u32], hooks: Option<Hooks>) -> u64 {
    if let Some(h) = hooks {
        model.set_hooks(h).unwrap();
    }
    let mut cache = model.new_cache(dev, ids.len()).unwrap();
    let input = Tensor::from_slice(dev, ids, &[ids.len()]).unwrap();
    let mut rec = Recorder::new(dev);
    model.forward(&mut rec, &input, &mut cache, false).unwrap();
    let n = rec.dispatch_count();
    rec.submit().unwrap();
    model.take_captures().unwrap();
    n
}

#[test]
fn empty_hooks_and_unhidden_captures_add_no_dispatch() {
    let dev = test_device();
    for name in ["gpt2-tiny-f32", "qwen3-tiny-f32"] {
        for ids in [&[5u32][..], &[5, 6, 7, 8, 9]] {
            // A model no hook was ever set on.
            let (mut model, _) = tiny_model(&dev, name);
            let plain = dispatches(&dev, &mut model, ids, None);
            let empty = dispatches(&dev, &mut model, ids, Some(Hooks::new()));
            assert_eq!(plain, empty, "{name} seq {}: an empty hook set changed the dispatches", ids.len());
            let mut h = Hooks::new();
            h.capture(Point::Embed).capture(Point::ResidPost(1)).capture(Point::ResidMid(0)).capture(Point::Logits);
            let captured = dispatches(&dev, &mut model, ids, Some(h));
            assert_eq!(plain, captured, "{name} seq {}: captures at unhidden points added dispatches", ids.len());
            // attn_in hides in the fused q/k/v matvec: capturing it runs the norm apart.
            let mut h = Hooks::new();
            h.capture(Point::AttnIn(0));
            let unfused = dispatches(&dev, &mut model, ids, Some(h));
            assert!(unfused > plain, "{name}: attn_in capture should run the norm on its own ({unfused} vs {plain})");
            eprintln!("{name} seq {}: {plain} dispatches plain and with an empty set or unhidden captures, {unfused} capturing attn_in", ids.len());
        }
    }
}

/// Seed 002: `output[0, -1, coffee] = output[0, -1, argmax] + 10` in a forward hook on
/// GPT-2's lm_head, with coffee = tokenizer.encode(" coffee")[0].
#[test]
fn seed_002_coffee_logit_is_max_plus_ten() {
    let dev = test_device();
    let (mut model, dir) = tiny_model(&dev, "gpt2-tiny-f32");
    let tok = dir.tokenizer().unwrap();
    let prompt = tok.encode("I like oat milk in my").unwrap();
    let coffee = tok.encode_with_special(" coffee", false).unwrap()[0];
    let (_, _, plain) = run(&dev, &mut model, &prompt, Hooks::new(), 256);
    let mut h = Hooks::new();
    h.edit(Point::Logits, Edit::Logits(vec![LogitEdit { id: coffee, base: LogitBase::RowMax, value: 10.0, raise_only: false }]));
    let (_, _, edited) = run(&dev, &mut model, &prompt, h, 256);
    let vocab = model.config().vocab_size;
    for row in 0..prompt.len() {
        let (p, e) = (&plain[row * vocab..(row + 1) * vocab], &edited[row * vocab..(row + 1) * vocab]);
        let max = p.iter().copied().fold(f32::MIN, f32::max);
        assert_eq!(e[coffee as usize], max + 10.0, "row {row}");
        let argmax = (0..vocab).fold(0, |b, i| if e[i] > e[b] { i } else { b });
        assert_eq!(argmax, coffee as usize, "row {row}");
        for i in (0..vocab).filter(|&i| i != coffee as usize) {
            assert_eq!(p[i].to_bits(), e[i].to_bits(), "row {row} logit {i} moved");
        }
    }
}

fn point_data(c: &[Capture], p: Point) -> Vec<f32> {
    c.iter().find(|c| c.point == p).unwrap().data.clone()
}

#[test]
fn steering_scaling_and_head_zeroing() {
    let dev = test_device();
    for name in ["gpt2-tiny-f32", "qwen2-tiny-tied-f32"] {
        let (mut model, _) = tiny_model(&dev, name);
        model.set_kv_dtype(KvDtype::F32);
        let prompt = [3u32, 14, 15, 92, 65, 35];
        let (hidden, heads) = (model.config().hidden_size, model.config().n_heads);
        let watched = [Point::Embed, Point::ResidPost(0), Point::AttnOut(1)];
        let (plain, _, _) = run(&dev, &mut model, &prompt, capture_all(&watched), 256);

        // Steering at resid_post 0: the captured tensor there is plain + 2.5·v.
        let v: Vec<f32> = (0..hidden).map(|j| ((j * 7 % 11) as f32 - 5.0) * 0.1).collect();
        let mut h = capture_all(&watched);
        h.edit(Point::ResidPost(0), Edit::Add { vector: v.clone(), scale: 2.5 });
        let (steered, _, _) = run(&dev, &mut model, &prompt, h, 256);
        let want: Vec<f32> = point_data(&plain, Point::ResidPost(0)).iter().enumerate().map(|(i, x)| x + 2.5 * v[i % hidden]).collect();
        tolerance::compare("steer", &point_data(&steered, Point::ResidPost(0)), &want, tolerance::ELEMENTWISE).unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(point_data(&steered, Point::Embed), point_data(&plain, Point::Embed), "{name}: steering moved an earlier point");

        // Scaling embed by 0.5.
        let mut h = capture_all(&watched);
        h.edit(Point::Embed, Edit::Scale(0.5));
        let (scaled, _, _) = run(&dev, &mut model, &prompt, h, 256);
        let want: Vec<f32> = point_data(&plain, Point::Embed).iter().map(|x| 0.5 * x).collect();
        assert_eq!(point_data(&scaled, Point::Embed), want, "{name}: scale");

        // Head zeroing is linear in the o_proj input: zeroing head 0, plus zeroing every
        // other head, gives the plain attn_out (plus o_proj's bias once more, if any).
        let zero = |heads: Vec<usize>| {
            let mut h = capture_all(&watched);
            h.edit(Point::AttnOut(1), Edit::ZeroHeads(heads));
            h
        };
        let (a, _, _) = run(&dev, &mut model, &prompt, zero(vec![0]), 256);
        let (b, _, _) = run(&dev, &mut model, &prompt, zero((1..heads).collect()), 256);
        let (none, _, _) = run(&dev, &mut model, &prompt, zero((0..heads).collect()), 256);
        let bias = point_data(&none, Point::AttnOut(1)); // o_proj(0) = its bias
        let sum: Vec<f32> = point_data(&a, Point::AttnOut(1))
            .iter()
            .zip(point_data(&b, Point::AttnOut(1)))
            .zip(&bias)
            .map(|((x, y), z)| x + y - z)
            .collect();
        tolerance::compare(&format!("{name} heads"), &sum, &point_data(&plain, Point::AttnOut(1)), tolerance::MATMUL_F32)
            .unwrap_or_else(|m| panic!("{m}"));
        assert_ne!(point_data(&a, Point::AttnOut(1)), point_data(&plain, Point::AttnOut(1)), "{name}: zeroing head 0 changed nothing");
        if name.starts_with("qwen2") {
            assert!(bias.iter().all(|&x| x == 0.0), "{name}: o_proj has no bias, all heads zeroed must give 0");
        }
    }
}

#[test]
fn chunked_prefill_captures_every_row() {
    let dev = test_device();
    let (mut model, _) = tiny_model(&dev, "llama-tiny-f32");
    model.set_kv_dtype(KvDtype::F32);
    let prompt: Vec<u32> = (0..13).map(|i| 7 + 3 * i).collect();
    let points = [Point::Embed, Point::ResidPost(1), Point::FinalNorm];
    let (one, _, _) = run(&dev, &mut model, &prompt, capture_all(&points), 256);
    let (chunked, _, _) = run(&dev, &mut model, &prompt, capture_all(&points), 5);
    for (a, b) in one.iter().zip(&chunked) {
        assert_eq!(b.shape, [13, model.config().hidden_size], "{}", a.point);
        tolerance::compare(&format!("chunked {}", a.point), &b.data, &a.data, TINY_POINTS).unwrap_or_else(|m| panic!("{m}"));
    }
}

#[test]
fn bad_points_and_edits_are_clear_errors() {
    let err = |r: kiln_model::Result<Point>| r.unwrap_err().to_string();
    assert!(err(Point::parse("blocks.2.resid_post", 2, "--point")).contains("--point") && err(Point::parse("blocks.2.resid_post", 2, "--point")).contains("block 2 does not exist"));
    assert!(err(Point::parse("blocks.x.resid_post", 2, "--point")).contains("not a number"));
    assert!(err(Point::parse("blocks.0.resid", 2, "--point")).contains("unknown block point"));
    assert!(err(Point::parse("lm_head", 2, "--steer")).contains("unknown hook point \"lm_head\""));
    for p in Point::all(3) {
        assert_eq!(Point::parse(&p.to_string(), 3, "p").unwrap(), p);
    }

    let dev = test_device();
    let (mut model, _) = tiny_model(&dev, "gpt2-tiny-f32");
    let c = model.config().clone();
    let set = |model: &mut Model, point: Point, edit: Edit| {
        let mut h = Hooks::new();
        h.edit(point, edit);
        model.set_hooks(h).unwrap_err().to_string()
    };
    let e = set(&mut model, Point::ResidPost(0), Edit::Add { vector: vec![1.0; c.hidden_size + 1], scale: 1.0 });
    assert!(e.contains("blocks.0.resid_post") && e.contains(&format!("{} values", c.hidden_size + 1)), "{e}");
    let e = set(&mut model, Point::AttnOut(0), Edit::ZeroHeads(vec![c.n_heads]));
    assert!(e.contains(&format!("head {} does not exist", c.n_heads)), "{e}");
    let e = set(&mut model, Point::ResidPost(0), Edit::ZeroHeads(vec![0]));
    assert!(e.contains("only at blocks.{i}.attn_out"), "{e}");
    let e = set(&mut model, Point::Logits, Edit::Logits(vec![LogitEdit { id: c.vocab_size as u32, base: LogitBase::Zero, value: 1.0, raise_only: false }]));
    assert!(e.contains("past the vocabulary"), "{e}");
    let e = set(&mut model, Point::Embed, Edit::Logits(vec![]));
    assert!(e.contains("only at `logits`"), "{e}");
    let e = set(&mut model, Point::ResidPost(9), Edit::Scale(2.0));
    assert!(e.contains("block 9 does not exist"), "{e}");
}
