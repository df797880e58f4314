//! `POST /v1/lens`: the logit lens of a prompt (docs/lens.md) as JSON, for the page's lens
//! tab. The body is `{"prompt": string, "top": 1..=32 (default 5), "blocks": [ints]
//! (default: every block)}`; the answer is exactly what `kiln lens --json` prints
//! ([`crate::lens::to_json`]). The pass runs on the GPU thread between decode steps, as
//! echo's prompt scoring does, with hooks of its own (the engine's model is not touched).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use kiln_kernels::topn::MAX_TOP;
use kiln_sampler::lens::Lens;
use kiln_sampler::SamplerError;
use serde_json::Value;
use tokio::sync::oneshot;

use super::body::JsonBody;
use super::completion::Admission;
use super::error::ApiError;
use super::openai::{parse_object, Fields};
use super::scheduler::{Job, LensJob};
use super::Shared;

/// Ids per cell when the request names no `top`.
const DEFAULT_TOP: u64 = 5;

/// Read `blocks`: distinct block indices below the model's block count.
fn parse_blocks(value: Option<&Value>, n_layers: usize) -> Result<Vec<usize>, ApiError> {
    let Some(value) = value else { return Ok((0..n_layers).collect()) };
    let bad = |why: String| ApiError::param("blocks", why);
    let Value::Array(items) = value else { return Err(bad("blocks must be an array of block indices".into())) };
    if items.is_empty() {
        return Err(bad("blocks must name at least one block".into()));
    }
    let mut blocks = Vec::with_capacity(items.len());
    for item in items {
        let b = item
            .as_u64()
            .filter(|&b| b < n_layers as u64)
            .ok_or_else(|| bad(format!("{item} is not a block: the model has blocks 0 to {}", n_layers - 1)))? as usize;
        if blocks.contains(&b) {
            return Err(bad(format!("block {b} is listed twice")));
        }
        blocks.push(b);
    }
    Ok(blocks)
}

pub async fn lens(State(shared): State<Arc<Shared>>, JsonBody(body): JsonBody) -> Result<Json<Value>, ApiError> {
    let map = parse_object(&body)?;
    let f = Fields(&map);
    let prompt = f.string("prompt")?.ok_or_else(|| ApiError::param("prompt", "prompt (a string) is required"))?;
    let top = f.uint("top", u64::MAX)?.unwrap_or(DEFAULT_TOP);
    if top == 0 || top > MAX_TOP as u64 {
        return Err(ApiError::param("top", format!("top must be 1 to {MAX_TOP}, got {top}")));
    }
    let blocks = parse_blocks(f.get("blocks"), shared.config.n_layers)?;
    let ids = shared.encode_blocking(prompt.to_string(), "prompt".into()).await?;
    if ids.is_empty() {
        return Err(ApiError::param("prompt", "the prompt has no tokens"));
    }
    if ids.len() > shared.context {
        return Err(ApiError::param(
            "prompt",
            format!("the prompt has {} tokens: the server's context is {} positions", ids.len(), shared.context),
        ));
    }
    // A lens takes one of the server's places like a sequence does (503 when `--slots` +
    // `--queue` are taken, or when shutting down), until it is answered.
    let admission = Admission::take(&shared, 1)?;
    let (reply, answer) = oneshot::channel();
    let job = LensJob { ids, top: top as usize, blocks, reply };
    shared.jobs.send(Job::Lens(job)).map_err(|_| ApiError::unavailable("the engine has stopped"))?;
    let lens = answer.await.map_err(|_| ApiError::unavailable("the engine has stopped"))??;
    drop(admission);
    Ok(Json(crate::lens::to_json(&lens, Some(&shared.tokenizer))))
}

/// Run on the GPU thread: the lens, or the error to answer (a 400 for a parameter the
/// sampler refuses, a 500 otherwise).
pub fn compute(dev: &kiln_tensor::Device, model: &kiln_model::Model, job: &LensJob) -> Result<Lens, ApiError> {
    let hooks = kiln_model::hooks::Hooks::new();
    kiln_sampler::lens::logit_lens_with(dev, model, &job.ids, job.top, &job.blocks, hooks).map_err(|e| match e {
        SamplerError::Param { ref name, .. } => ApiError::param(name.clone(), e.to_string()),
        e => ApiError::internal(format!("the logit lens failed: {e:#}")),
    })
}
