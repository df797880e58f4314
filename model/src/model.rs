//! `Model`: a loaded GPT-2 or Qwen2/Llama, behind one forward API.

use kiln_tensor::{DType, Device, Recorder, Tensor};

use crate::batch::Step;
use crate::gemma3::{Gemma3, NormWeights};
use crate::gpt2::Gpt2;
use crate::hooks::{Capture, Hooks};
use crate::kv_cache::{KvCache, KvDtype};
use crate::nn::{Embedding, LmHead, Linear};
use crate::source::WeightSource;
use crate::qwen2::Qwen2;
use crate::{Arch, ModelConfig, ModelDir, ModelError, Result};

/// A loaded model on the GPU, one variant per implementation.
pub enum Model {
    /// GPT-2.
    Gpt2(Gpt2),
    /// Qwen2, Llama and Qwen3 (one implementation).
    Qwen2(Qwen2),
    /// Gemma 3 (text).
    Gemma3(Gemma3),
}

/// Positions one forward pass of a long prompt runs at most: a longer prompt is prefilled
/// in chunks of this many (each chunk attends to the cached positions before it), so its
/// temporaries stay bounded and a server can run decode steps between chunks.
pub const PREFILL_CHUNK: usize = 256;

impl Model {
    /// Upload an opened Hugging Face directory's weights to `dev`.
    pub fn load(dev: &Device, dir: &ModelDir) -> Result<Model> {
        check_supported(&dir.config)?;
        let tied = dir.lm_head_tied();
        Ok(match dir.config.arch {
            Arch::Gpt2 => Model::Gpt2(Gpt2::load(dev, &dir.config, &dir.weights, tied)?),
            Arch::Qwen2 | Arch::Llama | Arch::Qwen3 => Model::Qwen2(Qwen2::load(dev, &dir.config, &dir.weights, tied)?),
            Arch::Gemma3 => Model::Gemma3(Gemma3::load(dev, &dir.config, &dir.weights, tied, NormWeights::Offset)?),
        })
    }

    /// Upload a GGUF file's weights (GPT-2, Qwen2, Qwen3 or Llama), block types kept
    /// quantized.
    pub fn load_gguf(dev: &Device, file: &crate::gguf::GgufFile) -> Result<Model> {
        let config = crate::gguf::model::config_from_gguf(file)?;
        check_supported(&config)?;
        let source = crate::gguf::model::GgufSource::new(file, &config);
        let tied = config.tie_word_embeddings;
        Ok(match config.arch {
            Arch::Gpt2 => Model::Gpt2(Gpt2::load(dev, &config, &source, tied)?),
            Arch::Qwen2 | Arch::Llama | Arch::Qwen3 => Model::Qwen2(Qwen2::load(dev, &config, &source, tied)?),
            Arch::Gemma3 => Model::Gemma3(Gemma3::load(dev, &config, &source, tied, NormWeights::WithOne)?),
        })
    }

    /// Bytes of weights resident on the GPU (shared tied tensors counted once).
    pub fn weight_bytes(&self) -> u64 {
        match self {
            Model::Gpt2(m) => m.weight_bytes(),
            Model::Qwen2(m) => m.weight_bytes(),
            Model::Gemma3(m) => m.weight_bytes(),
        }
    }

    /// Weight bytes one decode step reads (layers, final norm, whole LM head).
    pub fn decode_weight_bytes(&self) -> u64 {
        match self {
            Model::Gpt2(m) => m.decode_weight_bytes(),
            Model::Qwen2(m) => m.decode_weight_bytes(),
            Model::Gemma3(m) => m.decode_weight_bytes(),
        }
    }

    /// The config the model was loaded with.
    pub fn config(&self) -> &ModelConfig {
        match self {
            Model::Gpt2(m) => &m.config,
            Model::Qwen2(m) => &m.config,
            Model::Gemma3(m) => &m.config,
        }
    }

    /// The storage of the caches [`Model::new_cache`] makes (f16 unless set).
    pub fn kv_dtype(&self) -> KvDtype {
        match self {
            Model::Gpt2(m) => m.kv_dtype,
            Model::Qwen2(m) => m.kv_dtype,
            Model::Gemma3(m) => m.kv_dtype,
        }
    }

    /// Make [`Model::new_cache`] store K/V as `dtype` (`kiln --kv-cache f16|f32`).
    pub fn set_kv_dtype(&mut self, dtype: KvDtype) {
        match self {
            Model::Gpt2(m) => m.kv_dtype = dtype,
            Model::Qwen2(m) => m.kv_dtype = dtype,
            Model::Gemma3(m) => m.kv_dtype = dtype,
        }
    }

    /// Set the hooks every forward pass runs from now on (replacing any set before),
    /// after checking them against the config ([`Hooks::check`]). An empty set gives the
    /// plain fused passes back.
    pub fn set_hooks(&mut self, hooks: Hooks) -> Result<()> {
        hooks.check(self.config())?;
        match self {
            Model::Gpt2(m) => m.hooks = hooks,
            Model::Qwen2(m) => m.hooks = hooks,
            Model::Gemma3(m) => m.hooks = hooks,
        }
        Ok(())
    }

    /// The hooks set ([`Model::set_hooks`]); empty at load.
    pub fn hooks(&self) -> &Hooks {
        match self {
            Model::Gpt2(m) => &m.hooks,
            Model::Qwen2(m) => &m.hooks,
            Model::Gemma3(m) => &m.hooks,
        }
    }

    /// The tensors captured since the last call, read back: call after submitting the
    /// recorder that ran the forward passes ([`Hooks::take_captures`]).
    pub fn take_captures(&self) -> Result<Vec<Capture>> {
        self.hooks().take_captures()
    }

    /// A one-sequence KV cache (1 slot) for `capacity` positions in [`Model::kv_dtype`],
    /// refusing more than the model's context.
    pub fn new_cache(&self, dev: &Device, capacity: usize) -> Result<KvCache> {
        self.new_cache_with(dev, 1, capacity, self.kv_dtype())
    }

    /// A KV cache of `slots` sequences of `capacity` positions each, stored as `dtype`.
    pub fn new_cache_with(&self, dev: &Device, slots: usize, capacity: usize, dtype: KvDtype) -> Result<KvCache> {
        let c = self.config();
        check_context(c, capacity)?;
        KvCache::new(dev, c.n_layers, slots, capacity.max(1), c.n_kv_heads, c.head_dim, dtype)
    }

    fn run(
        &self,
        rec: &mut Recorder,
        ids: &Tensor,
        cache: &mut KvCache,
        step: Step,
        all_logits: bool,
        hooks: &Hooks,
    ) -> Result<Tensor> {
        match self {
            Model::Gpt2(m) => m.forward(rec, ids, cache, step, all_logits, hooks),
            Model::Qwen2(m) => m.forward(rec, ids, cache, step, all_logits, hooks),
            Model::Gemma3(m) => m.forward(rec, ids, cache, step, all_logits, hooks),
        }
    }

    /// The final norm and the LM head applied to `h` `[rows, hidden]`: logits
    /// `[rows, vocab]` — what the forward pass does to the last block's output, here
    /// applied to any residual-stream tensor (the logit lens, `kiln_sampler::lens`).
    pub fn final_head(&self, rec: &mut Recorder, h: &Tensor) -> Result<Tensor> {
        let hidden = self.config().hidden_size;
        if h.shape().len() != 2 || h.dim(-1) != hidden {
            return Err(ModelError::Param {
                name: "h".into(),
                detail: format!("the final head takes [rows, {hidden}], got {:?}", h.shape()),
            });
        }
        match self {
            Model::Gpt2(m) => m.final_head(rec, h),
            Model::Qwen2(m) => m.final_head(rec, h),
            Model::Gemma3(m) => m.final_head(rec, h),
        }
    }

    /// Run `ids` `[seq]` (u32) at the next positions of slot 0; logits `[seq, vocab]` when
    /// `all_logits`, else `[1, vocab]` for the last position. Prompts longer than
    /// [`PREFILL_CHUNK`] run in chunks.
    pub fn forward(&self, rec: &mut Recorder, ids: &Tensor, cache: &mut KvCache, all_logits: bool) -> Result<Tensor> {
        self.forward_chunked(rec, ids, cache, 0, all_logits, PREFILL_CHUNK)
    }

    /// [`Model::forward`] for the sequence in `slot` of a multi-slot cache (e.g. the
    /// prefill of a request the serving engine admits).
    pub fn forward_slot(
        &self,
        rec: &mut Recorder,
        ids: &Tensor,
        cache: &mut KvCache,
        slot: usize,
        all_logits: bool,
    ) -> Result<Tensor> {
        self.forward_chunked(rec, ids, cache, slot, all_logits, PREFILL_CHUNK)
    }

    /// [`Model::forward_slot`] in forward passes of at most `chunk` positions, one after
    /// the other in `rec` (each chunk's temporaries go back to the pool before the next).
    /// Gives the logits of one pass (up to the order of f32 sums).
    pub fn forward_chunked(
        &self,
        rec: &mut Recorder,
        ids: &Tensor,
        cache: &mut KvCache,
        slot: usize,
        all_logits: bool,
        chunk: usize,
    ) -> Result<Tensor> {
        self.forward_chunked_with(rec, ids, cache, slot, all_logits, chunk, self.hooks())
    }

    /// [`Model::forward`] with `hooks` instead of the model's own ([`Model::set_hooks`]),
    /// for one pass, e.g. captures taken while the model is shared with a serving engine.
    /// Read the captures back with `hooks.take_captures()` after the submission.
    pub fn forward_with_hooks(
        &self,
        rec: &mut Recorder,
        ids: &Tensor,
        cache: &mut KvCache,
        all_logits: bool,
        hooks: &Hooks,
    ) -> Result<Tensor> {
        hooks.check(self.config())?;
        self.forward_chunked_with(rec, ids, cache, 0, all_logits, PREFILL_CHUNK, hooks)
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_chunked_with(
        &self,
        rec: &mut Recorder,
        ids: &Tensor,
        cache: &mut KvCache,
        slot: usize,
        all_logits: bool,
        chunk: usize,
        hooks: &Hooks,
    ) -> Result<Tensor> {
        let seq = ids.numel();
        if chunk == 0 {
            return Err(ModelError::Param { name: "chunk".into(), detail: "a prefill chunk needs at least one position".into() });
        }
        if seq <= chunk {
            return self.run(rec, ids, cache, Step::Seq { slot }, all_logits, hooks);
        }
        cache.check_room(slot, seq)?;
        let dev = rec.device().clone();
        let vocab = self.config().vocab_size;
        let all = if all_logits { Some(Tensor::empty(&dev, &[seq, vocab], DType::F32)?) } else { None };
        let mut last = None;
        for start in (0..seq).step_by(chunk) {
            let n = chunk.min(seq - start);
            let part = Tensor::empty(&dev, &[n], DType::U32)?;
            rec.copy_region(ids, start, &part, 0, n)?;
            let logits = self.run(rec, &part, cache, Step::Seq { slot }, all_logits, hooks)?;
            if let Some(all) = &all {
                rec.copy_region(&logits, 0, all, start * vocab, n * vocab)?;
            }
            last = Some(logits);
        }
        Ok(match all {
            Some(all) => all,
            None => last.expect("at least one chunk"),
        })
    }

    /// One decode step for several sequences at once: `ids` `[B]` u32, id b at the next
    /// position of slot `slots[b]` (distinct) of `cache`. Returns logits `[B, vocab]`
    /// (continuous batching). RoPE + KV append and attention are one dispatch each per
    /// layer for all B rows; the rows' (slot, position) pairs go to the GPU as 8·B bytes.
    /// One batched step per submission.
    pub fn forward_batch(
        &self,
        rec: &mut Recorder,
        ids: &Tensor,
        cache: &mut KvCache,
        slots: &[usize],
    ) -> Result<Tensor> {
        self.run(rec, ids, cache, Step::Batch { slots }, true, self.hooks())
    }
}

/// Refuse config options the forward passes do not implement, rather than give
/// silently different outputs.
/// A cache (and RoPE table) of `positions` fits the model's context.
pub(crate) fn check_context(c: &ModelConfig, positions: usize) -> Result<()> {
    if positions > c.max_position_embeddings {
        return Err(ModelError::Context {
            detail: format!(
                "{positions} positions requested but the model's context is {} positions (max_position_embeddings)",
                c.max_position_embeddings
            ),
        });
    }
    Ok(())
}

fn check_supported(c: &ModelConfig) -> Result<()> {
    if let Some(scaling) = &c.rope_scaling {
        let kind = scaling.get("rope_type").or_else(|| scaling.get("type")).and_then(|v| v.as_str());
        if !scaling.is_null() && kind != Some("default") {
            return Err(ModelError::Config {
                path: c.path.clone(),
                field: "rope_scaling".into(),
                detail: format!("{scaling} is not supported yet (only unscaled RoPE)"),
            });
        }
    }
    Ok(())
}

/// The last row of `h` `[seq, d]` as `[1, d]` (a copy; views need aligned offsets).
pub(crate) fn last_row(rec: &mut Recorder, h: &Tensor) -> Result<Tensor> {
    let (seq, d) = (h.dim(0), h.dim(1));
    if seq == 1 {
        return Ok(h.clone());
    }
    let out = Tensor::empty(h.device(), &[1, d], DType::F32)?;
    rec.copy_region(h, (seq - 1) * d, &out, 0, d)?;
    Ok(out)
}

/// The token embedding `name` `[vocab, hidden]`, in row blocks that each fit one binding.
pub(crate) fn load_embedding(dev: &Device, w: &dyn WeightSource, name: &str, vocab: usize, hidden: usize) -> Result<Embedding> {
    Ok(Embedding { blocks: w.matrix_blocks(dev, name, [vocab, hidden])?, dim: hidden })
}

/// The LM head: the tied embedding's own tensors when tied (no second copy), else
/// `lm_head.weight` in row blocks that each fit one binding.
pub(crate) fn load_lm_head(
    dev: &Device,
    w: &dyn WeightSource,
    vocab: usize,
    hidden: usize,
    tied: Option<&Embedding>,
) -> Result<LmHead> {
    if let Some(embedding) = tied {
        return Ok(embedding.as_lm_head(vocab));
    }
    let blocks = w.matrix_blocks(dev, crate::LM_HEAD, [vocab, hidden])?;
    Ok(LmHead { blocks: blocks.into_iter().map(|(start, t)| (start, Linear::new(t, None))).collect(), vocab })
}
