//! GPT-2: learned position embeddings, pre-norm LayerNorm blocks, fused `c_attn`
//! (split into q/k/v projections at load), GELU (tanh) MLP and an LM head tied to the
//! token embedding. Mirrors transformers' `modeling_gpt2.py`. Hugging Face stores the
//! Conv1D weights `[in, out]`; they are transposed once at load to `[out, in]`.

use kiln_kernels::embedding;
use kiln_tensor::{DType, Device, Recorder, Tensor};

use crate::batch::{attend, Step};
use crate::kv_cache::{KvCache, KvDtype};
use crate::nn::{self, Embedding, LayerNorm, LmHead, Linear};
use crate::{ModelConfig, Result, WeightStore};

pub struct Gpt2Block {
    ln_1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    c_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

pub struct Gpt2 {
    pub config: ModelConfig,
    wte: Embedding, // [vocab, hidden]
    wpe: Tensor, // [n_positions, hidden]
    blocks: Vec<Gpt2Block>,
    ln_f: LayerNorm,
    lm_head: LmHead,
    /// The storage of the KV caches `Model::new_cache` makes.
    pub kv_dtype: KvDtype,
}

/// Columns `cols` of a row-major `[rows, n_cols]` matrix of `elem`-byte elements, transposed:
/// the `[cols.len(), rows]` nn.Linear weight of one slice of a Conv1D.
fn transposed_columns(bytes: &[u8], rows: usize, n_cols: usize, cols: std::ops::Range<usize>, elem: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(cols.len() * rows * elem);
    for c in cols {
        for r in 0..rows {
            let at = (r * n_cols + c) * elem;
            out.extend_from_slice(&bytes[at..at + elem]);
        }
    }
    out
}

impl Gpt2 {
    pub fn load(dev: &Device, config: &ModelConfig, w: &WeightStore, tied: bool) -> Result<Gpt2> {
        let c = config;
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let eps = c.norm_eps as f32;
        let ln = |p: &str| -> Result<LayerNorm> {
            Ok(LayerNorm { weight: w.load_f32(dev, &format!("{p}.weight"), &[h])?, bias: w.load_f32(dev, &format!("{p}.bias"), &[h])?, eps })
        };
        let conv1d = |p: &str, n_in: usize, n_out: usize| -> Result<Linear> {
            let weight = w.load_transposed(dev, &format!("{p}.weight"), [n_in, n_out])?;
            Ok(Linear::new(weight, Some(w.load_f32(dev, &format!("{p}.bias"), &[n_out])?)))
        };
        let mut blocks = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let p = format!("transformer.h.{i}");
            // c_attn: Conv1D [h, 3h]; its output columns are q, then k, then v. Each third,
            // transposed, is an nn.Linear weight [h, h].
            let name = format!("{p}.attn.c_attn.weight");
            let (_, dtype, raw) = w.checked(&name, &[h, 3 * h])?;
            let bias = w.get_f32(&format!("{p}.attn.c_attn.bias"), &[3 * h])?;
            let part = |j: usize| -> Result<Linear> {
                let cols = j * h..(j + 1) * h;
                let weight = transposed_columns(raw, h, 3 * h, cols.clone(), dtype.elem_bytes());
                let weight = Tensor::from_bytes(dev, &weight, &[h, h], dtype)?;
                Ok(Linear::new(weight, Some(Tensor::from_slice(dev, &bias[cols], &[h])?)))
            };
            blocks.push(Gpt2Block {
                ln_1: ln(&format!("{p}.ln_1"))?,
                q: part(0)?,
                k: part(1)?,
                v: part(2)?,
                c_proj: conv1d(&format!("{p}.attn.c_proj"), h, h)?,
                ln_2: ln(&format!("{p}.ln_2"))?,
                c_fc: conv1d(&format!("{p}.mlp.c_fc"), h, inter)?,
                mlp_proj: conv1d(&format!("{p}.mlp.c_proj"), inter, h)?,
            });
        }
        let wte = crate::model::load_embedding(dev, w, "transformer.wte.weight", c.vocab_size, h)?;
        let wpe = w.load(dev, "transformer.wpe.weight", &[c.max_position_embeddings, h])?;
        let lm_head = crate::model::load_lm_head(dev, w, c.vocab_size, h, tied.then_some(&wte))?;
        Ok(Gpt2 {
            config: c.clone(),
            wte,
            wpe,
            blocks,
            ln_f: ln("transformer.ln_f")?,
            lm_head,
            kv_dtype: KvDtype::default(),
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
            .map(|b| [&b.q, &b.k, &b.v, &b.c_proj, &b.c_fc, &b.mlp_proj].into_iter().map(lin).sum::<u64>() + ln(&b.ln_1) + ln(&b.ln_2))
            .sum();
        blocks + self.wte.bytes() + self.wpe.byte_len() + self.lm_head.bytes_unless_shared(&self.wte) + ln(&self.ln_f)
    }

    /// See [`crate::qwen2::Qwen2::forward`].
    pub fn forward(
        &self,
        rec: &mut Recorder,
        ids: &Tensor,
        cache: &mut KvCache,
        step: Step,
        all_logits: bool,
    ) -> Result<Tensor> {
        let c = &self.config;
        let seq = ids.numel();
        step.prepare(cache, seq)?;
        let (nh, hd) = (c.n_heads, c.head_dim);
        let dev = ids.device();

        // h = wte[ids] + wpe[positions]
        let positions = Tensor::from_slice(dev, &step.positions(cache, seq), &[seq])?;
        let rows = step.rows(cache);
        let tok = self.wte.forward(rec, ids)?;
        let pe = Tensor::empty(dev, &[seq, c.hidden_size], DType::F32)?;
        embedding::embedding(rec, &positions, &self.wpe, &pe)?;
        let mut h = nn::add(rec, &tok, &pe)?; // [seq, hidden]

        let first_dispatch = rec.dispatch_count();
        for (i, b) in self.blocks.iter().enumerate() {
            let x = b.ln_1.forward(rec, &h)?;
            let q = b.q.forward(rec, &x)?.reshape(&[seq, nh, hd])?;
            let k = b.k.forward(rec, &x)?.reshape(&[seq, nh, hd])?;
            let v = b.v.forward(rec, &x)?.reshape(&[seq, nh, hd])?;
            // Append K/V to the cache, causal attention: [seq, heads, head_dim]
            let attn = attend(rec, &q, &k, &v, cache, rows, i, None)?;
            let o = b.c_proj.forward(rec, &attn.reshape(&[seq, nh * hd])?)?;
            h = nn::add(rec, &h, &o)?;

            let x = b.ln_2.forward(rec, &h)?;
            let m = b.c_fc.forward(rec, &x)?; // [seq, 4*hidden]
            let m = nn::gelu_tanh(rec, &m)?;
            let d = b.mlp_proj.forward(rec, &m)?; // [seq, hidden]
            h = nn::add(rec, &h, &d)?;
        }
        rec.count_layers(c.n_layers, rec.dispatch_count() - first_dispatch);
        step.advance(cache, seq)?;
        let h = if all_logits { h } else { crate::model::last_row(rec, &h)? };
        let x = self.ln_f.forward(rec, &h)?;
        self.lm_head.forward(rec, &x)
    }
}
