//! Causal prefill equals decoding step by step: the same tokens (RoPE'd at their
//! positions and appended to the KV cache by the fused `rope_kv_append`) give the same
//! attention output whether all queries run in one `attend` call or one call per token,
//! with f16 and f32 caches, in a slot other than 0. Optionally a prefix of earlier tokens
//! sits in the cache first, so the prefill is a second chunk (positions > 0). Several
//! sequences decoded in one batched step (one dispatch each for append and attention,
//! positions from a table) equal each decoded alone. The f16 cache stays within
//! `KV_F16_VS_F32` of the f32 one (the old path).

use kiln_kernels::attention::attend;
use kiln_kernels::kv_cache::{rope_kv_append, Rows};
use kiln_kernels::rope::{RopeMode, RopeTable};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{reference, tolerance, DType, Device, Recorder, Tensor};

const N_HEADS: usize = 6;
const N_KV: usize = 2;
const HD: usize = 32;
const THETA: f32 = 10000.0;
const SLOTS: usize = 3;
/// The slot one-sequence runs use.
const SLOT: usize = 2;

/// Host data for `prefix + t` tokens, `[tokens, heads, HD]`, before rope.
struct Inputs {
    prefix: usize,
    t: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl Inputs {
    fn new(prefix: usize, t: usize, seed: u64) -> Inputs {
        let mut rng = Rng::new(seed);
        let n = prefix + t;
        Inputs {
            prefix,
            t,
            q: rng.vec(n * N_HEADS * HD, 2.0),
            k: rng.vec(n * N_KV * HD, 2.0),
            v: rng.vec(n * N_KV * HD, 1.0),
        }
    }
    fn capacity(&self) -> usize {
        self.prefix + self.t + 2
    }
}

/// Tokens `start..start + n` of a `[tokens, heads, HD]` host array, uploaded.
fn rows(dev: &Device, data: &[f32], heads: usize, start: usize, n: usize) -> Tensor {
    Tensor::from_slice(dev, &data[start * heads * HD..(start + n) * heads * HD], &[n, heads, HD]).unwrap()
}

struct Caches {
    k: Tensor,
    v: Tensor,
}

impl Caches {
    fn new(dev: &Device, capacity: usize, dtype: DType) -> Caches {
        let c = || Tensor::zeros(dev, &[SLOTS, capacity, N_KV, HD], dtype).unwrap();
        Caches { k: c(), v: c() }
    }
}

/// RoPE tokens `start..start + n` of `x` at positions `start..` of `slot`, append their
/// K/V, and return the RoPE'd q `[n, N_HEADS, HD]`: one dispatch.
fn rope_and_append(
    rec: &mut Recorder,
    x: &Inputs,
    table: &RopeTable,
    caches: &Caches,
    slot: usize,
    start: usize,
    n: usize,
) -> Tensor {
    let dev = rec.device().clone();
    let q = Tensor::empty(&dev, &[n, N_HEADS, HD], DType::F32).unwrap();
    let (xq, xk, xv) =
        (rows(&dev, &x.q, N_HEADS, start, n), rows(&dev, &x.k, N_KV, start, n), rows(&dev, &x.v, N_KV, start, n));
    let run = Rows::Run { slot, start };
    rope_kv_append(rec, &xq, &xk, &xv, table, RopeMode::HalfSplit, run, &q, &caches.k, &caches.v).unwrap();
    q
}

/// Path A: the prefix (if any), then all t tokens in one prefill call.
fn prefill(dev: &Device, x: &Inputs, table: &RopeTable, dtype: DType) -> Vec<f32> {
    let caches = Caches::new(dev, x.capacity(), dtype);
    let mut rec = Recorder::new(dev);
    if x.prefix > 0 {
        rope_and_append(&mut rec, x, table, &caches, SLOT, 0, x.prefix);
    }
    let q = rope_and_append(&mut rec, x, table, &caches, SLOT, x.prefix, x.t);
    let out = Tensor::empty(dev, &[x.t, N_HEADS, HD], DType::F32).unwrap();
    attend(&mut rec, &q, &caches.k, &caches.v, Rows::Run { slot: SLOT, start: x.prefix }, &out).unwrap();
    rec.submit().unwrap();
    out.to_vec_f32().unwrap()
}

/// Path B: the prefix (if any), then one token at a time: rope + append, attention.
fn decode(dev: &Device, x: &Inputs, table: &RopeTable, dtype: DType) -> Vec<f32> {
    let caches = Caches::new(dev, x.capacity(), dtype);
    let mut rec = Recorder::new(dev);
    if x.prefix > 0 {
        rope_and_append(&mut rec, x, table, &caches, SLOT, 0, x.prefix);
    }
    let mut outs = Vec::new();
    for pos in x.prefix..x.prefix + x.t {
        let q = rope_and_append(&mut rec, x, table, &caches, SLOT, pos, 1);
        let out = Tensor::empty(dev, &[1, N_HEADS, HD], DType::F32).unwrap();
        attend(&mut rec, &q, &caches.k, &caches.v, Rows::Run { slot: SLOT, start: pos }, &out).unwrap();
        outs.push(out);
    }
    rec.submit().unwrap();
    outs.iter().flat_map(|o| o.to_vec_f32().unwrap()).collect()
}

/// The CPU twins composed the same way, for the absolute answer (K/V rounded to f16 when
/// the cache is f16).
fn twin(x: &Inputs, f16: bool) -> Vec<f32> {
    let n = x.prefix + x.t;
    let table = reference::rope::cpu_table(HD, THETA, n);
    let q = reference::rope::rope(&x.q, n, N_HEADS, HD, &table, 0, false);
    let store = |v: Vec<f32>| -> Vec<f32> {
        if f16 {
            v.into_iter().map(reference::kv_cache::round_f16).collect()
        } else {
            v
        }
    };
    let k = store(reference::rope::rope(&x.k, n, N_KV, HD, &table, 0, false));
    let v = store(x.v.clone());
    reference::attention::attention(&q[x.prefix * N_HEADS * HD..], &k, &v, x.t, N_HEADS, N_KV, HD, x.prefix)
}

fn expect_close(what: &str, got: &[f32], want: &[f32], tol: tolerance::Tol) {
    if let Err(msg) = tolerance::compare(what, got, want, tol) {
        panic!("{msg}");
    }
}

fn check(prefix: usize, t: usize, seed: u64) {
    let dev = test_device();
    let x = Inputs::new(prefix, t, seed);
    let table = RopeTable::new(&dev, HD, THETA, x.capacity()).unwrap();
    let mut f32_out = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        let a = prefill(&dev, &x, &table, dtype);
        let b = decode(&dev, &x, &table, dtype);
        let what = format!("(prefix {prefix}, {t} tokens, {dtype} cache)");
        expect_close(&format!("prefill vs decode {what}"), &a, &b, tolerance::ATTENTION);
        // With an f16 cache, the twin's K may sit one f16 ulp away where RoPE's f32 result
        // crossed a rounding boundary: the f32-vs-f16 tolerance bounds that.
        let tol = if dtype == DType::F16 { tolerance::KV_F16_VS_F32 } else { tolerance::ATTENTION };
        expect_close(&format!("prefill vs CPU twins {what}"), &a, &twin(&x, dtype == DType::F16), tol);
        if dtype == DType::F32 {
            f32_out = a;
        } else {
            expect_close(&format!("f16 vs f32 cache {what}"), &a, &f32_out, tolerance::KV_F16_VS_F32);
        }
    }
}

#[test]
fn causal_prefill_equals_decode_step_by_step() {
    check(0, 19, 41);
}

#[test]
fn second_chunk_prefill_equals_decode_with_rope_offset() {
    check(3, 19, 42);
}

#[test]
fn long_context_decode_uses_split_keys_and_still_matches() {
    // Decode steps past 128 keys take the split-K (flash-decoding) path.
    check(120, 20, 43);
}

#[test]
fn batched_decode_equals_each_sequence_alone() {
    // Three sequences with prompts of 5, 140 and 1 tokens in slots 1, 0 and 2: prefilled
    // one by one, then 3 decode steps in which ONE rope_kv_append and ONE attention
    // dispatch (plus a combine for the long one) serve all three, positions from a table
    // written once per step into a buffer allocated once.
    let dev = test_device();
    let lens = [5usize, 140, 1];
    let slots = [1usize, 0, 2];
    let steps = 3;
    let xs: Vec<Inputs> = lens.iter().enumerate().map(|(i, &n)| Inputs::new(n, steps, 50 + i as u64)).collect();
    let capacity = 150;
    let table = RopeTable::new(&dev, HD, THETA, capacity).unwrap();
    for dtype in [DType::F16, DType::F32] {
        // Alone: each sequence prefilled and decoded step by step in its own cache.
        let alone: Vec<Vec<f32>> = xs.iter().map(|x| decode(&dev, x, &table, dtype)).collect();
        // Together.
        let caches = Caches::new(&dev, capacity, dtype);
        let mut rec = Recorder::new(&dev);
        for (x, &slot) in xs.iter().zip(&slots) {
            rope_and_append(&mut rec, x, &table, &caches, slot, 0, x.prefix);
        }
        rec.submit().unwrap();
        let table_t = Tensor::empty(&dev, &[slots.len(), 2], DType::U32).unwrap();
        let mut got = vec![Vec::new(); xs.len()];
        for step in 0..steps {
            let host: Vec<[u32; 2]> =
                xs.iter().zip(&slots).map(|(x, &s)| [s as u32, (x.prefix + step) as u32]).collect();
            table_t.write(&host.iter().flatten().copied().collect::<Vec<u32>>()).unwrap();
            let gather = |data: fn(&Inputs) -> &Vec<f32>, heads: usize| -> Tensor {
                let v: Vec<f32> =
                    xs.iter().flat_map(|x| data(x)[(x.prefix + step) * heads * HD..][..heads * HD].to_vec()).collect();
                Tensor::from_slice(&dev, &v, &[xs.len(), heads, HD]).unwrap()
            };
            let (q, k, v) = (gather(|x| &x.q, N_HEADS), gather(|x| &x.k, N_KV), gather(|x| &x.v, N_KV));
            let q_rot = Tensor::empty(&dev, &[xs.len(), N_HEADS, HD], DType::F32).unwrap();
            let out = Tensor::empty(&dev, &[xs.len(), N_HEADS, HD], DType::F32).unwrap();
            let rows = Rows::Table { table: &table_t, host: &host };
            let mut rec = Recorder::new(&dev).with_trace();
            rope_kv_append(&mut rec, &q, &k, &v, &table, RopeMode::HalfSplit, rows, &q_rot, &caches.k, &caches.v)
                .unwrap();
            attend(&mut rec, &q_rot, &caches.k, &caches.v, rows, &out).unwrap();
            let trace = rec.submit().unwrap().trace;
            let kernels: Vec<&str> = trace.iter().map(|e| e.kernel).collect();
            assert_eq!(kernels[..2], ["kv_cache::rope_kv_append", "attention::attention_decode"], "{kernels:?}");
            assert!(kernels.len() <= 3, "{kernels:?}");
            let o = out.to_vec_f32().unwrap();
            for (b, g) in got.iter_mut().enumerate() {
                g.extend_from_slice(&o[b * N_HEADS * HD..(b + 1) * N_HEADS * HD]);
            }
        }
        for (b, (g, a)) in got.iter().zip(&alone).enumerate() {
            expect_close(&format!("batched vs alone, sequence {b} ({dtype} cache)"), g, a, tolerance::ATTENTION);
        }
    }
}
