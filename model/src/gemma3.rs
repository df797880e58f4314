//! Gemma 3 (text): a pre- and post-norm decoder. Mirrors transformers'
//! `models/gemma3/modeling_gemma3.py` (`Gemma3ForCausalLM`):
//!
//! - embeddings scaled by `sqrt(hidden)` (in the weights' dtype, f32 here);
//! - every RMSNorm scales by `(1 + w)` (`Gemma3RMSNorm`, computed in f32). A Hugging Face
//!   checkpoint stores `w`, so 1 is added at load; llama.cpp's converter already stored
//!   `1 + w` in a GGUF file (transformers subtracts it again when it reads one), so those
//!   weights are used as they are;
//! - per layer: `h += post_attention_norm(attn(input_norm(h)))`, then
//!   `h += post_feedforward_norm(mlp(pre_feedforward_norm(h)))`;
//! - attention: q/k RMSNorm per head (like Qwen3) before RoPE, scores scaled by
//!   `query_pre_attn_scalar^-0.5`; sliding-window layers attend only the last
//!   `sliding_window` positions and use their own RoPE base (`rope_local_base_freq`),
//!   global layers the full history with `rope_theta`;
//! - MLP: `down(gelu_tanh(gate(x)) * up(x))`;
//! - tied LM head; no logit soft-capping (the config parser refuses it).

use std::sync::{Arc, Mutex};

use kiln_kernels::attention::{self, AttendOptions};
use kiln_kernels::kv_cache::{self as kv, Rows};
use kiln_kernels::{elementwise, rope};
use kiln_tensor::{DType, Device, Recorder, Tensor};
use serde_json::Value;

use crate::batch::Step;
use crate::fused::{self, NormRef, Stacked};
use crate::hooks::{Hooks, Point};
use crate::kv_cache::{KvCache, KvDtype};
use crate::nn::{self, Embedding, LmHead, Linear, RmsNorm};
use crate::config::Fields;
use crate::source::WeightSource;
use crate::{ModelConfig, ModelError, Result};

/// The config fields only Gemma 3 has.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemma3Params {
    /// `query_pre_attn_scalar`: attention scores are scaled by its inverse square root.
    pub query_pre_attn_scalar: f64,
    /// RoPE base of the sliding-window layers (`rope_local_base_freq`, or
    /// `rope_parameters.sliding_attention.rope_theta`); global layers use `rope_theta`.
    pub rope_local_theta: f64,
    /// Keys a sliding-window layer attends: positions `p + 1 - sliding_window ..= p`.
    pub sliding_window: usize,
    /// Per layer: true for a sliding-window (local) layer, false for a global one
    /// (`layer_types`, else every `sliding_window_pattern`-th layer is global).
    pub sliding_layers: Vec<bool>,
}

impl Gemma3Params {
    /// The default layer pattern: every `pattern`-th layer (1-based) is global.
    pub fn pattern_layers(n_layers: usize, pattern: usize) -> Vec<bool> {
        (0..n_layers).map(|i| pattern == 0 || (i + 1) % pattern != 0).collect()
    }
}

/// Gemma 3's RoPE bases, scaling and layer pattern (transformers' `Gemma3TextConfig`):
/// `rope_parameters.{full_attention,sliding_attention}` (v5) or `rope_theta` /
/// `rope_local_base_freq` / `rope_scaling` (v4), defaults 1e6 and 1e4; `layer_types` or
/// `sliding_window_pattern` (default 6). Soft-capping options kiln does not run are refused.
pub(crate) fn gemma3_params(f: &Fields, n_layers: usize) -> Result<(f64, Option<Value>, Gemma3Params)> {
    for field in ["final_logit_softcapping", "attn_logit_softcapping"] {
        if let Some(v) = f.f64(field)? {
            return Err(f.err(field, format!("{v}: logit soft-capping is not supported by kiln's Gemma 3")));
        }
    }
    if f.bool("use_bidirectional_attention")? == Some(true) {
        return Err(f.err("use_bidirectional_attention", "true is not supported (kiln runs causal attention)"));
    }
    let non_default = |p: &Fields| -> Result<Option<Value>> {
        let kind = p.str("rope_type")?.or(p.str("type")?).unwrap_or("default");
        Ok((kind != "default").then(|| Value::Object(p.obj.clone())))
    };
    let mut theta = f.positive_f32("rope_theta")?.unwrap_or(1e6);
    let mut local = f.positive_f32("rope_local_base_freq")?.unwrap_or(1e4);
    let mut scaling = match f.nested("rope_scaling")? {
        Some(s) => non_default(&s)?,
        None => None,
    };
    if let Some(params) = f.nested("rope_parameters")? {
        if let Some(full) = params.nested("full_attention")? {
            theta = full.positive_f32("rope_theta")?.unwrap_or(theta);
            scaling = non_default(&full)?;
        }
        if let Some(sliding) = params.nested("sliding_attention")? {
            local = sliding.positive_f32("rope_theta")?.unwrap_or(local);
            if let Some(s) = non_default(&sliding)? {
                return Err(f.err("rope_parameters.sliding_attention", format!("{s}: only unscaled RoPE is supported on local layers")));
            }
        }
    }
    let sliding_layers = match f.get("layer_types") {
        Some(Value::Array(items)) => {
            if items.len() != n_layers {
                return Err(f.err("layer_types", format!("has {} entries for {n_layers} layers", items.len())));
            }
            let mut out = Vec::with_capacity(n_layers);
            for item in items {
                out.push(match item.as_str() {
                    Some("sliding_attention") => true,
                    Some("full_attention") => false,
                    _ => return Err(f.err("layer_types", format!("unknown layer type {item}; expected sliding_attention or full_attention"))),
                });
            }
            out
        }
        Some(v) => return Err(f.err("layer_types", format!("expected a list of strings, got {v}"))),
        None => Gemma3Params::pattern_layers(n_layers, f.positive_opt("sliding_window_pattern")?.unwrap_or(6)),
    };
    let params = Gemma3Params {
        query_pre_attn_scalar: f.positive_f64("query_pre_attn_scalar")?.unwrap_or(256.0),
        rope_local_theta: local,
        sliding_window: f.positive_opt("sliding_window")?.unwrap_or(4096),
        sliding_layers,
    };
    Ok((theta, scaling, params))
}

/// How the file stores the RMSNorm scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormWeights {
    /// `w` as in a Hugging Face checkpoint: 1 is added at load.
    Offset,
    /// `1 + w` already (llama.cpp's GGUF files).
    WithOne,
}

/// One decoder layer.
pub struct Gemma3Layer {
    input_norm: RmsNorm,
    /// q_proj, k_proj, v_proj stacked by weight type.
    qkv: Stacked,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    o_proj: Linear,
    post_attention_norm: RmsNorm,
    pre_feedforward_norm: RmsNorm,
    /// gate_proj and up_proj stacked by weight type.
    gate_up: Stacked,
    down_proj: Linear,
    post_feedforward_norm: RmsNorm,
    /// A sliding-window (local) layer, else global.
    sliding: bool,
}

/// A Gemma 3 model's weights on the GPU.
pub struct Gemma3 {
    /// The config it was loaded with.
    pub config: ModelConfig,
    params: Gemma3Params,
    embed_tokens: Embedding,
    /// `[1]` f32: sqrt(hidden_size), the embedding scale.
    embed_scale: Tensor,
    layers: Vec<Gemma3Layer>,
    norm: RmsNorm,
    lm_head: LmHead,
    /// cos/sin tables of the global (`rope_theta`) and local (`rope_local_theta`) layers,
    /// grown on demand like Qwen2's.
    rope_global: Mutex<Arc<rope::RopeTable>>,
    rope_local: Mutex<Arc<rope::RopeTable>>,
    /// The storage of the KV caches `Model::new_cache` makes.
    pub kv_dtype: KvDtype,
    /// The hooks the forward pass runs (`Model::set_hooks`; none at load).
    pub hooks: Hooks,
}

fn linear(w: &dyn WeightSource, dev: &Device, name: &str, shape: [usize; 2]) -> Result<Linear> {
    Ok(Linear::new(w.matrix(dev, &format!("{name}.weight"), shape)?, None))
}

/// The Gemma 3 fields of `c`, or a clear error when they are missing.
fn params(c: &ModelConfig) -> Result<Gemma3Params> {
    let p = c.gemma3.clone().ok_or_else(|| ModelError::Config {
        path: c.path.clone(),
        field: "model_type".into(),
        detail: "a Gemma 3 model needs its Gemma 3 config fields".into(),
    })?;
    if p.sliding_layers.len() != c.n_layers {
        return Err(ModelError::Config {
            path: c.path.clone(),
            field: "layer_types".into(),
            detail: format!("{} layer types for {} layers", p.sliding_layers.len(), c.n_layers),
        });
    }
    if !matches!(c.hidden_act.as_str(), "gelu_pytorch_tanh" | "gelu_tanh") {
        return Err(ModelError::Config {
            path: c.path.clone(),
            field: "hidden_activation".into(),
            detail: format!("{:?}: kiln's Gemma 3 runs gelu_pytorch_tanh", c.hidden_act),
        });
    }
    Ok(p)
}

impl Gemma3 {
    /// Upload every weight (matrices in their stored dtype; norms as f32 `1 + w`).
    pub fn load(dev: &Device, config: &ModelConfig, w: &dyn WeightSource, tied: bool, norms: NormWeights) -> Result<Gemma3> {
        let c = config;
        let params = params(c)?;
        let (h, q, kvd, inter, hd) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size, c.head_dim);
        let eps = c.norm_eps as f32;
        let norm = |name: &str, len: usize| -> Result<RmsNorm> {
            let weight = w.vector_f32(dev, name, len)?;
            let weight = match norms {
                NormWeights::WithOne => weight,
                NormWeights::Offset => {
                    // Gemma3RMSNorm: `1.0 + self.weight.float()`, an f32 add.
                    let plus_one: Vec<f32> = weight.to_vec_f32()?.into_iter().map(|x| 1.0 + x).collect();
                    Tensor::from_slice(dev, &plus_one, &[len])?
                }
            };
            Ok(RmsNorm { weight, eps })
        };
        let mut layers = Vec::with_capacity(c.n_layers);
        for (i, &sliding) in params.sliding_layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let qkv = vec![
                linear(w, dev, &format!("{p}.self_attn.q_proj"), [q, h])?,
                linear(w, dev, &format!("{p}.self_attn.k_proj"), [kvd, h])?,
                linear(w, dev, &format!("{p}.self_attn.v_proj"), [kvd, h])?,
            ];
            let gate_up =
                vec![linear(w, dev, &format!("{p}.mlp.gate_proj"), [inter, h])?, linear(w, dev, &format!("{p}.mlp.up_proj"), [inter, h])?];
            layers.push(Gemma3Layer {
                input_norm: norm(&format!("{p}.input_layernorm.weight"), h)?,
                qkv: Stacked::new(dev, qkv)?,
                q_norm: norm(&format!("{p}.self_attn.q_norm.weight"), hd)?,
                k_norm: norm(&format!("{p}.self_attn.k_norm.weight"), hd)?,
                o_proj: linear(w, dev, &format!("{p}.self_attn.o_proj"), [h, q])?,
                post_attention_norm: norm(&format!("{p}.post_attention_layernorm.weight"), h)?,
                pre_feedforward_norm: norm(&format!("{p}.pre_feedforward_layernorm.weight"), h)?,
                gate_up: Stacked::new(dev, gate_up)?,
                down_proj: linear(w, dev, &format!("{p}.mlp.down_proj"), [h, inter])?,
                post_feedforward_norm: norm(&format!("{p}.post_feedforward_layernorm.weight"), h)?,
                sliding,
            });
        }
        let embed_tokens = crate::model::load_embedding(dev, w, crate::embedding_name(c.arch), c.vocab_size, h)?;
        let lm_head = crate::model::load_lm_head(dev, w, c.vocab_size, h, tied.then_some(&embed_tokens))?;
        // Gemma3TextScaledWordEmbedding: `embed_scale = hidden ** 0.5`, cast to the weights' dtype.
        let embed_scale = Tensor::from_slice(dev, &[(h as f64).sqrt() as f32], &[1])?;
        let rope_global = rope::RopeTable::new(dev, hd, c.rope_theta as f32, 1)?;
        let rope_local = rope::RopeTable::new(dev, hd, params.rope_local_theta as f32, 1)?;
        Ok(Gemma3 {
            config: c.clone(),
            params,
            embed_tokens,
            embed_scale,
            layers,
            norm: norm("model.norm.weight", h)?,
            lm_head,
            rope_global: Mutex::new(Arc::new(rope_global)),
            rope_local: Mutex::new(Arc::new(rope_local)),
            kv_dtype: KvDtype::default(),
            hooks: Hooks::new(),
        })
    }

    /// The RoPE table of `table` for positions `0..positions` at least (rebuilt when shorter).
    fn rope_table(&self, dev: &Device, local: bool, positions: usize) -> Result<Arc<rope::RopeTable>> {
        let c = &self.config;
        crate::model::check_context(c, positions)?;
        let (slot, theta) =
            if local { (&self.rope_local, self.params.rope_local_theta) } else { (&self.rope_global, c.rope_theta) };
        let mut table = slot.lock().unwrap_or_else(|e| e.into_inner());
        if table.max_positions < positions {
            *table = Arc::new(rope::RopeTable::new(dev, c.head_dim, theta as f32, positions)?);
        }
        Ok(table.clone())
    }

    /// Weight bytes one decode step reads: every layer, the final norm and the whole LM head.
    pub fn decode_weight_bytes(&self) -> u64 {
        self.weight_bytes() - self.embed_tokens.bytes() - self.lm_head.bytes_unless_shared(&self.embed_tokens) + self.lm_head.bytes()
    }

    /// Bytes of weights resident on the GPU.
    pub fn weight_bytes(&self) -> u64 {
        let layers: u64 = self
            .layers
            .iter()
            .map(|l| {
                let norms = [
                    &l.input_norm,
                    &l.q_norm,
                    &l.k_norm,
                    &l.post_attention_norm,
                    &l.pre_feedforward_norm,
                    &l.post_feedforward_norm,
                ];
                l.qkv.bytes()
                    + l.gate_up.bytes()
                    + l.o_proj.weight.byte_len()
                    + l.down_proj.weight.byte_len()
                    + norms.iter().map(|n| n.weight.byte_len()).sum::<u64>()
            })
            .sum();
        layers + self.embed_tokens.bytes() + self.lm_head.bytes_unless_shared(&self.embed_tokens) + self.norm.weight.byte_len()
    }

    /// The final norm and the LM head on `h` `[rows, hidden]` ([`crate::Model::final_head`]).
    pub(crate) fn final_head(&self, rec: &mut Recorder, h: &Tensor) -> Result<Tensor> {
        fused::normed_lm_head(rec, &self.lm_head, h, NormRef::Rms(&self.norm))
    }

    /// Run `ids` `[seq]` through the model as `step` says, writing their K/V into the cache.
    /// Returns logits `[seq, vocab]`, or `[1, vocab]` for the last position only when
    /// `all_logits` is false. `hk`: the hooks the pass runs ([`crate::qwen2::Qwen2::forward`]).
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
        let dev = rec.device().clone();
        let global = self.rope_table(&dev, false, cache.capacity())?;
        let local = self.rope_table(&dev, true, cache.capacity())?;
        let scale = (1.0 / self.params.query_pre_attn_scalar.sqrt()) as f32;

        // h = embed_tokens(ids) * sqrt(hidden)   [seq, hidden]
        let e = self.embed_tokens.forward(rec, ids)?;
        let h = Tensor::empty(&dev, e.shape(), DType::F32)?;
        elementwise::mul(rec, &e, &self.embed_scale, &h)?;
        let mut h = hk.run(rec, Point::Embed, h)?;
        let first_dispatch = rec.dispatch_count();
        for (i, layer) in self.layers.iter().enumerate() {
            // Attention block: q, k, v = proj(input_norm(h)); q, k normed per head.
            // (x, a clone of h when the norm is folded, is dropped at once: holding it
            // would change when h's buffer returns to the pool, and so which buffers
            // the next step gets and its bind groups.)
            let qkv = {
                let (x, norm) = hk.norm_input(rec, Point::AttnIn(i), &h, NormRef::Rms(&layer.input_norm))?;
                layer.qkv.forward(rec, &x, norm)?
            };
            let q = layer.q_norm.forward(rec, &qkv[0].reshape(&[seq * nh, hd])?)?.reshape(&[seq, nh, hd])?;
            let k = layer.k_norm.forward(rec, &qkv[1].reshape(&[seq * nkv, hd])?)?.reshape(&[seq, nkv, hd])?;
            let v = qkv[2].reshape(&[seq, nkv, hd])?;
            let (table, window) =
                if layer.sliding { (&local, Some(self.params.sliding_window)) } else { (&global, None) };
            let attn = attend(rec, &q, &k, &v, cache, rows, i, table, window, scale)?;
            let attn = hk.zero_heads(rec, i, attn.reshape(&[seq, nh * hd])?, hd)?;
            // h = h + post_attention_norm(o_proj(attn)); attn_out is o_proj's output.
            let o = layer.o_proj.forward(rec, &attn)?;
            let o = hk.run(rec, Point::AttnOut(i), o)?;
            let o = layer.post_attention_norm.forward(rec, &o)?;
            h = nn::add(rec, &h, &o)?;
            h = hk.run(rec, Point::ResidMid(i), h)?;

            // MLP block: h = h + post_feedforward_norm(down(gelu_tanh(gate(x)) * up(x))),
            // x = pre_feedforward_norm(h); mlp_out is down's output.
            let gu = layer.gate_up.forward(rec, &h, NormRef::Rms(&layer.pre_feedforward_norm))?;
            let act = nn::gelu_tanh(rec, &gu[0])?;
            let m = Tensor::empty(&dev, act.shape(), DType::F32)?;
            elementwise::mul(rec, &act, &gu[1], &m)?;
            let down = layer.down_proj.forward(rec, &m)?;
            let down = hk.run(rec, Point::MlpOut(i), down)?;
            let down = layer.post_feedforward_norm.forward(rec, &down)?;
            h = nn::add(rec, &h, &down)?;
            h = hk.run(rec, Point::ResidPost(i), h)?;
        }
        rec.count_layers(c.n_layers, rec.dispatch_count() - first_dispatch);
        step.advance(cache, seq)?;
        let h = if all_logits { h } else { crate::model::last_row(rec, &h)? };
        let (x, norm) = hk.norm_input(rec, Point::FinalNorm, &h, NormRef::Rms(&self.norm))?;
        let logits = fused::normed_lm_head(rec, &self.lm_head, &x, norm)?; // [seq or 1, vocab]
        hk.run(rec, Point::Logits, logits)
    }
}

/// RoPE on q and k with K/V written into layer `layer`'s cache, then attention over each
/// row's slot (only its last `window` positions when set), scores scaled by `scale`.
#[allow(clippy::too_many_arguments)]
fn attend(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cache: &KvCache,
    rows: Rows,
    layer: usize,
    table: &rope::RopeTable,
    window: Option<usize>,
    scale: f32,
) -> Result<Tensor> {
    let dev = q.device();
    let (kc, vc) = (&cache.k[layer], &cache.v[layer]);
    let q_rot = Tensor::empty(dev, q.shape(), DType::F32)?;
    kv::rope_kv_append(rec, q, k, v, table, rope::RopeMode::HalfSplit, rows, &q_rot, kc, vc)?;
    let out = Tensor::empty(dev, q.shape(), DType::F32)?;
    let opts = AttendOptions { window, scale: Some(scale), ..Default::default() };
    attention::attend_with(rec, &q_rot, kc, vc, rows, &out, &opts)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use crate::gguf::model::gguf_name_for;
    use crate::{Arch, ModelConfig};

    fn parse(extra: serde_json::Value) -> crate::Result<ModelConfig> {
        let mut cfg = json!({
            "model_type": "gemma3_text", "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 7,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 24, "intermediate_size": 48,
            "max_position_embeddings": 128,
        });
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        ModelConfig::from_json(Path::new("config.json"), cfg.as_object().unwrap(), None)
    }

    #[test]
    fn defaults_follow_gemma3_text_config() {
        let c = parse(json!({})).unwrap();
        let g = c.gemma3.as_ref().unwrap();
        assert_eq!(c.arch, Arch::Gemma3);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.hidden_act, "gelu_pytorch_tanh");
        assert_eq!((c.rope_theta, g.rope_local_theta, g.query_pre_attn_scalar, g.sliding_window), (1e6, 1e4, 256.0, 4096));
        // Every 6th layer (1-based) is global.
        assert_eq!(g.sliding_layers, vec![true, true, true, true, true, false, true]);
    }

    #[test]
    fn v4_keys_and_layer_types_are_read() {
        let types = ["full_attention", "sliding_attention", "full_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention"];
        let c = parse(json!({"rope_theta": 5e5, "rope_local_base_freq": 2e4, "layer_types": types, "sliding_window": 3})).unwrap();
        let g = c.gemma3.as_ref().unwrap();
        assert_eq!((c.rope_theta, g.rope_local_theta, g.sliding_window), (5e5, 2e4, 3));
        assert_eq!(g.sliding_layers, vec![false, true, false, true, true, true, true]);
    }

    #[test]
    fn bad_gemma3_configs_name_the_field() {
        for (extra, field) in [
            (json!({"final_logit_softcapping": 30.0}), "final_logit_softcapping"),
            (json!({"layer_types": ["full_attention"]}), "layer_types"),
            (json!({"layer_types": vec!["global"; 7]}), "layer_types"),
            (json!({"sliding_window": 0}), "sliding_window"),
            (json!({"use_bidirectional_attention": true}), "use_bidirectional_attention"),
        ] {
            let err = parse(extra.clone()).expect_err("refused").to_string();
            assert!(err.contains(field) && err.contains("config.json"), "{extra}: {err}");
        }
    }

    #[test]
    fn gguf_names_of_the_four_norms() {
        let name = |hf: &str| gguf_name_for(Arch::Gemma3, hf).unwrap();
        assert_eq!(name("model.layers.3.input_layernorm.weight"), "blk.3.attn_norm.weight");
        assert_eq!(name("model.layers.3.post_attention_layernorm.weight"), "blk.3.post_attention_norm.weight");
        assert_eq!(name("model.layers.3.pre_feedforward_layernorm.weight"), "blk.3.ffn_norm.weight");
        assert_eq!(name("model.layers.3.post_feedforward_layernorm.weight"), "blk.3.post_ffw_norm.weight");
        assert_eq!(name("model.layers.0.self_attn.q_norm.weight"), "blk.0.attn_q_norm.weight");
        assert_eq!(name("model.norm.weight"), "output_norm.weight");
        // Llama-like models keep post_attention_layernorm -> ffn_norm.
        assert_eq!(gguf_name_for(Arch::Llama, "model.layers.3.post_attention_layernorm.weight").unwrap(), "blk.3.ffn_norm.weight");
    }
}
