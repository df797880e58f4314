//! The continuous-batching engine: more requests than slots, each with its own sampling
//! parameters and seed, joining and leaving between steps, get exactly the tokens
//! `generate` gives each alone; a dropped receiver frees its slot at once.

mod common;

use std::sync::mpsc::{channel, Receiver};

use kiln_kernels::testing::test_device;
use kiln_sampler::engine::{Engine, Event, FinishReason, Request};
use kiln_sampler::generate::{generate, Flow, GenerateOptions};
use kiln_sampler::SamplingParams;

use common::tiny_model;

/// Tokens (ids) a receiver got, and how it finished.
fn collect(rx: &Receiver<Event>) -> (Vec<u32>, Option<(FinishReason, usize, usize)>) {
    let mut ids = Vec::new();
    let mut done = None;
    while let Ok(e) = rx.try_recv() {
        match e {
            Event::Token(t) => ids.push(t.id),
            Event::Done { reason, prompt_tokens, completion_tokens } => done = Some((reason, prompt_tokens, completion_tokens)),
            Event::Error(e) => panic!("engine error: {e}"),
        }
    }
    (ids, done)
}

#[test]
fn batched_requests_get_the_tokens_each_gets_alone() {
    let dev = test_device();
    for name in ["qwen2-tiny-tied-f32", "gpt2-tiny-f32"] {
        let (model, _) = tiny_model(&dev, name);
        let requests: Vec<(Vec<u32>, SamplingParams, usize)> = (0..6u64)
            .map(|i| {
                let prompt: Vec<u32> = (0..(2 + i as u32 * 3)).map(|t| 10 + t * 7 + i as u32).collect();
                let params = match i % 3 {
                    0 => SamplingParams::greedy(),
                    1 => SamplingParams { temperature: 0.9, top_k: Some(20), seed: i, ..Default::default() },
                    _ => SamplingParams { temperature: 1.1, top_p: 0.9, presence_penalty: 0.5, seed: 100 + i, ..Default::default() },
                };
                (prompt, params, 4 + i as usize)
            })
            .collect();
        let alone: Vec<Vec<u32>> = requests
            .iter()
            .map(|(p, params, n)| {
                let opts = GenerateOptions { max_new_tokens: *n, sampling: params.clone(), eos_ids: vec![], trace: false };
                generate(&dev, &model, p, &opts, |_| Ok(Flow::Continue)).unwrap().0.iter().map(|t| t.id).collect()
            })
            .collect();

        // 3 slots, 6 requests: the rest wait and join as slots free up.
        let mut engine = Engine::new(&dev, &model, 3, 64).unwrap();
        let mut queue: Vec<_> = requests.iter().cloned().enumerate().collect();
        queue.reverse();
        let mut receivers = Vec::new();
        let mut max_batch = 0;
        loop {
            while engine.has_free_slot() {
                let Some((i, (prompt, params, max_tokens))) = queue.pop() else { break };
                let (tx, rx) = channel();
                engine.admit(Request { prompt, params, max_tokens, eos_ids: vec![], events: tx }).unwrap();
                receivers.push((i, rx));
            }
            let ran = engine.step().unwrap();
            max_batch = max_batch.max(ran);
            if ran == 0 && queue.is_empty() {
                break;
            }
        }
        assert_eq!(max_batch, 3, "{name}: steps ran 3 sequences at once");
        for (i, rx) in &receivers {
            let (ids, done) = collect(rx);
            assert_eq!(ids, alone[*i], "{name}: request {i} batched vs alone");
            assert_eq!(done, Some((FinishReason::Length, requests[*i].0.len(), requests[*i].2)));
        }
    }
}

#[test]
fn a_dropped_receiver_frees_its_slot() {
    let dev = test_device();
    let (model, _) = tiny_model(&dev, "qwen2-tiny-tied-f32");
    let mut engine = Engine::new(&dev, &model, 2, 32).unwrap();
    let (tx, rx) = channel();
    engine.admit(Request { prompt: vec![1, 2, 3], params: SamplingParams::greedy(), max_tokens: 10, eos_ids: vec![], events: tx }).unwrap();
    let (tx2, _rx2) = channel();
    engine.admit(Request { prompt: vec![4, 5], params: SamplingParams::greedy(), max_tokens: 10, eos_ids: vec![], events: tx2 }).unwrap();
    assert!(!engine.has_free_slot());
    drop(rx);
    assert_eq!(engine.step().unwrap(), 2);
    assert_eq!(engine.active(), 1, "the disconnected sequence left after its next token");
    assert!(engine.has_free_slot());
}

#[test]
fn bad_requests_are_refused_before_they_take_a_slot() {
    let dev = test_device();
    let (model, _) = tiny_model(&dev, "qwen2-tiny-tied-f32");
    let mut engine = Engine::new(&dev, &model, 1, 16).unwrap();
    let cases = [
        (vec![1u32; 10], SamplingParams::greedy(), 10, "max_tokens"),
        (vec![1u32, 2], SamplingParams { top_p: 2.0, ..Default::default() }, 4, "top_p"),
        (vec![999_999u32], SamplingParams::greedy(), 4, "vocab"),
        (vec![], SamplingParams::greedy(), 4, "prompt"),
    ];
    for (prompt, params, max_tokens, what) in cases {
        let (tx, rx) = channel();
        let err = engine.admit(Request { prompt, params, max_tokens, eos_ids: vec![], events: tx }).unwrap_err().to_string();
        assert!(err.contains(what), "{what}: {err}");
        assert!(matches!(rx.try_recv(), Ok(Event::Error(_))));
        assert!(engine.has_free_slot());
    }
}
