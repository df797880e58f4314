//! Hook points from the command line: `kiln hooks -m MODEL` lists them, `kiln capture`
//! writes points' activations to a safetensors file, and the hook flags of `kiln next` /
//! `kiln generate` (`--set-logit`, `--add-logit`, `--steer`) edit them on the GPU.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_model::hooks::{Edit, Hooks, LogitBase, LogitEdit, Point};
use kiln_model::{ModelConfig, Tokenizer};
use kiln_tensor::{Recorder, Tensor};

use crate::model_args::{Loaded, ModelArgs};
use crate::DeviceArgs;

/// `kiln hooks`.
#[derive(Args)]
pub struct HooksArgs {
    /// A Hugging Face model directory or a GGUF file (only its config is read).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
}

/// `kiln capture`.
#[derive(Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A hook point to capture, e.g. `blocks.3.resid_post` (`kiln hooks -m MODEL` lists
    /// them). Repeatable.
    #[arg(long = "point", value_name = "POINT", required = true)]
    points: Vec<String>,
    /// The safetensors file to write: one f32 tensor `[positions, width]` per point, named
    /// like the point; the prompt ids in the metadata (`prompt_ids`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    hooks: HookFlags,
}

/// The editing hooks `kiln next`, `kiln generate` and `kiln capture` take.
#[derive(Args, Default)]
pub struct HookFlags {
    /// Set the logit of TEXT's first token (or of `#ID`) in the model's output, before any
    /// sampling: `--set-logit " coffee"=max+10` (the row's max plus 10), `=max-2`, or
    /// `=12.5` (absolute). A hook at `logits`, unlike --logit-bias. Repeatable.
    #[arg(long, value_name = "TOKEN=VALUE", allow_hyphen_values = true)]
    set_logit: Vec<String>,
    /// Add BIAS to token ID's logit as a hook at `logits` (before the sampler's
    /// processors, unlike --logit-bias), e.g. `--add-logit 1234=-5`. Repeatable.
    #[arg(long, value_name = "ID=BIAS", allow_hyphen_values = true)]
    add_logit: Vec<String>,
    /// Add SCALE times a vector to a point on every forward pass (steering), e.g.
    /// `--steer blocks.6.resid_post=vec.safetensors:4.0`. FILE holds one f32 tensor of
    /// the point's width (or one named like the point). Repeatable.
    #[arg(long, value_name = "POINT=FILE:SCALE", allow_hyphen_values = true)]
    steer: Vec<String>,
}

/// `kiln hooks -m MODEL`: every point with its width.
pub fn list(args: HooksArgs) -> Result<()> {
    let config = read_config(&args.model)?;
    for p in Point::all(config.n_layers) {
        println!("{p}\t[seq, {}]", p.width(&config));
    }
    Ok(())
}

/// The config of a model directory or GGUF file, without loading weights.
fn read_config(path: &Path) -> Result<ModelConfig> {
    if kiln_model::gguf::model::is_gguf(path) {
        let file = kiln_model::gguf::GgufFile::open(path)?;
        return Ok(kiln_model::gguf::model::config_from_gguf(&file)?);
    }
    if !path.is_dir() {
        bail!("-m {}: not a model directory or a GGUF file", path.display());
    }
    Ok(kiln_model::ModelConfig::from_dir(path)?.0)
}

/// The token `key` names: `#ID`, or the first token of the text.
fn token_of(key: &str, tokenizer: Option<&Tokenizer>, flag: &str) -> Result<u32> {
    if let Some(id) = key.strip_prefix('#') {
        return id.parse().with_context(|| format!("{flag} {key:?}: {id:?} is not a token id"));
    }
    let Some(tok) = tokenizer else { bail!("{flag} {key:?} needs a tokenizer; give the id as #ID") };
    let ids = tok.encode_with_special(key, false)?;
    match ids.first() {
        Some(&id) => {
            if ids.len() > 1 {
                eprintln!("note: {flag} {key:?} is {} tokens; editing the first, {id} {:?}", ids.len(), tok.token_text(id));
            }
            Ok(id)
        }
        None => bail!("{flag} {key:?} encodes to no tokens"),
    }
}

/// `max+10`, `max-2.5`, `max` (relative to the row max) or a number (absolute).
fn parse_logit_value(v: &str, flag: &str, item: &str) -> Result<(LogitBase, f32)> {
    let number = |s: &str| -> Result<f32> {
        let x: f32 = s.trim().parse().with_context(|| format!("{flag} {item:?}: {s:?} is not a number"))?;
        if !x.is_finite() {
            bail!("{flag} {item:?}: the value must be finite");
        }
        Ok(x)
    };
    let v = v.trim();
    match v.strip_prefix("max") {
        Some("") => Ok((LogitBase::RowMax, 0.0)),
        Some(rest) if rest.starts_with('+') => Ok((LogitBase::RowMax, number(&rest[1..])?)),
        Some(rest) if rest.starts_with('-') => Ok((LogitBase::RowMax, -number(&rest[1..])?)),
        Some(_) => bail!("{flag} {item:?}: write the value as max+N, max-N or a number"),
        None => Ok((LogitBase::Zero, number(v)?)),
    }
}

/// One tensor of `file` as f32: the one named `name` when present, else the only one.
fn read_vector(file: &Path, name: &str, flag: &str) -> Result<Vec<f32>> {
    let bytes = std::fs::read(file).with_context(|| format!("{flag}: reading {}", file.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{flag}: {} is not a safetensors file", file.display()))?;
    let names = st.names();
    let pick = if names.contains(&name) {
        name.to_string()
    } else if names.len() == 1 {
        names[0].to_string()
    } else {
        bail!("{flag}: {} holds {} tensors and none named {name:?}: keep one, or name it like the point", file.display(), names.len())
    };
    let t = st.tensor(&pick)?;
    if t.dtype() != safetensors::Dtype::F32 {
        bail!("{flag}: tensor {pick:?} in {} is {:?}; save it as float32", file.display(), t.dtype());
    }
    Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

impl HookFlags {
    /// True when no flag is given.
    pub fn is_empty(&self) -> bool {
        self.set_logit.is_empty() && self.add_logit.is_empty() && self.steer.is_empty()
    }

    /// The hooks the flags ask for, checked against the model's config, added to `hooks`.
    pub fn add_to(&self, hooks: &mut Hooks, config: &ModelConfig, tokenizer: Option<&Tokenizer>) -> Result<()> {
        let mut logit_edits = Vec::new();
        for item in &self.set_logit {
            let Some((key, value)) = item.rsplit_once('=') else {
                bail!("--set-logit {item:?}: write TOKEN=VALUE, e.g. \" coffee\"=max+10")
            };
            let id = token_of(key, tokenizer, "--set-logit")?;
            let (base, value) = parse_logit_value(value, "--set-logit", item)?;
            logit_edits.push(LogitEdit { id, base, value, raise_only: false });
        }
        for item in &self.add_logit {
            let Some((id, bias)) = item.split_once('=') else { bail!("--add-logit {item:?}: write ID=BIAS, e.g. 1234=-5") };
            let id: u32 = id.trim().parse().with_context(|| format!("--add-logit {item:?}: {id:?} is not a token id"))?;
            let bias: f32 = bias.trim().parse().with_context(|| format!("--add-logit {item:?}: {bias:?} is not a number"))?;
            if !bias.is_finite() {
                bail!("--add-logit {item:?}: the bias must be finite");
            }
            logit_edits.push(LogitEdit { id, base: LogitBase::Current, value: bias, raise_only: false });
        }
        for e in &logit_edits {
            if e.id as usize >= config.vocab_size {
                let flag = if e.base == LogitBase::Current { "--add-logit" } else { "--set-logit" };
                bail!("{flag}: token id {} is past the model's vocabulary of {}", e.id, config.vocab_size);
            }
        }
        if !logit_edits.is_empty() {
            hooks.edit(Point::Logits, Edit::Logits(logit_edits));
        }
        for item in &self.steer {
            let Some((point, rest)) = item.split_once('=') else {
                bail!("--steer {item:?}: write POINT=FILE:SCALE, e.g. blocks.6.resid_post=vec.safetensors:4.0")
            };
            let point = Point::parse(point, config.n_layers, "--steer")?;
            let Some((file, scale)) = rest.rsplit_once(':') else { bail!("--steer {item:?}: no :SCALE after the file") };
            let scale: f32 = scale.parse().with_context(|| format!("--steer {item:?}: scale {scale:?} is not a number"))?;
            let vector = read_vector(Path::new(file), &point.to_string(), "--steer")?;
            let width = point.width(config);
            if vector.len() != width {
                bail!("--steer {item:?}: the vector in {file} has {} values, {point} is {width} wide", vector.len());
            }
            hooks.edit(point, Edit::Add { vector, scale });
        }
        hooks.check(config)?;
        Ok(())
    }

    /// Set the flags' hooks on the loaded model (nothing when no flag is given).
    pub fn install(&self, loaded: &mut Loaded) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut hooks = Hooks::new();
        self.add_to(&mut hooks, loaded.model.config(), loaded.tokenizer.as_ref())?;
        loaded.model.set_hooks(hooks)?;
        Ok(())
    }
}

/// `kiln capture`: one prefill of the prompt with the points captured, written as
/// safetensors.
pub fn capture(dev_args: &DeviceArgs, args: CaptureArgs) -> Result<()> {
    if args.output.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!("-o {}: the output file must end in .safetensors", args.output.display());
    }
    let dev = dev_args.open()?;
    let mut loaded = args.model.load(&dev)?;
    let config = loaded.model.config().clone();
    let mut hooks = Hooks::new();
    for name in &args.points {
        hooks.capture(Point::parse(name, config.n_layers, "--point")?);
    }
    args.hooks.add_to(&mut hooks, &config, loaded.tokenizer.as_ref())?;
    loaded.model.set_hooks(hooks)?;
    let ids = &loaded.prompt_ids;
    kiln_model::generate::check_prompt(&config, ids, 0)?;
    let mut cache = loaded.model.new_cache(&dev, ids.len())?;
    let input = Tensor::from_slice(&dev, ids, &[ids.len()])?;
    let mut rec = Recorder::new(&dev);
    loaded.model.forward(&mut rec, &input, &mut cache, true)?;
    rec.submit()?;
    let captures = loaded.model.take_captures()?;
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = captures
        .iter()
        .map(|c| (c.point.to_string(), c.data.iter().flat_map(|x| x.to_le_bytes()).collect(), c.shape.to_vec()))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| Ok((name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)?)))
        .collect::<Result<Vec<_>>>()?;
    let ids_text: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let metadata = HashMap::from([("prompt_ids".to_string(), ids_text.join(","))]);
    safetensors::tensor::serialize_to_file(views, Some(metadata), &args.output)
        .with_context(|| format!("-o: writing {}", args.output.display()))?;
    for c in &captures {
        eprintln!("{}: [{}, {}]", c.point, c.shape[0], c.shape[1]);
    }
    eprintln!("wrote {}", args.output.display());
    Ok(())
}
