//! Qwen2 and Llama (Llama = Qwen2 without the QKV bias): pre-norm decoder with RMSNorm,
//! rotary position embeddings, grouped-query attention over a KV cache and a SwiGLU
//! MLP. Mirrors transformers' `modeling_qwen2.py` / `modeling_llama.py`.

use kiln_kernels::rope;
use kiln_tensor::{Device, Recorder, Tensor};

use crate::batch::{attend, Step};
use crate::kv_cache::{KvCache, KvDtype};
use crate::nn::{self, Embedding, LmHead, Linear, RmsNorm};
use crate::source::WeightSource;
use crate::{ModelConfig, Result};

pub struct Qwen2Layer {
    input_norm: RmsNorm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    post_attention_norm: RmsNorm,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

pub struct Qwen2 {
    pub config: ModelConfig,
    embed_tokens: Embedding, // [vocab, hidden]
    layers: Vec<Qwen2Layer>,
    norm: RmsNorm,
    lm_head: LmHead,
    rope: rope::RopeTable,
    /// The storage of the KV caches `Model::new_cache` makes.
    pub kv_dtype: KvDtype,
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
            layers.push(Qwen2Layer {
                input_norm: norm(&format!("{p}.input_layernorm.weight"))?,
                q_proj: linear(w, dev, &format!("{p}.self_attn.q_proj"), [q, h], c.qkv_bias)?,
                k_proj: linear(w, dev, &format!("{p}.self_attn.k_proj"), [kv, h], c.qkv_bias)?,
                v_proj: linear(w, dev, &format!("{p}.self_attn.v_proj"), [kv, h], c.qkv_bias)?,
                o_proj: linear(w, dev, &format!("{p}.self_attn.o_proj"), [h, q], c.o_bias)?,
                post_attention_norm: norm(&format!("{p}.post_attention_layernorm.weight"))?,
                gate_proj: linear(w, dev, &format!("{p}.mlp.gate_proj"), [inter, h], c.mlp_bias)?,
                up_proj: linear(w, dev, &format!("{p}.mlp.up_proj"), [inter, h], c.mlp_bias)?,
                down_proj: linear(w, dev, &format!("{p}.mlp.down_proj"), [h, inter], c.mlp_bias)?,
            });
        }
        let embed_tokens = crate::model::load_embedding(dev, w, crate::embedding_name(c.arch), c.vocab_size, h)?;
        let lm_head = crate::model::load_lm_head(dev, w, c.vocab_size, h, tied.then_some(&embed_tokens))?;
        let rope = rope::RopeTable::new(dev, c.head_dim, c.rope_theta as f32, c.max_position_embeddings)?;
        Ok(Qwen2 {
            config: c.clone(),
            embed_tokens,
            layers,
            norm: norm("model.norm.weight")?,
            lm_head,
            rope,
            kv_dtype: KvDtype::default(),
        })
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
                [&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj]
                    .into_iter()
                    .map(lin)
                    .sum::<u64>()
                    + l.input_norm.weight.byte_len()
                    + l.post_attention_norm.weight.byte_len()
            })
            .sum();
        layers + self.embed_tokens.bytes() + self.lm_head.bytes_unless_shared(&self.embed_tokens) + self.norm.weight.byte_len()
    }

    /// Run `ids` `[seq]` through the model as `step` says (one sequence in one slot, or one
    /// id per slot of a batch), writing their K/V into the cache. Returns logits
    /// `[seq, vocab]`, or `[1, vocab]` for the last position only when `all_logits` is
    /// false (one sequence only).
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
        let rows = step.rows(cache);
        let (nh, nkv, hd) = (c.n_heads, c.n_kv_heads, c.head_dim);

        let mut h = self.embed_tokens.forward(rec, ids)?; // [seq, hidden]
        let first_dispatch = rec.dispatch_count();
        for (i, layer) in self.layers.iter().enumerate() {
            // Self-attention block.
            let x = layer.input_norm.forward(rec, &h)?; // [seq, hidden]
            let q = layer.q_proj.forward(rec, &x)?.reshape(&[seq, nh, hd])?;
            let k = layer.k_proj.forward(rec, &x)?.reshape(&[seq, nkv, hd])?;
            let v = layer.v_proj.forward(rec, &x)?.reshape(&[seq, nkv, hd])?;
            // RoPE on q and k, append K/V to the cache, attention: [seq, heads, head_dim]
            let attn = attend(rec, &q, &k, &v, cache, rows, i, Some(&self.rope))?;
            let o = layer.o_proj.forward(rec, &attn.reshape(&[seq, nh * hd])?)?; // [seq, hidden]
            h = nn::add(rec, &h, &o)?;

            // MLP block: down(silu(gate(x)) * up(x)).
            let x = layer.post_attention_norm.forward(rec, &h)?;
            let gate = layer.gate_proj.forward(rec, &x)?; // [seq, intermediate]
            let up = layer.up_proj.forward(rec, &x)?;
            let m = nn::swiglu(rec, &gate, &up)?;
            let d = layer.down_proj.forward(rec, &m)?; // [seq, hidden]
            h = nn::add(rec, &h, &d)?;
        }
        rec.count_layers(c.n_layers, rec.dispatch_count() - first_dispatch);
        step.advance(cache, seq)?;
        let h = if all_logits { h } else { crate::model::last_row(rec, &h)? };
        let x = self.norm.forward(rec, &h)?;
        self.lm_head.forward(rec, &x) // [seq or 1, vocab]
    }
}
