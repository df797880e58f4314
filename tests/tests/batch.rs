//! Continuous batching's model step: a decode step over several sequences at once (each
//! with its own KV cache and position) gives each sequence the logits it gets alone.

mod common;


use kiln_kernels::testing::test_device;
use kiln_kernels::tolerance::{compare, Tol};
use kiln_model::{KvCache, Model};
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
    for name in ["gpt2-tiny-f32", "qwen2-tiny-tied-f32", "llama-tiny-f32", "qwen2-tiny-untied-bf16"] {
        let (model, _) = tiny_model(&dev, name);
        let vocab = model.config().vocab_size;
        let prompts: [&[u32]; 3] = [&[5, 6, 7], &[10, 11, 12, 13, 14, 15, 16], &[42]];
        let steps = 4;
        // Alone: prefill then greedy decode, one sequence at a time.
        let mut alone = Vec::new();
        for p in prompts {
            let mut cache = model.new_cache(&dev, p.len() + steps).unwrap();
            let mut next = argmax(&forward(&dev, &model, p, &mut cache));
            let mut rows = Vec::new();
            for _ in 0..steps {
                let logits = forward(&dev, &model, &[next], &mut cache);
                next = argmax(&logits);
                rows.push(logits);
            }
            alone.push(rows);
        }
        // Batched: the same prefills, then every decode step for all three at once.
        let mut caches: Vec<KvCache> = prompts.iter().map(|p| model.new_cache(&dev, p.len() + steps).unwrap()).collect();
        let mut next: Vec<u32> = prompts.iter().zip(caches.iter_mut()).map(|(p, c)| argmax(&forward(&dev, &model, p, c))).collect();
        for step in 0..steps {
            let ids = Tensor::from_slice(&dev, &next, &[next.len()]).unwrap();
            let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
            let mut rec = Recorder::new(&dev);
            let logits = model.forward_batch(&mut rec, &ids, &mut refs).unwrap();
            rec.submit().unwrap();
            assert_eq!(logits.shape(), [3, vocab]);
            let logits = logits.to_vec_f32().unwrap();
            for (b, rows) in alone.iter().enumerate() {
                let got = &logits[b * vocab..(b + 1) * vocab];
                if let Err(msg) = compare(&format!("{name} sequence {b} step {step}"), got, &rows[step], BATCH_VS_ALONE) {
                    panic!("{msg}");
                }
                next[b] = argmax(got);
            }
        }
        for (b, c) in caches.iter().enumerate() {
            assert_eq!(c.len, prompts[b].len() + steps);
        }
    }
}

#[test]
fn a_batch_needs_one_id_per_cache() {
    let dev = test_device();
    let (model, _) = tiny_model(&dev, "qwen2-tiny-tied-f32");
    let mut a = model.new_cache(&dev, 4).unwrap();
    let mut b = model.new_cache(&dev, 4).unwrap();
    let ids = Tensor::from_slice(&dev, &[1u32, 2, 3], &[3]).unwrap();
    let mut rec = Recorder::new(&dev);
    let err = model.forward_batch(&mut rec, &ids, &mut [&mut a, &mut b]).unwrap_err().to_string();
    assert!(err.contains("one id per sequence"), "{err}");
}
