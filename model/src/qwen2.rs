//! Qwen2, Llama and Qwen3 (Llama = Qwen2 without the QKV bias; Qwen3 = Llama with an
//! RMSNorm over each head of q and k before RoPE): pre-norm decoder with RMSNorm, rotary
//! position embeddings, grouped-query attention over a KV cache and a SwiGLU MLP.
//! Mirrors transformers' `modeling_qwen2.py` / `modeling_llama.py` / `modeling_qwen3.py`.

use std::sync::{Arc, Mutex};

use kiln_kernels::rope;
use kiln_tensor::{Device, Recorder, Tensor};

use crate::batch::{attend, Step};
use crate::kv_cache::{KvCache, KvDtype};
use crate::fused::{GateUp, NormRef, Stacked};
use crate::hooks::{Hooks, Point};
use crate::nn::{Embedding, LmHead, Linear, RmsNorm};
use crate::source::WeightSource;
use crate::{ModelConfig, Result};

/// One decoder layer: RMSNorm, attention (q/k/v stacked, optional q/k head norms), RMSNorm,
/// SwiGLU MLP.
pub struct Qwen2Layer {
    input_norm: RmsNorm,
    /// q_proj, k_proj, v_proj stacked by weight type (`fused::Stacked`).
    qkv: Stacked,
    /// Qwen3: RMSNorm over each head's `head_dim` values of q and of k (weights `[head_dim]`).
    qk_norm: Option<(RmsNorm, RmsNorm)>,
    o_proj: Linear,
    post_attention_norm: RmsNorm,
    /// gate_proj and up_proj stacked, SwiGLU in the epilogue.
    gate_up: GateUp,
    down_proj: Linear,
}

/// A Qwen2, Llama or Qwen3 model's weights on the GPU.
pub struct Qwen2 {
    /// The config it was loaded with.
    pub config: ModelConfig,
    embed_tokens: Embedding, // [vocab, hidden]
    layers: Vec<Qwen2Layer>,
    norm: RmsNorm,
    lm_head: LmHead,
    /// cos/sin for the positions of the largest cache run so far, not the file's context
    /// (a header field must not size a table the run does not need); grown on demand.
    rope: Mutex<Arc<rope::RopeTable>>,
    /// The storage of the KV caches `Model::new_cache` makes.
    pub kv_dtype: KvDtype,
    /// The hooks the forward pass runs (`Model::set_hooks`; none at load).
    pub hooks: Hooks,
}

fn linear(w: &dyn WeightSource, dev: &Device, name: &str, shape: [usize; 2], bias: bool) -> Result<Linear> {
    let weight = w.matrix(dev, &format!("{name}.weight"), shape)?;
    let bias = if bias { Some(w.vector_f32(dev, &format!("{name}.bias"), shape[0])?) } else { None };
    Ok(Linear::new(weight, bias))
}

impl Qwen2 {
    /// Upload every weight (in its stored dtype; norms and biases as f32).
    pub fn load(dev: &Device, config: &ModelConfig, w: &dyn WeightSource, tied: bool) -> Result<Qwen2> {
        let c = config;
        let (h, q, kv, inter) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let eps = c.norm_eps as f32;
        let norm = |name: &str| -> Result<RmsNorm> { Ok(RmsNorm { weight: w.vector_f32(dev, name, h)?, eps }) };
        let mut layers = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let p = format!("model.layers.{i}");
            let qkv = vec![
                linear(w, dev, &format!("{p}.self_attn.q_proj"), [q, h], c.qkv_bias)?,
                linear(w, dev, &format!("{p}.self_attn.k_proj"), [kv, h], c.qkv_bias)?,
                linear(w, dev, &format!("{p}.self_attn.v_proj"), [kv, h], c.qkv_bias)?,
            ];
            let head_norm = |name: &str| -> Result<RmsNorm> {
                Ok(RmsNorm { weight: w.vector_f32(dev, &format!("{p}.self_attn.{name}.weight"), c.head_dim)?, eps })
            };
            let qk_norm = if c.arch.has_qk_norm() { Some((head_norm("q_norm")?, head_norm("k_norm")?)) } else { None };
            let gate = linear(w, dev, &format!("{p}.mlp.gate_proj"), [inter, h], c.mlp_bias)?;
            let up = linear(w, dev, &format!("{p}.mlp.up_proj"), [inter, h], c.mlp_bias)?;
            layers.push(Qwen2Layer {
                input_norm: norm(&format!("{p}.input_layernorm.weight"))?,
                qkv: Stacked::new(dev, qkv)?,
                qk_norm,
                o_proj: linear(w, dev, &format!("{p}.self_attn.o_proj"), [h, q], c.o_bias)?,
                post_attention_norm: norm(&format!("{p}.post_attention_layernorm.weight"))?,
                gate_up: GateUp::new(dev, gate, up)?,
                down_proj: linear(w, dev, &format!("{p}.mlp.down_proj"), [h, inter], c.mlp_bias)?,
            });
        }
        let embed_tokens = crate::model::load_embedding(dev, w, crate::embedding_name(c.arch), c.vocab_size, h)?;
        let lm_head = crate::model::load_lm_head(dev, w, c.vocab_size, h, tied.then_some(&embed_tokens))?;
        // One position for now: checks head_dim and theta at load; forward grows it.
        let rope = rope::RopeTable::new(dev, c.head_dim, c.rope_theta as f32, 1)?;
        Ok(Qwen2 {
            config: c.clone(),
            embed_tokens,
            layers,
            norm: norm("model.norm.weight")?,
            lm_head,
            rope: Mutex::new(Arc::new(rope)),
            kv_dtype: KvDtype::default(),
            hooks: Hooks::new(),
        })
    }

    /// The RoPE table for positions `0..positions` at least, rebuilt (to exactly
    /// `positions`) when the current one is shorter. `positions` is a cache's capacity,
    /// which `Model::new_cache_with` bounds by the model's context.
    fn rope_table(&self, dev: &Device, positions: usize) -> Result<Arc<rope::RopeTable>> {
        let c = &self.config;
        crate::model::check_context(c, positions)?;
        let mut table = self.rope.lock().unwrap_or_else(|e| e.into_inner());
        if table.max_positions < positions {
            *table = Arc::new(rope::RopeTable::new(dev, c.head_dim, c.rope_theta as f32, positions)?);
        }
        Ok(table.clone())
    }

    /// Weight bytes one decode step reads: every layer, the final norm and the whole LM
    /// head; of the embedding table only one row (not counted).
    pub fn decode_weight_bytes(&self) -> u64 {
        // weight_bytes counts the embedding, and the head only when it is not tied.
        self.weight_bytes() - self.embed_tokens.bytes() - self.lm_head.bytes_unless_shared(&self.embed_tokens) + self.lm_head.bytes()
    }

    /// Bytes of weights resident on the GPU.
    pub fn weight_bytes(&self) -> u64 {
        let lin = |l: &Linear| l.weight.byte_len() + l.bias.as_ref().map_or(0, |b| b.byte_len());
        let layers: u64 = self
            .layers
            .iter()
            .map(|l| {
                [&l.o_proj, &l.down_proj].into_iter().map(lin).sum::<u64>()
                    + l.qkv.bytes()
                    + l.gate_up.bytes()
                    + l.input_norm.weight.byte_len()
                    + l.qk_norm.as_ref().map_or(0, |(q, k)| q.weight.byte_len() + k.weight.byte_len())
                    + l.post_attention_norm.weight.byte_len()
            })
            .sum();
        layers + self.embed_tokens.bytes() + self.lm_head.bytes_unless_shared(&self.embed_tokens) + self.norm.weight.byte_len()
    }

    /// The final norm and the LM head on `h` `[rows, hidden]` ([`crate::Model::final_head`]).
    pub(crate) fn final_head(&self, rec: &mut Recorder, h: &Tensor) -> Result<Tensor> {
        crate::fused::normed_lm_head(rec, &self.lm_head, h, NormRef::Rms(&self.norm))
    }

    /// Run `ids` `[seq]` through the model as `step` says (one sequence in one slot, or one
    /// id per slot of a batch), writing their K/V into the cache. Returns logits
    /// `[seq, vocab]`, or `[1, vocab]` for the last position only when `all_logits` is
    /// false (one sequence only). `hk` is the hooks the pass runs (the model's own, or a
    /// set given for one pass: [`crate::Model::forward_with_hooks`]).
    pub fn forward(
        &self,
        rec: &mut Recorder,
        ids: &Tensor,
        cache: &mut KvCache,
        step: Step,
        all_logits: bool,
        hk: &Hooks,
    ) -> Result<Tensor> {
        let c = &self.config;
        let seq = ids.numel();
        step.prepare(cache, seq)?;
        let rows = step.rows(cache);
        let (nh, nkv, hd) = (c.n_heads, c.n_kv_heads, c.head_dim);
        let rope = self.rope_table(rec.device(), cache.capacity())?;

        let h = self.embed_tokens.forward(rec, ids)?; // [seq, hidden]
        let mut h = hk.run(rec, Point::Embed, h)?;
        let first_dispatch = rec.dispatch_count();
        for (i, layer) in self.layers.iter().enumerate() {
            // Self-attention block: q, k, v = proj(input_norm(h)) (one matvec per weight
            // type in decode, the norm folded in unless a hook needs attn_in), [seq, heads, head_dim] each.
            // (x, a clone of h when the norm is folded, is dropped at once: holding it
            // would change when h's buffer returns to the pool, and so which buffers
            // the next step gets and its bind groups.)
            let qkv = {
                let (x, norm) = hk.norm_input(rec, Point::AttnIn(i), &h, NormRef::Rms(&layer.input_norm))?;
                layer.qkv.forward(rec, &x, norm)?
            };
            let (q, k) = match &layer.qk_norm {
                // Qwen3: q = q_norm(q), k = k_norm(k) over each head's head_dim values.
                Some((q_norm, k_norm)) => (
                    q_norm.forward(rec, &qkv[0].reshape(&[seq * nh, hd])?)?,
                    k_norm.forward(rec, &qkv[1].reshape(&[seq * nkv, hd])?)?,
                ),
                None => (qkv[0].clone(), qkv[1].clone()),
            };
            let q = q.reshape(&[seq, nh, hd])?;
            let k = k.reshape(&[seq, nkv, hd])?;
            let v = qkv[2].reshape(&[seq, nkv, hd])?;
            // RoPE on q and k, append K/V to the cache, attention: [seq, heads, head_dim]
            let attn = attend(rec, &q, &k, &v, cache, rows, i, Some(&rope))?;
            let attn = hk.zero_heads(rec, i, attn.reshape(&[seq, nh * hd])?, hd)?;
            // h = h + o_proj(attn)   [seq, hidden]
            h = hk.linear_residual(rec, Point::AttnOut(i), &attn, &layer.o_proj, &h)?;
            h = hk.run(rec, Point::ResidMid(i), h)?;

            // MLP block: h = h + down(silu(gate(x)) * up(x)), x = post_attention_norm(h).
            let m = layer.gate_up.forward(rec, &h, NormRef::Rms(&layer.post_attention_norm))?; // [seq, intermediate]
            h = hk.linear_residual(rec, Point::MlpOut(i), &m, &layer.down_proj, &h)?;
            h = hk.run(rec, Point::ResidPost(i), h)?;
        }
        rec.count_layers(c.n_layers, rec.dispatch_count() - first_dispatch);
        step.advance(cache, seq)?;
        let h = if all_logits { h } else { crate::model::last_row(rec, &h)? };
        let (x, norm) = hk.norm_input(rec, Point::FinalNorm, &h, NormRef::Rms(&self.norm))?;
        let logits = crate::fused::normed_lm_head(rec, &self.lm_head, &x, norm)?; // [seq or 1, vocab]
        hk.run(rec, Point::Logits, logits)
    }
}
