//! The logit lens: every block's output projected through the final norm and the LM head,
//! as if the model stopped after that block (nostalgebraist's "logit lens").
//!
//! For block i and position t: `lens[i][t] = log_softmax(lm_head(final_norm(resid_post[i][t])))`,
//! where `resid_post[i]` is the hook point `blocks.{i}.resid_post` (docs/hooks.md). The last
//! block's row is the model's own next-token distribution. In transformers the same numbers
//! are `model.lm_head(model.model.norm(out.hidden_states[i + 1]))` for every block but the
//! last (transformers' last hidden state is already normed; its row is `out.logits`).
//!
//! One forward pass captures every block's output, then each block's rows go through
//! [`Model::final_head`] and the `top_logprobs` kernel on the GPU; only the top ids and
//! log-probs come back.

use kiln_kernels::topn;
use kiln_model::hooks::{Hooks, Point};
use kiln_model::Model;
use kiln_tensor::{DType, Device, Recorder, Tensor};

use crate::error::{param_error, Result};
use crate::score::chunk_rows;

/// The logit lens of one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Lens {
    /// The input ids, one per position.
    pub ids: Vec<u32>,
    /// The blocks the rows of `top` are, in order (every block unless asked otherwise).
    pub blocks: Vec<usize>,
    /// `top[r][t]`: at block `blocks[r]`, position t, the most likely next ids with their log-probs,
    /// best first (ties to the smaller id).
    pub top: Vec<Vec<Vec<(u32, f32)>>>,
}

impl Lens {
    /// The number of blocks shown (rows of the lens).
    pub fn layers(&self) -> usize {
        self.top.len()
    }

    /// The number of positions (columns of the lens).
    pub fn positions(&self) -> usize {
        self.ids.len()
    }
}

/// The logit lens of `ids` (1..= the model's context) at every block, with the `top` (1..=
/// [`topn::MAX_TOP`]) most likely next ids per block and position.
pub fn logit_lens(dev: &Device, model: &Model, ids: &[u32], top: usize) -> Result<Lens> {
    let every: Vec<usize> = (0..model.config().n_layers).collect();
    logit_lens_with(dev, model, ids, top, &every, Hooks::new())
}

/// [`logit_lens`] at the given `blocks` only (distinct, each below the model's block
/// count), with `hooks`'s edits acting on the pass (e.g. a steering vector, to see how an
/// intervention moves every block's prediction). The model's own hooks
/// ([`Model::set_hooks`]) are not used.
pub fn logit_lens_with(dev: &Device, model: &Model, ids: &[u32], top: usize, blocks: &[usize], mut hooks: Hooks) -> Result<Lens> {
    if top == 0 || top > topn::MAX_TOP {
        return Err(param_error("top", format!("1 to {} ids per cell, got {top}", topn::MAX_TOP)));
    }
    let c = model.config();
    if ids.is_empty() || ids.len() > c.max_position_embeddings {
        return Err(param_error(
            "prompt",
            format!("{} tokens: the lens needs 1 to {} (the model's context)", ids.len(), c.max_position_embeddings),
        ));
    }
    if blocks.is_empty() {
        return Err(param_error("blocks", "give at least one block"));
    }
    for (k, &b) in blocks.iter().enumerate() {
        if b >= c.n_layers {
            return Err(param_error("blocks", format!("block {b} does not exist: the model has blocks 0 to {}", c.n_layers - 1)));
        }
        if blocks[..k].contains(&b) {
            return Err(param_error("blocks", format!("block {b} is listed twice")));
        }
    }
    kiln_kernels::embedding::check_ids(ids, c.vocab_size)?;
    for &b in blocks {
        hooks.capture(Point::ResidPost(b));
    }

    // One pass over the prompt; every block's output stays for the captures.
    let mut cache = model.new_cache(dev, ids.len())?;
    let input = Tensor::from_slice(dev, ids, &[ids.len()])?;
    let mut rec = Recorder::new(dev);
    model.forward_with_hooks(&mut rec, &input, &mut cache, false, &hooks)?;
    rec.submit()?;
    // One capture per block, in the order asked.
    let mut taken = hooks.take_captures()?;
    let mut captures = Vec::with_capacity(blocks.len());
    for &b in blocks {
        let Some(k) = taken.iter().position(|c| c.point == Point::ResidPost(b)) else {
            return Err(param_error("blocks", format!("block {b}'s output was not captured")));
        };
        captures.push(taken.swap_remove(k));
    }
    drop(cache);

    // Every block's rows stacked, [blocks · seq, hidden], through the head in chunks of at
    // most the multi-row matvec's width: each chunk reads the LM head once and uses every
    // decoded weight for all its rows. (More rows would take the tiled prefill matmul; on
    // lavapipe, Qwen2.5's 24 × 13 rows took 4m40 that way and 3m39 in 16-row chunks.)
    let seq = ids.len();
    let hidden = c.hidden_size;
    let mut stacked = Vec::with_capacity(c.n_layers * seq * hidden);
    for capture in &captures {
        if capture.shape != [seq, hidden] {
            return Err(param_error("prompt", format!("{} captured {:?} for {seq} positions", capture.point, capture.shape)));
        }
        stacked.extend_from_slice(&capture.data);
    }
    let total = captures.len() * seq;
    let chunk = chunk_rows(dev, model).min(kiln_kernels::matvec::MAX_ROWS);
    let mut cells: Vec<Vec<(u32, f32)>> = Vec::with_capacity(total);
    for start in (0..total).step_by(chunk) {
        let n = chunk.min(total - start);
        let h = Tensor::from_slice(dev, &stacked[start * hidden..(start + n) * hidden], &[n, hidden])?;
        let top_ids = Tensor::empty(dev, &[n, top], DType::U32)?;
        let top_lps = Tensor::empty(dev, &[n, top], DType::F32)?;
        let mut rec = Recorder::new(dev);
        let logits = model.final_head(&mut rec, &h)?; // [n, vocab]
        topn::top_logprobs(&mut rec, &logits, &top_ids, &top_lps)?;
        rec.submit()?;
        let (top_ids, top_lps) = (top_ids.to_vec_u32()?, top_lps.to_vec_f32()?);
        cells.extend((0..n).map(|r| (0..top).map(|j| (top_ids[r * top + j], top_lps[r * top + j])).collect()));
    }
    let lens = cells.chunks(seq).map(|row| row.to_vec()).collect();
    Ok(Lens { ids: ids.to_vec(), blocks: blocks.to_vec(), top: lens })
}
