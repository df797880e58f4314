//! A decode step for several sequences at once (continuous batching): each sequence has
//! its own KV cache and position. The projections and the MLP run on all rows together,
//! so each weight is read once per step; RoPE, the KV append and attention run per
//! sequence on a copy of its row (their caches are separate buffers).

use kiln_kernels::{attention, kv_cache, rope};
use kiln_tensor::{DType, Recorder, Tensor};

use crate::kv_cache::KvCache;
use crate::{ModelError, Result};

/// The KV caches a forward pass runs over: one sequence (any number of positions), or
/// one decode position for each of several sequences.
pub enum Caches<'a, 'b> {
    One(&'a mut KvCache),
    Many(&'a mut [&'b mut KvCache]),
}

impl Caches<'_, '_> {
    /// Refuse `seq` ids that do not fit: a batch has exactly one id per cache.
    pub fn check(&self, seq: usize) -> Result<()> {
        match self {
            Caches::One(c) => c.check_room(seq),
            Caches::Many(cs) => {
                if cs.len() != seq || seq == 0 {
                    return Err(ModelError::Param {
                        name: "ids".into(),
                        detail: format!("a batched decode step takes one id per sequence: {seq} ids for {} caches", cs.len()),
                    });
                }
                cs.iter().try_for_each(|c| c.check_room(1))
            }
        }
    }

    /// Positions of the rows about to run.
    pub fn positions(&self, seq: usize) -> Vec<u32> {
        match self {
            Caches::One(c) => (c.len as u32..(c.len + seq) as u32).collect(),
            Caches::Many(cs) => cs.iter().map(|c| c.len as u32).collect(),
        }
    }

    /// Mark the rows as cached.
    pub fn advance(&mut self, seq: usize) {
        match self {
            Caches::One(c) => c.len += seq,
            Caches::Many(cs) => cs.iter_mut().for_each(|c| c.len += 1),
        }
    }
}

/// Attention of layer `layer` for q `[seq, nh, hd]`, k and v `[seq, nkv, hd]`: RoPE (when
/// given) on q and k, K/V appended to the cache(s), causal attention over them. Returns
/// `[seq, nh, hd]`.
pub fn attend(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    caches: &mut Caches,
    layer: usize,
    rope_table: Option<&rope::RopeTable>,
) -> Result<Tensor> {
    let dev = q.device();
    let seq = q.dim(0);
    let out = Tensor::empty(dev, q.shape(), DType::F32)?;
    match caches {
        Caches::One(cache) => attend_one(rec, q, k, v, cache, layer, rope_table, &out)?,
        Caches::Many(cs) => {
            // Row r of q/k/v → its own small tensors → its cache → row r of out.
            let (qn, kn) = (q.numel() / seq, k.numel() / seq);
            for (r, cache) in cs.iter_mut().enumerate() {
                let row = |t: &Tensor, n: usize, rec: &mut Recorder| -> Result<Tensor> {
                    let mut shape = t.shape().to_vec();
                    shape[0] = 1;
                    let x = Tensor::empty(dev, &shape, DType::F32)?;
                    rec.copy_region(t, r * n, &x, 0, n)?;
                    Ok(x)
                };
                let (qr, kr, vr) = (row(q, qn, rec)?, row(k, kn, rec)?, row(v, kn, rec)?);
                let out_r = Tensor::empty(dev, qr.shape(), DType::F32)?;
                attend_one(rec, &qr, &kr, &vr, cache, layer, rope_table, &out_r)?;
                rec.copy_region(&out_r, 0, &out, r * qn, qn)?;
            }
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn attend_one(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cache: &KvCache,
    layer: usize,
    rope_table: Option<&rope::RopeTable>,
    out: &Tensor,
) -> Result<()> {
    let pos = cache.len;
    let (q, k) = match rope_table {
        Some(table) => {
            let q_rot = Tensor::empty(q.device(), q.shape(), DType::F32)?;
            let k_rot = Tensor::empty(k.device(), k.shape(), DType::F32)?;
            rope::rope(rec, q, table, pos, rope::RopeMode::HalfSplit, &q_rot)?;
            rope::rope(rec, k, table, pos, rope::RopeMode::HalfSplit, &k_rot)?;
            (q_rot, k_rot)
        }
        None => (q.clone(), k.clone()),
    };
    kv_cache::kv_append(rec, &k, &cache.k[layer], pos)?;
    kv_cache::kv_append(rec, v, &cache.v[layer], pos)?;
    if q.dim(0) == 1 {
        attention::attention_decode(rec, &q, &cache.k[layer], &cache.v[layer], pos, out)?;
    } else {
        attention::attention(rec, &q, &cache.k[layer], &cache.v[layer], pos, out)?;
    }
    Ok(())
}
