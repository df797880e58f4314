//! Model-level self-test cases: two tiny seeded checkpoints from tests/fixtures/models
//! (a tied Qwen2 and a GPT-2, both f32) and their transformers goldens, embedded in the
//! binary. Per golden prompt and KV-cache storage: the tokenizer's ids, the logits at
//! every prompt position (within `tolerance::MODEL_LOGITS_F32` with an f32 cache,
//! `MODEL_LOGITS_F16_KV` with the default f16 one), and the greedy continuation (KV-cache
//! decode on the GPU sampler) id for id.
//!
//! The files are whatever tests/fixtures holds at build time (regenerated goldens are
//! picked up by the next build). At run time they are written to a temporary directory
//! and loaded through the ordinary `ModelDir` path.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use kiln_kernels::selftest::{Case, CaseResult, Checks, Stop};
use kiln_kernels::tolerance;
use kiln_model::{KvDtype, Model, ModelDir, WeightStore};
use kiln_sampler::generate::{generate, Flow, GenerateOptions};
use kiln_tensor::{Device, Recorder, Tensor};
use serde_json::Value;

/// One embedded checkpoint: its directory's files and its golden (JSON + logits).
struct Embedded {
    name: &'static str,
    files: &'static [(&'static str, &'static [u8])],
    golden: &'static [u8],
    logits: &'static [u8],
}

/// The bytes of a file under tests/fixtures/.
macro_rules! fixture {
    ($($part:literal),+) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/", $($part),+))
    };
}

macro_rules! embedded {
    ($name:literal) => {
        Embedded {
            name: $name,
            files: &[
                ("config.json", fixture!("models/", $name, "/config.json")),
                ("generation_config.json", fixture!("models/", $name, "/generation_config.json")),
                ("model.safetensors", fixture!("models/", $name, "/model.safetensors")),
                ("tokenizer.json", fixture!("models/", $name, "/tokenizer.json")),
            ],
            golden: fixture!("goldens/", $name, ".json"),
            logits: fixture!("goldens/", $name, ".logits.safetensors"),
        }
    };
}

const MODELS: [Embedded; 2] = [embedded!("qwen2-tiny-tied-f32"), embedded!("gpt2-tiny-f32")];

fn golden(m: &Embedded) -> Result<Value> {
    serde_json::from_slice(m.golden).with_context(|| format!("embedded golden {}.json", m.name))
}

fn ids(v: &Value) -> Result<Vec<u32>> {
    v.as_array()
        .ok_or_else(|| anyhow!("expected an array of ids, got {v}"))?
        .iter()
        .map(|x| x.as_u64().map(|i| i as u32).ok_or_else(|| anyhow!("not an id: {x}")))
        .collect()
}

/// Write the checkpoint's files (and the reference logits) into `dir`.
fn unpack(m: &Embedded, dir: &Path) -> Result<()> {
    for (file, bytes) in m.files {
        std::fs::write(dir.join(file), bytes).with_context(|| format!("writing {}", dir.join(file).display()))?;
    }
    std::fs::write(dir.join("reference.logits.safetensors"), m.logits)?;
    Ok(())
}

/// Logits `[seq, vocab]` at every position of `prompt`, in one prefill.
fn all_logits(dev: &Device, model: &Model, prompt: &[u32]) -> Result<Vec<f32>> {
    let mut cache = model.new_cache(dev, prompt.len())?;
    let input = Tensor::from_slice(dev, prompt, &[prompt.len()])?;
    let mut rec = Recorder::new(dev);
    let logits = model.forward(&mut rec, &input, &mut cache, true)?;
    rec.submit()?;
    Ok(logits.to_vec_f32()?)
}

/// Check one golden prompt of one embedded checkpoint.
fn check_prompt(dev: &Device, m: &Embedded, index: usize, kv: KvDtype, name: &str, checks: &mut Checks) -> Result<()> {
    let g = golden(m)?;
    let case = &g["cases"][index];
    let tmp = tempfile::tempdir().context("creating a temporary directory for the embedded checkpoint")?;
    unpack(m, tmp.path())?;
    let dir = ModelDir::open(tmp.path())?;
    let mut model = Model::load(dev, &dir)?;
    model.set_kv_dtype(kv);
    let tol = if kv == KvDtype::F16 { tolerance::MODEL_LOGITS_F16_KV } else { tolerance::MODEL_LOGITS_F32 };

    let prompt = ids(&case["prompt_ids"])?;
    let text = case["prompt"].as_str().ok_or_else(|| anyhow!("golden case without a prompt"))?;
    checks.exact(&format!("{name}: prompt ids"), &dir.tokenizer()?.encode(text)?, &prompt);

    let shape: Vec<usize> = ids(&case["logits_shape"])?.into_iter().map(|d| d as usize).collect();
    let tensor = case["logits_tensor"].as_str().ok_or_else(|| anyhow!("golden case without logits_tensor"))?;
    let want = WeightStore::open_file(tmp.path().join("reference.logits.safetensors"))?.get_f32(tensor, &shape)?;
    checks.close(&format!("{name}: logits"), &all_logits(dev, &model, &prompt)?, &want, tol);

    let greedy = &case["greedy"];
    let n = greedy["max_new_tokens"].as_u64().ok_or_else(|| anyhow!("golden case without max_new_tokens"))? as usize;
    let opts = GenerateOptions::greedy(n, dir.eos_token_ids());
    let (out, _) = generate(dev, &model, &prompt, &opts, |_| Ok(Flow::Continue))?;
    let got: Vec<u32> = out.iter().map(|t| t.id).collect();
    checks.exact(&format!("{name}: greedy ids"), &got, &ids(&greedy["new_ids"])?);
    Ok(())
}

/// One case per golden prompt of each embedded checkpoint.
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (mi, m) in MODELS.iter().enumerate() {
        let prompts: Vec<String> = match golden(m) {
            Ok(g) => g["cases"]
                .as_array()
                .map(|a| a.iter().map(|c| c["name"].as_str().unwrap_or("?").to_string()).collect())
                .unwrap_or_default(),
            Err(_) => vec![],
        };
        if prompts.is_empty() {
            // A golden that does not parse is a failure, not a silently shorter list.
            let name = format!("model/{}/golden", m.name);
            out.push(Case::new(name, move |_dev: &Device, _checks: &mut Checks| -> CaseResult {
                Err(Stop::Error(match golden(&MODELS[mi]) {
                    Err(e) => format!("{e:#}"),
                    Ok(_) => "the golden lists no cases".into(),
                }))
            }));
            continue;
        }
        for (index, prompt) in prompts.into_iter().enumerate() {
            for kv in [KvDtype::F32, KvDtype::F16] {
                let name = format!("model/{}/{prompt}/kv-{kv}", m.name);
                out.push(Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
                    check_prompt(dev, &MODELS[mi], index, kv, &name, checks).map_err(|e| Stop::Error(format!("{e:#}")))
                }));
            }
        }
    }
    out
}
