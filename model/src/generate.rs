//! Checks shared by everything that runs a prompt through a model (generation lives in
//! the `kiln-sampler` crate, which samples on the GPU).

use crate::{ModelConfig, ModelError, Result};

/// Check a prompt against the model's vocabulary and context length before any GPU work.
pub fn check_prompt(c: &ModelConfig, prompt: &[u32], max_new_tokens: usize) -> Result<()> {
    if prompt.is_empty() {
        return Err(ModelError::Param { name: "prompt".into(), detail: "the prompt has no tokens".into() });
    }
    kiln_kernels::embedding::check_ids(prompt, c.vocab_size)?;
    let need = prompt.len().saturating_add(max_new_tokens);
    if need > c.max_position_embeddings {
        return Err(ModelError::Context {
            detail: format!(
                "the prompt has {} tokens and {max_new_tokens} new tokens were asked for: {need} positions, \
                 but the model's context is {} positions",
                prompt.len(),
                c.max_position_embeddings
            ),
        });
    }
    Ok(())
}
