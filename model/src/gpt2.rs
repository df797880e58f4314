//! GPT-2: learned position embeddings, pre-norm LayerNorm blocks, fused `c_attn`
//! (one stacked q/k/v weight, see `fused::Stacked`), GELU (tanh) MLP and an LM head tied to the
//! token embedding. Mirrors transformers' `modeling_gpt2.py`. Hugging Face stores the
//! Conv1D weights `[in, out]`; they are transposed once at load to `[out, in]`.

use kiln_kernels::embedding;
use kiln_kernels::matvec::Activation;
use kiln_tensor::{Device, Recorder, Tensor};

use crate::batch::{attend, Step};
use crate::kv_cache::{KvCache, KvDtype};
use crate::fused::{self, NormRef, Stacked};
use crate::hooks::{Hooks, Point};
use crate::nn::{Embedding, LayerNorm, LmHead, Linear};
use crate::source::WeightSource;
use crate::{ModelConfig, Result};

/// One GPT-2 transformer block: LayerNorm, attention, LayerNorm, GELU MLP.
pub struct Gpt2Block {
    ln_1: LayerNorm,
    /// c_attn's q, k and v thirds, stacked again on the GPU (`fused::Stacked`).
    qkv: Stacked,
    c_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// A GPT-2 model's weights on the GPU.
pub struct Gpt2 {
    /// The config it was loaded with.
    pub config: ModelConfig,
    wte: Embedding, // [vocab, hidden]
    wpe: Tensor, // [n_positions, hidden]
    blocks: Vec<Gpt2Block>,
    ln_f: LayerNorm,
    lm_head: LmHead,
    /// The storage of the KV caches `Model::new_cache` makes.
    pub kv_dtype: KvDtype,
    /// The hooks the forward pass runs (`Model::set_hooks`; none at load).
    pub hooks: Hooks,
}

impl Gpt2 {
    /// Upload every weight (matrices in their stored dtype, Conv1D weights transposed; norms and
    /// biases as f32); `tied` makes the LM head the token embedding.
    pub fn load(dev: &Device, config: &ModelConfig, w: &dyn WeightSource, tied: bool) -> Result<Gpt2> {
        let c = config;
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let eps = c.norm_eps as f32;
        let ln = |p: &str| -> Result<LayerNorm> {
            Ok(LayerNorm { weight: w.vector_f32(dev, &format!("{p}.weight"), h)?, bias: w.vector_f32(dev, &format!("{p}.bias"), h)?, eps })
        };
        let conv1d = |p: &str, n_in: usize, n_out: usize| -> Result<Linear> {
            let weight = w.conv1d(dev, &format!("{p}.weight"), [n_in, n_out])?;
            Ok(Linear::new(weight, Some(w.vector_f32(dev, &format!("{p}.bias"), n_out)?)))
        };
        let mut blocks = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let p = format!("transformer.h.{i}");
            // c_attn: Conv1D [h, 3h] whose output columns are q, then k, then v; transposed
            // it is the three nn.Linear weights [h, h] already stacked by rows.
            let c_attn = conv1d(&format!("{p}.attn.c_attn"), h, 3 * h)?;
            blocks.push(Gpt2Block {
                ln_1: ln(&format!("{p}.ln_1"))?,
                qkv: Stacked::from_stacked(dev, c_attn, &[h, h, h])?,
                c_proj: conv1d(&format!("{p}.attn.c_proj"), h, h)?,
                ln_2: ln(&format!("{p}.ln_2"))?,
                c_fc: conv1d(&format!("{p}.mlp.c_fc"), h, inter)?,
                mlp_proj: conv1d(&format!("{p}.mlp.c_proj"), inter, h)?,
            });
        }
        let wte = crate::model::load_embedding(dev, w, "transformer.wte.weight", c.vocab_size, h)?;
        let wpe = w.matrix(dev, "transformer.wpe.weight", [c.max_position_embeddings, h])?;
        let lm_head = crate::model::load_lm_head(dev, w, c.vocab_size, h, tied.then_some(&wte))?;
        Ok(Gpt2 {
            config: c.clone(),
            wte,
            wpe,
            blocks,
            ln_f: ln("transformer.ln_f")?,
            lm_head,
            kv_dtype: KvDtype::default(),
            hooks: Hooks::new(),
        })
    }

    /// Weight bytes one decode step reads: every layer, the final norm and the whole LM
    /// head; of the embedding table only one row (not counted).
    pub fn decode_weight_bytes(&self) -> u64 {
        // weight_bytes counts the embedding, and the head only when it is not tied.
        self.weight_bytes() - self.wte.bytes() - self.lm_head.bytes_unless_shared(&self.wte) + self.lm_head.bytes()
    }

    /// Bytes of weights resident on the GPU.
    pub fn weight_bytes(&self) -> u64 {
        let lin = |l: &Linear| l.weight.byte_len() + l.bias.as_ref().map_or(0, |b| b.byte_len());
        let ln = |l: &LayerNorm| l.weight.byte_len() + l.bias.byte_len();
        let blocks: u64 = self
            .blocks
            .iter()
            .map(|b| [&b.c_proj, &b.c_fc, &b.mlp_proj].into_iter().map(lin).sum::<u64>() + b.qkv.bytes() + ln(&b.ln_1) + ln(&b.ln_2))
            .sum();
        blocks + self.wte.bytes() + self.wpe.byte_len() + self.lm_head.bytes_unless_shared(&self.wte) + ln(&self.ln_f)
    }

    /// The final norm and the LM head on `h` `[rows, hidden]` ([`crate::Model::final_head`]).
    pub(crate) fn final_head(&self, rec: &mut Recorder, h: &Tensor) -> Result<Tensor> {
        fused::normed_lm_head(rec, &self.lm_head, h, NormRef::Layer(&self.ln_f))
    }

    /// See [`crate::qwen2::Qwen2::forward`].
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
        let (nh, hd) = (c.n_heads, c.head_dim);

        // h = wte[ids] + wpe[positions], the positions read from the cache's rows.
        let rows = step.rows(cache);
        let h0 = self.wte.forward(rec, ids)?; // [seq, hidden]
        embedding::add_positions(rec, &self.wpe, rows, &h0)?;
        let mut h = hk.run(rec, Point::Embed, h0)?;

        let first_dispatch = rec.dispatch_count();
        for (i, b) in self.blocks.iter().enumerate() {
            // q, k, v = c_attn(ln_1(h)): one matvec in decode, LayerNorm folded in unless a
            // hook needs attn_in.
            // (x, a clone of h when the norm is folded, is dropped at once: holding it
            // would change when h's buffer returns to the pool, and so which buffers
            // the next step gets and its bind groups.)
            let qkv = {
                let (x, norm) = hk.norm_input(rec, Point::AttnIn(i), &h, NormRef::Layer(&b.ln_1))?;
                b.qkv.forward(rec, &x, norm)?
            };
            let q = qkv[0].reshape(&[seq, nh, hd])?;
            let k = qkv[1].reshape(&[seq, nh, hd])?;
            let v = qkv[2].reshape(&[seq, nh, hd])?;
            // Append K/V to the cache, causal attention: [seq, heads, head_dim]
            let attn = attend(rec, &q, &k, &v, cache, rows, i, None)?;
            let attn = hk.zero_heads(rec, i, attn.reshape(&[seq, nh * hd])?, hd)?;
            h = hk.linear_residual(rec, Point::AttnOut(i), &attn, &b.c_proj, &h)?;
            h = hk.run(rec, Point::ResidMid(i), h)?;

            // h = h + c_proj(gelu(c_fc(ln_2(h))))
            let m = fused::normed_linear(rec, &h, NormRef::Layer(&b.ln_2), &b.c_fc, Activation::GeluTanh)?; // [seq, 4*hidden]
            h = hk.linear_residual(rec, Point::MlpOut(i), &m, &b.mlp_proj, &h)?;
            h = hk.run(rec, Point::ResidPost(i), h)?;
        }
        rec.count_layers(c.n_layers, rec.dispatch_count() - first_dispatch);
        step.advance(cache, seq)?;
        let h = if all_logits { h } else { crate::model::last_row(rec, &h)? };
        let (x, norm) = hk.norm_input(rec, Point::FinalNorm, &h, NormRef::Layer(&self.ln_f))?;
        let logits = fused::normed_lm_head(rec, &self.lm_head, &x, norm)?;
        hk.run(rec, Point::Logits, logits)
    }
}
