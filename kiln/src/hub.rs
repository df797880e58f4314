//! Models named on the Hugging Face Hub: `hf:OWNER/REPO` (a model directory: config,
//! weights, tokenizer, chat template) or `hf:OWNER/REPO:FILE` (one file, e.g. a GGUF).
//!
//! Downloads go through the `hf-hub` crate into its standard cache
//! (`$HF_HOME/hub`, else `~/.cache/huggingface/hub`), from `$HF_ENDPOINT` when set, with
//! `$HF_TOKEN` (else the cache's saved token) as the bearer token, and a progress bar per
//! file. A file already in the cache is not downloaded again.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder, ApiRepo};

use crate::{Error, Result};

/// A parsed `hf:` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubName {
    /// `OWNER/REPO`.
    pub repo: String,
    /// One file of the repository; `None` for the model directory's files.
    pub file: Option<String>,
}

/// `Some` when `name` is an `hf:` name (`hf:OWNER/REPO` or `hf:OWNER/REPO:FILE`), `None`
/// for anything else (a local path); an `hf:` name that is malformed is an error.
pub fn parse(name: &str) -> Result<Option<HubName>> {
    let Some(rest) = name.strip_prefix("hf:") else { return Ok(None) };
    let bad = |detail: &str| Error::Hub { name: name.to_string(), detail: detail.to_string() };
    let (repo, file) = match rest.split_once(':') {
        Some((repo, file)) => (repo, Some(file)),
        None => (rest, None),
    };
    let mut parts = repo.split('/');
    let (owner, model) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if parts.next().is_some() || !valid(owner) || !valid(model) || owner.starts_with('.') || model.starts_with('.') {
        return Err(bad("expected hf:OWNER/REPO or hf:OWNER/REPO:FILE (letters, digits, '-', '_', '.')"));
    }
    if let Some(f) = file {
        if f.is_empty() || f.starts_with('/') || f.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(bad("the FILE after the second ':' must be a relative path inside the repository"));
        }
    }
    Ok(Some(HubName { repo: repo.to_string(), file: file.map(str::to_string) }))
}

/// The client as the environment configures it: `HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN`.
fn api(progress: bool) -> Result<Api> {
    let mut builder = ApiBuilder::from_env().with_progress(progress);
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    builder.build().map_err(|e| Error::Hub { name: "hf:".into(), detail: format!("starting the client: {e}") })
}

/// Download what `name` names (unless cached) and return the local path: the file, or the
/// snapshot directory holding the model's files.
pub fn download(name: &HubName, progress: bool) -> Result<PathBuf> {
    let repo = api(progress)?.model(name.repo.clone());
    let shown = match &name.file {
        Some(f) => format!("hf:{}:{f}", name.repo),
        None => format!("hf:{}", name.repo),
    };
    let fail = |file: &str, e: hf_hub::api::sync::ApiError| Error::Hub { name: shown.clone(), detail: format!("{file}: {e}") };
    if let Some(file) = &name.file {
        return repo.get(file).map_err(|e| fail(file, e));
    }
    // The directory: config.json first (a repository that is not a model fails here),
    // then the weights (one file, or the index and every shard it names), then what is
    // optional.
    let config = repo.get("config.json").map_err(|e| fail("config.json", e))?;
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    match optional(&repo, "model.safetensors.index.json").map_err(|e| fail("model.safetensors.index.json", e))? {
        Some(index) => {
            for shard in shard_names(&index, &shown)? {
                repo.get(&shard).map_err(|e| fail(&shard, e))?;
            }
        }
        None => {
            repo.get("model.safetensors").map_err(|e| fail("model.safetensors", e))?;
        }
    }
    for file in ["generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"] {
        optional(&repo, file).map_err(|e| fail(file, e))?;
    }
    Ok(dir)
}

/// A file that may be absent: `None` on the hub's 404.
fn optional(repo: &ApiRepo, file: &str) -> std::result::Result<Option<PathBuf>, hf_hub::api::sync::ApiError> {
    match repo.get(file) {
        Ok(path) => Ok(Some(path)),
        Err(hf_hub::api::sync::ApiError::RequestError(e)) if matches!(*e, ureq::Error::Status(404, _)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The shard files a safetensors index names (each once, in order).
fn shard_names(index: &Path, shown: &str) -> Result<Vec<String>> {
    let bad = |detail: String| Error::Hub { name: shown.to_string(), detail };
    let text = std::fs::read_to_string(index).map_err(|e| bad(format!("reading {}: {e}", index.display())))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("{}: not JSON: {e}", index.display())))?;
    let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad(format!("{}: no weight_map", index.display())))?;
    let mut shards: Vec<String> = Vec::new();
    for file in map.values() {
        let file = file.as_str().ok_or_else(|| bad(format!("{}: a weight_map value is not a string", index.display())))?;
        let safe = !file.is_empty() && !file.starts_with('/') && file.split('/').all(|p| !p.is_empty() && p != "..");
        if !safe {
            return Err(bad(format!("{}: shard {file:?} is not a file inside the repository", index.display())));
        }
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_string());
        }
    }
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_or_are_refused_clearly() {
        assert_eq!(parse("models/x").unwrap(), None);
        assert_eq!(parse("hf:Qwen/Qwen2.5-0.5B").unwrap(), Some(HubName { repo: "Qwen/Qwen2.5-0.5B".into(), file: None }));
        assert_eq!(
            parse("hf:a_b/c.d:sub/model-q4_k_m.gguf").unwrap(),
            Some(HubName { repo: "a_b/c.d".into(), file: Some("sub/model-q4_k_m.gguf".into()) })
        );
        for bad in ["hf:", "hf:owner", "hf:/repo", "hf:a/b/c", "hf:a/b:", "hf:a/b:../x", "hf:a/b:/etc/passwd", "hf:a b/c", "hf:../b"] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
