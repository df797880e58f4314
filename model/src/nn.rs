//! Building blocks the model files compose, each a thin layer over one or two kernels,
//! named like their PyTorch counterparts. Every function records work on the given
//! `Recorder` and returns a fresh tensor from the device's buffer pool.

use kiln_kernels::{elementwise, embedding, matmul, matvec, norm};
use kiln_tensor::{DType, Recorder, Tensor};

use crate::Result;

fn empty(like: &Tensor, shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::empty(like.device(), shape, DType::F32)?)
}

/// `nn.Linear`: `y = x · Wᵀ + b`, weight `[out, in]` (f32/f16/bf16/GGUF blocks), bias
/// `[out]` f32. Up to `matvec::MAX_ROWS` rows (decode, short prompts) go through the matvec
/// kernel, more through the tiled matmul (prefill) kernel.
pub struct Linear {
    /// `[out, in]`, f32/f16/bf16 or a GGUF block type.
    pub weight: Tensor,
    /// `[out]` f32, if the layer has a bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A linear layer from its weight and optional bias.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Linear {
        Linear { weight, bias }
    }

    /// Output features: the weight's first dimension.
    pub fn out_features(&self) -> usize {
        self.weight.dim(0)
    }

    /// x `[seq, in]` → `[seq, out]`.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let seq = x.dim(0);
        let y = empty(x, &[seq, self.out_features()])?;
        if seq <= matvec::MAX_ROWS {
            matvec::matvec(rec, x, &self.weight, &y)?;
        } else {
            matmul::matmul(rec, x, &self.weight, &y)?;
        }
        match &self.bias {
            Some(b) => add(rec, &y, b),
            None => Ok(y),
        }
    }
}

/// `a + b` (b broadcast over a's leading dimensions).
pub fn add(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = empty(a, a.shape())?;
    elementwise::add(rec, a, b, &out)?;
    Ok(out)
}

/// `F.silu(gate) * up`.
pub fn swiglu(rec: &mut Recorder, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let out = empty(gate, gate.shape())?;
    elementwise::swiglu(rec, gate, up, &out)?;
    Ok(out)
}

/// `F.gelu(x, approximate="tanh")`.
pub fn gelu_tanh(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let out = empty(x, x.shape())?;
    elementwise::gelu_tanh(rec, x, &out)?;
    Ok(out)
}

/// Qwen2RMSNorm / LlamaRMSNorm.
pub struct RmsNorm {
    /// `[d]` f32 scale.
    pub weight: Tensor,
    /// Added to the mean square before the square root.
    pub eps: f32,
}

impl RmsNorm {
    /// `x` normalised over its last dimension (of size d), same shape, in a new tensor.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let out = empty(x, x.shape())?;
        norm::rms_norm(rec, x, &self.weight, self.eps, &out)?;
        Ok(out)
    }
}

/// `nn.LayerNorm`.
pub struct LayerNorm {
    /// `[d]` f32 scale.
    pub weight: Tensor,
    /// `[d]` f32 shift.
    pub bias: Tensor,
    /// Added to the variance before the square root.
    pub eps: f32,
}

impl LayerNorm {
    /// `x` normalised over its last dimension (of size d), same shape, in a new tensor.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let out = empty(x, x.shape())?;
        norm::layer_norm(rec, x, &self.weight, &self.bias, self.eps, &out)?;
        Ok(out)
    }
}

/// `nn.Embedding`, its table possibly split into row blocks that each fit one binding
/// (`(first id, [rows, dim] table)`, in order). Tables may be f32/f16/bf16 or GGUF blocks.
pub struct Embedding {
    /// `(first id, [rows, dim] table)` per block, in id order.
    pub blocks: Vec<(usize, Tensor)>,
    /// Embedding width.
    pub dim: usize,
}

impl Embedding {
    /// An embedding held as one `[vocab, dim]` table.
    pub fn single(table: Tensor) -> Embedding {
        let dim = table.dim(1);
        Embedding { blocks: vec![(0, table)], dim }
    }

    /// ids `[seq]` (u32) → `[seq, dim]` f32.
    pub fn forward(&self, rec: &mut Recorder, ids: &Tensor) -> Result<Tensor> {
        let out = empty(ids, &[ids.numel(), self.dim])?;
        if let [(0, table)] = self.blocks.as_slice() {
            embedding::embedding(rec, ids, table, &out)?;
            return Ok(out);
        }
        rec.clear(&out);
        for (first, table) in &self.blocks {
            embedding::embedding_block(rec, ids, table, *first, &out)?;
        }
        Ok(out)
    }

    /// The same blocks as an LM head (tied embeddings).
    pub fn as_lm_head(&self, vocab: usize) -> LmHead {
        LmHead { blocks: self.blocks.iter().map(|(s, t)| (*s, Linear::new(t.clone(), None))).collect(), vocab }
    }

    /// Bytes of the table(s) on the GPU.
    pub fn bytes(&self) -> u64 {
        self.blocks.iter().map(|(_, t)| t.byte_len()).sum()
    }
}

/// An LM head whose weight may be split into row blocks (a vocabulary too large for
/// one binding). Each block is a `Linear`; their outputs are copied side by side.
pub struct LmHead {
    /// (first vocabulary row, block)
    pub blocks: Vec<(usize, Linear)>,
    /// Vocabulary size: the total rows of all blocks, and the width of the logits.
    pub vocab: usize,
}

impl LmHead {
    /// Bytes of the head's weights (all read by every decode step).
    pub fn bytes(&self) -> u64 {
        self.blocks.iter().map(|(_, l)| l.weight.byte_len()).sum()
    }

    /// Bytes of the head's weights, 0 when they are `embedding`'s own tensors (tied).
    pub fn bytes_unless_shared(&self, embedding: &Embedding) -> u64 {
        self.blocks
            .iter()
            .filter(|(_, l)| !embedding.blocks.iter().any(|(_, t)| t.same_storage(&l.weight)))
            .map(|(_, l)| l.weight.byte_len())
            .sum()
    }

    /// x `[seq, hidden]` → logits `[seq, vocab]`.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        self.forward_with(rec, x.dim(0), |rec, block| block.forward(rec, x))
    }

    /// Logits `[seq, vocab]` from `block_out(block)` `[seq, rows]` of each block, copied
    /// side by side (no copy for a single block).
    pub fn forward_with(
        &self,
        rec: &mut Recorder,
        seq: usize,
        mut block_out: impl FnMut(&mut Recorder, &Linear) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if let [(0, only)] = self.blocks.as_slice() {
            return block_out(rec, only);
        }
        let dev = rec.device().clone();
        let logits = Tensor::empty(&dev, &[seq, self.vocab], DType::F32)?;
        for (start, block) in &self.blocks {
            let part = block_out(rec, block)?; // [seq, rows]
            let rows = block.out_features();
            for s in 0..seq {
                rec.copy_region(&part, s * rows, &logits, s * self.vocab + start, rows)?;
            }
        }
        Ok(logits)
    }
}
