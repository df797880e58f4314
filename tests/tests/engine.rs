//! The continuous-batching engine: more requests than slots, each with its own sampling
//! parameters and seed, joining and leaving between steps, get exactly the tokens
//! `generate` gives each alone; a dropped receiver frees its slot at once.

mod common;

use std::sync::mpsc::{channel, Receiver};

use kiln_kernels::testing::test_device;
use kiln_sampler::engine::{Engine, Event, FinishReason, Request};
use kiln_sampler::generate::{generate, Flow, GenerateOptions};
use kiln_sampler::gpu::TokenChoice;
use kiln_sampler::SamplingParams;

use common::tiny_model;

/// Tokens (ids and, where asked, log-probs) a receiver got, and how it finished.
fn collect_choices(rx: &Receiver<Event>) -> (Vec<TokenChoice>, Option<(FinishReason, usize, usize)>) {
    let mut out = Vec::new();
    let mut done = None;
    while let Ok(e) = rx.try_recv() {
        match e {
            Event::Token(t) => out.push(t),
            Event::Done { reason, prompt_tokens, completion_tokens } => done = Some((reason, prompt_tokens, completion_tokens)),
            Event::Error(e) => panic!("engine error: {e}"),
            Event::Prefilled { .. } => {}
        }
    }
    (out, done)
}

/// The i-th request's sampling: greedy, top-k, top-p with penalties, a logit bias, and
/// log-probs, so one batch holds rows with different plans.
fn request_params(i: u64) -> SamplingParams {
    match i % 5 {
        0 => SamplingParams::greedy(),
        1 => SamplingParams { temperature: 0.9, top_k: Some(20), seed: i, ..Default::default() },
        2 => SamplingParams { temperature: 1.1, top_p: 0.9, presence_penalty: 0.5, seed: 100 + i, ..Default::default() },
        3 => SamplingParams { temperature: 0.8, repetition_penalty: 1.3, logit_bias: vec![(17, -100.0), (30, 2.5)], seed: 7 * i, ..Default::default() },
        _ => SamplingParams { temperature: 0.7, min_p: 0.05, logprobs: Some(3), seed: 9 + i, ..Default::default() },
    }
}

/// More requests than slots (B = 1, 4 and 16 sequences per step), each with its own
/// parameters and seed, get exactly the tokens `generate` gives each alone: the engine's
/// one sampler pass over the batch samples every row as its own sequence.
#[test]
fn batched_requests_get_the_tokens_each_gets_alone() {
    let dev = test_device();
    for name in ["qwen2-tiny-tied-f32", "gpt2-tiny-f32"] {
        let (model, _) = tiny_model(&dev, name);
        let requests: Vec<(Vec<u32>, SamplingParams, usize)> = (0..20u64)
            .map(|i| {
                let prompt: Vec<u32> = (0..(2 + (i as u32 % 7) * 3)).map(|t| 10 + t * 7 + i as u32).collect();
                (prompt, request_params(i), 4 + (i as usize % 6))
            })
            .collect();
        let alone: Vec<Vec<TokenChoice>> = requests
            .iter()
            .map(|(p, params, n)| {
                let opts = GenerateOptions { max_new_tokens: *n, sampling: params.clone(), eos_ids: vec![], trace: false };
                generate(&dev, &model, p, &opts, |_| Ok(Flow::Continue)).unwrap().0
            })
            .collect();

        for slots in [1usize, 4, 16] {
            // The rest of the requests wait and join as slots free up.
            let mut engine = Engine::new(&dev, &model, slots, 64).unwrap();
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
            assert_eq!(max_batch, slots, "{name}: steps ran {slots} sequences at once");
            for (i, rx) in &receivers {
                let (got, done) = collect_choices(rx);
                let what = format!("{name}, {slots} slots: request {i} batched vs alone");
                let ids = |v: &[TokenChoice]| v.iter().map(|t| t.id).collect::<Vec<_>>();
                assert_eq!(ids(&got), ids(&alone[*i]), "{what}");
                for (g, a) in got.iter().zip(&alone[*i]) {
                    assert_eq!(g.logprob.is_some(), a.logprob.is_some(), "{what}");
                    if let (Some(g), Some(a)) = (g.logprob, a.logprob) {
                        assert!((g - a).abs() <= 1e-3, "{what}: log-prob {g} vs {a}");
                    }
                    assert_eq!(g.top.iter().map(|t| t.0).collect::<Vec<_>>(), a.top.iter().map(|t| t.0).collect::<Vec<_>>(), "{what}: top ids");
                }
                assert_eq!(done, Some((FinishReason::Length, requests[*i].0.len(), requests[*i].2)));
            }
        }
    }
}

/// A batched engine step once warm: one submit, no buffer or bind group created,
/// and one readback of 4 bytes per sequence (one sampler pass for the whole batch).
#[test]
fn an_engine_step_reads_back_once_and_creates_nothing() {
    let dev = test_device();
    let (model, _) = tiny_model(&dev, "qwen2-tiny-tied-f32");
    let mut engine = Engine::new(&dev, &model, 4, 32).unwrap();
    let mut receivers = Vec::new();
    for i in 0..4u64 {
        let (tx, rx) = channel();
        let params = request_params(i % 4);
        engine.admit(Request { prompt: vec![3 + i as u32, 4, 5], params, max_tokens: 12, eos_ids: vec![], events: tx }).unwrap();
        receivers.push(rx);
    }
    // Warm-up: the first step takes its ids from the host (the batch is new), the second
    // from the sampler's output, which the rest reuse.
    engine.step().unwrap();
    engine.step().unwrap();
    let mut before = dev.counters();
    for _ in 0..3 {
        assert_eq!(engine.step().unwrap(), 4);
        let now = dev.counters();
        let d = now - before;
        before = now;
        assert_eq!(d.submits, 1, "{d:?}");
        assert_eq!(d.buffers_created, 0, "{d:?}");
        assert_eq!(d.bind_groups, 0, "{d:?}");
        assert_eq!(d.readback_bytes, 4 * 4, "{d:?}");
        // The rows table (8 bytes per sequence); the ids stay on the GPU.
        assert_eq!(d.upload_bytes, 8 * 4, "{d:?}");
    }
    drop(receivers);
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

/// One hostile request (max_tokens 2⁶⁴−1, which used to wrap the length check round and
/// then outgrow the KV cache, ending the engine for everyone) fails alone: its channel
/// gets the error naming max_tokens, the sequence already running finishes, and the
/// engine takes the next request into the freed slot.
#[test]
fn a_hostile_request_fails_alone() {
    let dev = test_device();
    let (model, _) = tiny_model(&dev, "qwen2-tiny-tied-f32");
    let mut engine = Engine::new(&dev, &model, 2, 32).unwrap();
    let request = |prompt: Vec<u32>, max_tokens: usize| {
        let (tx, rx) = channel();
        (Request { prompt, params: SamplingParams::greedy(), max_tokens, eos_ids: vec![], events: tx }, rx)
    };
    let (a, rx_a) = request(vec![5, 6, 7], 6);
    engine.admit(a).unwrap();
    engine.step().unwrap();

    let (hostile, rx_hostile) = request(vec![8, 9], usize::MAX);
    let err = engine.admit(hostile).expect_err("max_tokens 2^64-1 must be refused");
    assert!(err.to_string().contains("max_tokens"), "{err}");
    match rx_hostile.try_recv() {
        Ok(Event::Error(message)) => assert!(message.contains("max_tokens"), "{message}"),
        other => panic!("the hostile request's client must get an error event, got {other:?}"),
    }
    assert_eq!(engine.active(), 1, "only the running sequence holds a slot");

    let (c, rx_c) = request(vec![8, 9], 4);
    engine.admit(c).unwrap();
    while engine.step().unwrap() > 0 {}
    let (tokens_a, done_a) = collect_choices(&rx_a);
    let (tokens_c, done_c) = collect_choices(&rx_c);
    assert_eq!((tokens_a.len(), done_a.map(|d| d.0)), (6, Some(FinishReason::Length)));
    assert_eq!((tokens_c.len(), done_c.map(|d| d.0)), (4, Some(FinishReason::Length)));
}

/// A long prompt joining is prefilled one chunk per step, between the decode steps of
/// the running sequence: that sequence gets a token at every step meanwhile, and both
/// get exactly the tokens `generate` gives each alone.
#[test]
fn a_long_prompt_prefills_in_chunks_between_decode_steps() {
    let dev = test_device();
    for name in ["qwen2-tiny-tied-f32", "gpt2-tiny-f32"] {
        let (model, _) = tiny_model(&dev, name);
        let short: Vec<u32> = vec![5, 6, 7];
        let long: Vec<u32> = (0..23).map(|t| 11 + t * 5).collect();
        let alone = |prompt: &[u32], params: &SamplingParams, n: usize| {
            let opts = GenerateOptions { max_new_tokens: n, sampling: params.clone(), eos_ids: vec![], trace: false };
            generate(&dev, &model, prompt, &opts, |_| Ok(Flow::Continue)).unwrap().0
        };
        let (p_short, p_long) = (request_params(1), request_params(4));
        let mut engine = Engine::new(&dev, &model, 2, 64).unwrap();
        engine.set_prefill_chunk(4).unwrap();
        let (tx, rx_short) = channel();
        engine.admit(Request { prompt: short.clone(), params: p_short.clone(), max_tokens: 16, eos_ids: vec![], events: tx }).unwrap();
        assert_eq!(collect_choices(&rx_short).0.len(), 1, "a short prompt is prefilled on admission");
        let (tx, rx_long) = channel();
        engine.admit(Request { prompt: long.clone(), params: p_long.clone(), max_tokens: 5, eos_ids: vec![], events: tx }).unwrap();
        assert!(!engine.has_free_slot(), "the long prompt holds its slot while it prefills");
        let (mut got_short, mut got_long) = (vec![], vec![]);
        // 23 positions in chunks of 4: six steps, each also decoding the short sequence
        // (a step counts the prefilled sequence and every decoded one).
        for step in 0..6 {
            assert_eq!(engine.step().unwrap(), 2 + usize::from(step == 5), "{name}: step {step}");
            let (s, _) = collect_choices(&rx_short);
            assert_eq!(s.len(), 1, "{name}: the running stream gets a token at step {step}");
            got_short.extend(s);
            let (l, _) = collect_choices(&rx_long);
            // After its last chunk: its first token, then its second from the same step's
            // decode, which it joins.
            assert_eq!(l.len(), if step == 5 { 2 } else { 0 }, "{name}: the long prompt's tokens come after its last chunk");
            got_long.extend(l);
        }
        while engine.step().unwrap() > 0 {
            got_short.extend(collect_choices(&rx_short).0);
            got_long.extend(collect_choices(&rx_long).0);
        }
        let mut want_short = alone(&short, &p_short, 16);
        want_short.remove(0); // the token admission sent
        assert_eq!(got_short, want_short[..got_short.len()].to_vec(), "{name}: short sequence");
        assert_eq!(got_short.len(), 15, "{name}");
        // The same ids; log-probs up to the order of f32 sums (chunks of 4 vs one pass).
        let want_long = alone(&long, &p_long, 5);
        let ids = |v: &[TokenChoice]| v.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(&got_long), ids(&want_long), "{name}: long sequence");
        for (g, w) in got_long.iter().zip(&want_long) {
            assert!((g.logprob.unwrap() - w.logprob.unwrap()).abs() < 1e-5, "{name}: {g:?} vs {w:?}");
        }
        assert!(engine.has_free_slot() && engine.active() == 0);

        // A client that leaves while its long prompt prefills frees the slot at the next
        // chunk, not after the whole prompt.
        let (tx, rx) = channel();
        engine.admit(Request { prompt: long.clone(), params: p_long.clone(), max_tokens: 5, eos_ids: vec![], events: tx }).unwrap();
        assert_eq!(engine.step().unwrap(), 1);
        assert!(matches!(rx.try_recv(), Ok(Event::Prefilled { done: 4, total: 23 })));
        drop(rx);
        engine.step().unwrap();
        assert_eq!(engine.active(), 0, "{name}: the gone client's slot is free after one more chunk");
    }
}
