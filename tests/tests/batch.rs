//! Continuous batching's model step: a decode step over several sequences at once (each
//! in its own slot of one KV cache, at its own position) gives each sequence the logits
//! it gets alone, with f16 and f32 caches; slots are copied between caches (beam search);
//! bad batches are clear errors.

mod common;

use kiln_kernels::testing::test_device;
use kiln_kernels::tolerance::{compare, Tol};
use kiln_model::{KvCache, KvDtype, Model};
use kiln_tensor::{Device, Recorder, Tensor};

use common::tiny_model;

/// Batched and single-sequence decode run the same kernels on the same rows except the
/// matvec, which reads several rows at once: f32 sums in a different order.
const BATCH_VS_ALONE: Tol = Tol { abs: 1e-4, rel: 1e-4 };

fn forward(dev: &Device, model: &Model, ids: &[u32], cache: &mut KvCache) -> Vec<f32> {
    let input = Tensor::from_slice(dev, ids, &[ids.len()]).unwrap();
    let mut rec = Recorder::new(dev);
    let logits = model.forward(&mut rec, &input, cache, false).unwrap();
    rec.submit().unwrap();
    logits.to_vec_f32().unwrap()
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap() as u32
}

#[test]
fn batched_decode_equals_each_sequence_alone() {
    let dev = test_device();
    // gemma3: each row's sliding window (4) starts at its own position.
    for name in ["gpt2-tiny-f32", "qwen2-tiny-tied-f32", "llama-tiny-f32", "qwen2-tiny-untied-bf16", "gemma3-tiny-f32"] {
        for dtype in [KvDtype::F16, KvDtype::F32] {
            check_batch(&dev, name, dtype);
        }
    }
}

fn check_batch(dev: &Device, name: &str, dtype: KvDtype) {
    let (mut model, _) = tiny_model(dev, name);
    model.set_kv_dtype(dtype);
    let vocab = model.config().vocab_size;
    let prompts: [&[u32]; 3] = [&[5, 6, 7], &[10, 11, 12, 13, 14, 15, 16], &[42]];
    let steps = 4;
    // Alone: prefill then greedy decode, one sequence at a time, each in its own cache.
    let mut alone = Vec::new();
    for p in prompts {
        let mut cache = model.new_cache(dev, p.len() + steps).unwrap();
        assert_eq!(cache.dtype(), dtype);
        let mut next = argmax(&forward(dev, &model, p, &mut cache));
        let mut rows = Vec::new();
        for _ in 0..steps {
            let logits = forward(dev, &model, &[next], &mut cache);
            next = argmax(&logits);
            rows.push(logits);
        }
        alone.push(rows);
    }
    // Batched: one 4-slot cache; the prompts prefilled into slots 2, 0 and 3, then every
    // decode step for all three at once (rows out of slot order).
    let slots = [2usize, 0, 3];
    let capacity = prompts.iter().map(|p| p.len()).max().unwrap() + steps;
    let mut cache = model.new_cache_with(dev, 4, capacity, dtype).unwrap();
    let mut next: Vec<u32> = Vec::new();
    for (p, &slot) in prompts.iter().zip(&slots) {
        let input = Tensor::from_slice(dev, p, &[p.len()]).unwrap();
        let mut rec = Recorder::new(dev);
        let logits = model.forward_slot(&mut rec, &input, &mut cache, slot, false).unwrap();
        rec.submit().unwrap();
        next.push(argmax(&logits.to_vec_f32().unwrap()));
    }
    for step in 0..steps {
        let ids = Tensor::from_slice(dev, &next, &[next.len()]).unwrap();
        let mut rec = Recorder::new(dev);
        let logits = model.forward_batch(&mut rec, &ids, &mut cache, &slots).unwrap();
        rec.submit().unwrap();
        assert_eq!(logits.shape(), [3, vocab]);
        let logits = logits.to_vec_f32().unwrap();
        for (b, rows) in alone.iter().enumerate() {
            let got = &logits[b * vocab..(b + 1) * vocab];
            if let Err(msg) =
                compare(&format!("{name} {dtype} cache, sequence {b} step {step}"), got, &rows[step], BATCH_VS_ALONE)
            {
                panic!("{msg}");
            }
            next[b] = argmax(got);
        }
    }
    for (b, &slot) in slots.iter().enumerate() {
        assert_eq!(cache.len(slot), prompts[b].len() + steps);
    }
    assert_eq!(cache.len(1), 0);
}

#[test]
fn a_copied_slot_continues_like_the_original() {
    // Beam search copies a parent's slot into a child's slot of another cache: decoding on
    // from the copy gives the logits decoding on from the original gives.
    let dev = test_device();
    let (model, _) = tiny_model(&dev, "qwen2-tiny-tied-f32");
    let prompt = [3u32, 1, 4, 1, 5];
    let mut a = model.new_cache_with(&dev, 2, 8, KvDtype::F16).unwrap();
    let mut b = model.new_cache_with(&dev, 3, 8, KvDtype::F16).unwrap();
    let input = Tensor::from_slice(&dev, &prompt, &[prompt.len()]).unwrap();
    let mut rec = Recorder::new(&dev);
    model.forward_slot(&mut rec, &input, &mut a, 1, false).unwrap();
    rec.submit().unwrap();
    let mut rec = Recorder::new(&dev);
    b.copy_slot_from(&mut rec, &a, 1, 2).unwrap();
    rec.submit().unwrap();
    assert_eq!(b.len(2), prompt.len());
    let step = |cache: &mut KvCache, slot: usize| {
        let ids = Tensor::from_slice(&dev, &[9u32], &[1]).unwrap();
        let mut rec = Recorder::new(&dev);
        let logits = model.forward_slot(&mut rec, &ids, cache, slot, false).unwrap();
        rec.submit().unwrap();
        logits.to_vec_f32().unwrap()
    };
    let (from_a, from_b) = (step(&mut a, 1), step(&mut b, 2));
    assert_eq!(from_a, from_b, "same kernels, same cache contents: bit-identical logits");
    // Different shapes or dtypes are refused.
    let c = model.new_cache_with(&dev, 3, 8, KvDtype::F32).unwrap();
    let err = b.copy_slot_from(&mut Recorder::new(&dev), &c, 0, 0).unwrap_err().to_string();
    assert!(err.contains("same layers, slot shape and dtype"), "{err}");
}

#[test]
fn bad_batches_are_clear_errors() {
    let dev = test_device();
    let (model, _) = tiny_model(&dev, "qwen2-tiny-tied-f32");
    let mut cache = model.new_cache_with(&dev, 2, 4, KvDtype::F16).unwrap();
    let mut rec = Recorder::new(&dev);
    let ids = Tensor::from_slice(&dev, &[1u32, 2, 3], &[3]).unwrap();
    let err = model.forward_batch(&mut rec, &ids, &mut cache, &[0, 1]).unwrap_err().to_string();
    assert!(err.contains("one id per sequence"), "{err}");
    let ids = Tensor::from_slice(&dev, &[1u32, 2], &[2]).unwrap();
    let err = model.forward_batch(&mut rec, &ids, &mut cache, &[1, 1]).unwrap_err().to_string();
    assert!(err.contains("slot 1 appears twice"), "{err}");
    let err = model.forward_batch(&mut rec, &ids, &mut cache, &[0, 2]).unwrap_err().to_string();
    assert!(err.contains("slot 2 of a cache with 2 slots"), "{err}");
    let long = Tensor::from_slice(&dev, &[1u32; 5], &[5]).unwrap();
    let err = model.forward_slot(&mut rec, &long, &mut cache, 1, false).unwrap_err().to_string();
    assert!(err.contains("exceed the KV cache of 4 positions"), "{err}");
    let err = model.new_cache_with(&dev, 0, 4, KvDtype::F16).err().unwrap().to_string();
    assert!(err.contains("slots"), "{err}");
    rec.submit().unwrap();
}

/// A prompt prefilled in chunks (7 positions, so chunks run through the matvec and the
/// last is partial) gives the logits of one pass (which runs the tiled matmul) at every
/// position, and the same greedy continuation.
#[test]
fn chunked_prefill_equals_one_pass() {
    let dev = test_device();
    for name in ["gpt2-tiny-f32", "qwen2-tiny-tied-f32", "llama-tiny-f32", "gemma3-tiny-f32"] {
        let (mut model, _) = tiny_model(&dev, name);
        model.set_kv_dtype(KvDtype::F32);
        let vocab = model.config().vocab_size as u32;
        let prompt: Vec<u32> = (0..40u32).map(|i| (i * 7 + 3) % vocab).collect();
        let ids = Tensor::from_slice(&dev, &prompt, &[prompt.len()]).unwrap();
        let mut runs = Vec::new();
        for chunk in [prompt.len(), 7] {
            let mut cache = model.new_cache(&dev, prompt.len() + 4).unwrap();
            let mut rec = Recorder::new(&dev);
            let logits = model.forward_chunked(&mut rec, &ids, &mut cache, 0, true, chunk).unwrap();
            rec.submit().unwrap();
            assert_eq!(logits.shape(), [prompt.len(), vocab as usize]);
            let logits = logits.to_vec_f32().unwrap();
            let mut next = argmax(&logits[logits.len() - vocab as usize..]);
            let mut tokens = vec![next];
            for _ in 0..4 {
                next = argmax(&forward(&dev, &model, &[next], &mut cache));
                tokens.push(next);
            }
            runs.push((logits, tokens));
        }
        let what = format!("{name}: chunks of 7 vs one pass");
        let report = compare(&what, &runs[1].0, &runs[0].0, BATCH_VS_ALONE).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{what}: {report:?}");
        assert_eq!(runs[1].1, runs[0].1, "{what}: greedy tokens");
    }
}
