//! Causal prefill equals decoding step by step: the same tokens (rope'd at their
//! positions, appended to the KV cache) give the same attention output whether all
//! queries run in one `attention` call or one `attention_decode` call per token.
//! Optionally a prefix of earlier tokens sits in the cache first, so the prefill is a
//! second chunk (pos_offset > 0) and every rope position is > 0.

use kiln_kernels::attention::{attention, attention_decode};
use kiln_kernels::kv_cache::kv_append;
use kiln_kernels::rope::{rope, RopeMode, RopeTable};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{reference, tolerance, DType, Device, Recorder, Tensor};

const N_HEADS: usize = 6;
const N_KV: usize = 2;
const HD: usize = 32;
const THETA: f32 = 10000.0;

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
    fn max_ctx(&self) -> usize {
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
    fn new(dev: &Device, max_ctx: usize) -> Caches {
        let c = || Tensor::zeros(dev, &[max_ctx, N_KV, HD], DType::F32).unwrap();
        Caches { k: c(), v: c() }
    }
}

/// Rope tokens `start..start + n` of q and k at positions `start..`, append k and v to the
/// caches, and return the rope'd q `[n, N_HEADS, HD]`.
fn rope_and_append(
    rec: &mut Recorder,
    x: &Inputs,
    table: &RopeTable,
    caches: &Caches,
    start: usize,
    n: usize,
) -> Tensor {
    let dev = rec.device().clone();
    let q = Tensor::empty(&dev, &[n, N_HEADS, HD], DType::F32).unwrap();
    let k = Tensor::empty(&dev, &[n, N_KV, HD], DType::F32).unwrap();
    rope(rec, &rows(&dev, &x.q, N_HEADS, start, n), table, start, RopeMode::HalfSplit, &q).unwrap();
    rope(rec, &rows(&dev, &x.k, N_KV, start, n), table, start, RopeMode::HalfSplit, &k).unwrap();
    kv_append(rec, &k, &caches.k, start).unwrap();
    kv_append(rec, &rows(&dev, &x.v, N_KV, start, n), &caches.v, start).unwrap();
    q
}

/// Path A: the prefix (if any), then all t tokens in one prefill call at pos_offset = prefix.
fn prefill(dev: &Device, x: &Inputs, table: &RopeTable) -> Vec<f32> {
    let caches = Caches::new(dev, x.max_ctx());
    let mut rec = Recorder::new(dev);
    if x.prefix > 0 {
        rope_and_append(&mut rec, x, table, &caches, 0, x.prefix);
    }
    let q = rope_and_append(&mut rec, x, table, &caches, x.prefix, x.t);
    let out = Tensor::empty(dev, &[x.t, N_HEADS, HD], DType::F32).unwrap();
    attention(&mut rec, &q, &caches.k, &caches.v, x.prefix, &out).unwrap();
    rec.submit().unwrap();
    out.to_vec_f32().unwrap()
}

/// Path B: the prefix (if any), then one token at a time: rope, append, attention_decode.
fn decode(dev: &Device, x: &Inputs, table: &RopeTable) -> Vec<f32> {
    let caches = Caches::new(dev, x.max_ctx());
    let mut rec = Recorder::new(dev);
    if x.prefix > 0 {
        rope_and_append(&mut rec, x, table, &caches, 0, x.prefix);
    }
    let mut outs = Vec::new();
    for pos in x.prefix..x.prefix + x.t {
        let q = rope_and_append(&mut rec, x, table, &caches, pos, 1);
        let out = Tensor::empty(dev, &[1, N_HEADS, HD], DType::F32).unwrap();
        attention_decode(&mut rec, &q, &caches.k, &caches.v, pos, &out).unwrap();
        outs.push(out);
    }
    rec.submit().unwrap();
    outs.iter().flat_map(|o| o.to_vec_f32().unwrap()).collect()
}

/// The CPU twins composed the same way, for the absolute answer.
fn twin(x: &Inputs) -> Vec<f32> {
    let n = x.prefix + x.t;
    let table = reference::rope::cpu_table(HD, THETA, n);
    let q = reference::rope::rope(&x.q, n, N_HEADS, HD, &table, 0, false);
    let k = reference::rope::rope(&x.k, n, N_KV, HD, &table, 0, false);
    reference::attention::attention(&q[x.prefix * N_HEADS * HD..], &k, &x.v, x.t, N_HEADS, N_KV, HD, x.prefix)
}

fn expect_close(what: &str, got: &[f32], want: &[f32]) {
    if let Err(msg) = tolerance::compare(what, got, want, tolerance::ATTENTION) {
        panic!("{msg}");
    }
}

fn check(prefix: usize, t: usize, seed: u64) {
    let dev = test_device();
    let x = Inputs::new(prefix, t, seed);
    let table = RopeTable::new(&dev, HD, THETA, x.max_ctx()).unwrap();
    let a = prefill(&dev, &x, &table);
    let b = decode(&dev, &x, &table);
    expect_close(&format!("prefill vs decode (prefix {prefix}, {t} tokens)"), &a, &b);
    expect_close(&format!("prefill vs CPU twins (prefix {prefix}, {t} tokens)"), &a, &twin(&x));
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
