//! Helpers shared by the integration tests: fixture paths and goldens, the tiny
//! checkpoints, and the real GGUF models from the user cache.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use kiln_model::gguf::tokenizer::from_gguf;
use kiln_model::gguf::GgufFile;
use kiln_model::{Model, ModelDir, Tokenizer};
use kiln_tensor::Device;
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A golden JSON file from `fixtures/goldens`.
pub fn golden(name: &str) -> Value {
    let path = fixtures().join("goldens").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// A tiny checkpoint from `fixtures/models`, loaded.
pub fn tiny_model(dev: &Device, name: &str) -> (Model, ModelDir) {
    let dir = ModelDir::open(fixtures().join("models").join(name)).unwrap();
    (Model::load(dev, &dir).unwrap(), dir)
}

/// A real model fetched by `kiln fetch` into the user cache; None (the test skips) when
/// it is missing, unless KILN_REQUIRE_MODELS=1 (CI), where a missing model fails.
pub fn real_model_path(file: &str) -> Option<PathBuf> {
    let path = kiln_model::fetch::cache_dir().join("models").join(file);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("KILN_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!("{} is missing: run `kiln fetch qwen2.5 smollm2 gemma3` first", path.display());
    }
    eprintln!("skipping: {} not found (run `kiln fetch qwen2.5 smollm2 gemma3`)", path.display());
    None
}

/// The tokenizer kiln builds from a GGUF's metadata (as llama.cpp and transformers 5 read it).
pub fn gguf_tokenizer(file: &GgufFile) -> Tokenizer {
    from_gguf(file).unwrap()
}

/// A real GGUF model and its default tokenizer.
pub fn gguf_model(dev: &Device, path: &Path) -> (Model, Tokenizer) {
    let file = GgufFile::open(path).unwrap();
    (Model::load_gguf(dev, &file).unwrap(), gguf_tokenizer(&file))
}

/// The tiny checkpoints of every family (tests/fixtures/models), as the hook and lens
/// goldens list them.
pub const TINY: [&str; 7] = [
    "gpt2-tiny-f32",
    "qwen2-tiny-tied-f32",
    "qwen2-tiny-untied-bf16",
    "qwen2-tiny-f16",
    "llama-tiny-f32",
    "qwen3-tiny-f32",
    "gemma3-tiny-f32",
];
