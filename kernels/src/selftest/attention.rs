//! Cases for causal grouped-query attention over a KV cache: prefill chunks (first and
//! later, crossing 64-key tiles) and decode steps (one workgroup per head, and the
//! split-over-keys path of long contexts), at GQA ratios 1, 2 and 7.

use kiln_tensor::{DType, Device, Recorder, Tensor};

use super::{Case, CaseResult, Checks};
use crate::attention::{attention, attention_decode};
use crate::{reference, tolerance};

/// (query heads, kv heads): no grouping, Qwen2.5-0.5B's 14/2, and 7 queries per kv head.
const HEADS: [(usize, usize); 3] = [(4, 4), (14, 2), (7, 1)];

fn attention_case(decode: bool, heads: usize, kv_heads: usize, head_dim: usize, n_q: usize, pos: usize) -> Case {
    let kind = if decode { "attention_decode" } else { "attention" };
    let name = format!("{kind}/heads{heads}/kv{kv_heads}/hd{head_dim}/q{n_q}/pos{pos}");
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        // Two spare rows past the last one attended: they must not be read.
        let max_ctx = pos + n_q + 2;
        let row = kv_heads * head_dim;
        let q = rng.vec(n_q * heads * head_dim, 2.0);
        let k = rng.vec(max_ctx * row, 2.0);
        let v = rng.vec(max_ctx * row, 1.0);
        let tq = Tensor::from_slice(dev, &q, &[n_q, heads, head_dim])?;
        let tk = Tensor::from_slice(dev, &k, &[max_ctx, kv_heads, head_dim])?;
        let tv = Tensor::from_slice(dev, &v, &[max_ctx, kv_heads, head_dim])?;
        let out = Tensor::empty(dev, &[n_q, heads, head_dim], DType::F32)?;
        let mut rec = Recorder::new(dev);
        if decode {
            attention_decode(&mut rec, &tq, &tk, &tv, pos, &out)?;
        } else {
            attention(&mut rec, &tq, &tk, &tv, pos, &out)?;
        }
        rec.submit()?;
        let want = reference::attention::attention(&q, &k, &v, n_q, heads, kv_heads, head_dim, pos);
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::ATTENTION);
        Ok(())
    })
}

pub(super) fn cases(out: &mut Vec<Case>) {
    for (heads, kv_heads) in HEADS {
        for head_dim in [64, 40] {
            // Prefill: one query, an odd chunk, a chunk crossing a tile; then a second
            // chunk after 61 cached positions.
            for (n_q, pos) in [(1, 0), (17, 0), (70, 0), (5, 61)] {
                out.push(attention_case(false, heads, kv_heads, head_dim, n_q, pos));
            }
            // Decode at positions 0, inside one tile, and long enough to split the keys.
            for pos in [0, 100, 1500] {
                out.push(attention_case(true, heads, kv_heads, head_dim, 1, pos));
            }
        }
    }
    // Small and large head dims.
    out.push(attention_case(false, 2, 1, 8, 9, 3));
    out.push(attention_case(true, 2, 1, 8, 1, 300));
    out.push(attention_case(false, 4, 2, 128, 33, 30));
    out.push(attention_case(true, 4, 2, 128, 1, 700));
}
