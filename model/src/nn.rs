//! Building blocks the model files compose, each a thin layer over one or two kernels,
//! named like their PyTorch counterparts. Every function records work on the given
//! `Recorder` and returns a fresh tensor from the device's buffer pool.

use kiln_kernels::{elementwise, matmul, matvec, norm};
use kiln_tensor::{DType, Recorder, Tensor};

use crate::Result;

fn empty(like: &Tensor, shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::empty(like.device(), shape, DType::F32)?)
}

/// `nn.Linear`: `y = x · Wᵀ + b`, weight `[out, in]` (f32/f16/bf16), bias `[out]` f32.
/// One row goes through the matvec (decode) kernel, several through the matmul (prefill)
/// kernel.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Linear {
        Linear { weight, bias }
    }

    pub fn out_features(&self) -> usize {
        self.weight.dim(0)
    }

    /// x `[seq, in]` → `[seq, out]`.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let seq = x.dim(0);
        let y = empty(x, &[seq, self.out_features()])?;
        if seq == 1 {
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
    pub weight: Tensor,
    pub eps: f32,
}

impl RmsNorm {
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let out = empty(x, x.shape())?;
        norm::rms_norm(rec, x, &self.weight, self.eps, &out)?;
        Ok(out)
    }
}

/// `nn.LayerNorm`.
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let out = empty(x, x.shape())?;
        norm::layer_norm(rec, x, &self.weight, &self.bias, self.eps, &out)?;
        Ok(out)
    }
}

/// An LM head whose weight may be split into row blocks (a vocabulary too large for
/// one binding). Each block is a `Linear`; their outputs are copied side by side.
pub struct LmHead {
    /// (first vocabulary row, block)
    pub blocks: Vec<(usize, Linear)>,
    pub vocab: usize,
}

impl LmHead {
    /// x `[seq, hidden]` → logits `[seq, vocab]`.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        if let [(0, only)] = self.blocks.as_slice() {
            return only.forward(rec, x);
        }
        let seq = x.dim(0);
        let logits = empty(x, &[seq, self.vocab])?;
        for (start, block) in &self.blocks {
            let part = block.forward(rec, x)?; // [seq, rows]
            let rows = block.out_features();
            for s in 0..seq {
                rec.copy_region(&part, s * rows, &logits, s * self.vocab + start, rows)?;
            }
        }
        Ok(logits)
    }
}
