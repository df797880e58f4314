//! Which rows a forward pass runs and where their K/V go: one sequence (any number of
//! positions, in one slot of the cache) or one decode position for each of several
//! sequences (continuous batching, each in its own slot). The projections and the MLP run
//! on all rows together, so each weight is read once per step; RoPE + the KV append and
//! attention are one dispatch each for all rows (plus a merge dispatch when the keys are
//! split), reading each row's (slot, position) from the cache's rows table — no per-row
//! copies.

use kiln_kernels::kv_cache::Rows;
use kiln_kernels::{attention, kv_cache, rope};
use kiln_tensor::{DType, Recorder, Tensor};

use crate::kv_cache::KvCache;
use crate::{ModelError, Result};

/// The rows of one forward pass.
#[derive(Clone, Copy, Debug)]
pub enum Step<'s> {
    /// Every id, in order, at the next positions of this slot.
    Seq {
        /// The cache slot the sequence lives in.
        slot: usize,
    },
    /// Id b at the next position of slot `slots[b]` (distinct slots).
    Batch {
        /// The slot of each id, in id order.
        slots: &'s [usize],
    },
}

impl Step<'_> {
    /// Check `seq` ids fit the cache, and for a batch write its rows table.
    pub fn prepare(&self, cache: &mut KvCache, seq: usize) -> Result<()> {
        match self {
            Step::Seq { slot } => cache.check_room(*slot, seq),
            Step::Batch { slots } => {
                if slots.len() != seq {
                    return Err(ModelError::Param {
                        name: "ids".into(),
                        detail: format!(
                            "a batched decode step takes one id per sequence: {seq} ids for {} slots",
                            slots.len()
                        ),
                    });
                }
                cache.write_batch_rows(slots)
            }
        }
    }

    /// The kernels' view of the rows (after [`Step::prepare`]).
    pub fn rows<'c>(&self, cache: &'c KvCache) -> Rows<'c> {
        match self {
            Step::Seq { slot } => Rows::Run { slot: *slot, start: cache.len(*slot) },
            Step::Batch { .. } => cache.batch_rows(),
        }
    }

    /// Mark the rows as cached.
    pub fn advance(&self, cache: &mut KvCache, seq: usize) -> Result<()> {
        match self {
            Step::Seq { slot } => cache.advance(*slot, seq),
            Step::Batch { slots } => slots.iter().try_for_each(|&s| cache.advance(s, 1)),
        }
    }
}

/// Attention of layer `layer` for q `[seq, nh, hd]`, k and v `[seq, nkv, hd]`: RoPE (when
/// given; half-split) on q and k with K/V written into the cache in one dispatch, then
/// causal attention over each row's slot. Returns `[seq, nh, hd]`.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cache: &KvCache,
    rows: Rows,
    layer: usize,
    rope_table: Option<&rope::RopeTable>,
) -> Result<Tensor> {
    let dev = q.device();
    let (kc, vc) = (&cache.k[layer], &cache.v[layer]);
    let q = match rope_table {
        Some(table) => {
            let q_rot = Tensor::empty(dev, q.shape(), DType::F32)?;
            kv_cache::rope_kv_append(rec, q, k, v, table, rope::RopeMode::HalfSplit, rows, &q_rot, kc, vc)?;
            q_rot
        }
        None => {
            kv_cache::kv_append_rows(rec, k, v, rows, kc, vc)?;
            q.clone()
        }
    };
    let out = Tensor::empty(dev, q.shape(), DType::F32)?;
    attention::attend(rec, &q, kc, vc, rows, &out)?;
    Ok(out)
}
