//! Hook points: named places in every family's forward pass where a [`Hooks`] set copies
//! the tensor to the host ([`Hooks::capture`]) or edits it on the GPU, in the same
//! submission, without a readback ([`Hooks::edit`]). The names are the same for every
//! family (see docs/hooks.md for what each is in transformers):
//!
//! | point                | tensor `[rows, width]`                                         |
//! |----------------------|----------------------------------------------------------------|
//! | `embed`              | token embedding (+ GPT-2's position embedding), `[seq, hidden]` |
//! | `blocks.{i}.attn_in` | the block's first norm applied to its input                     |
//! | `blocks.{i}.attn_out`| attention output after o_proj, before the residual add          |
//! | `blocks.{i}.resid_mid` | after the attention residual add                              |
//! | `blocks.{i}.mlp_out` | MLP output before its residual add                              |
//! | `blocks.{i}.resid_post` | after the MLP residual add: the block's output               |
//! | `final_norm`         | the final norm's output (the LM head's input)                   |
//! | `logits`             | the LM head's output, `[rows, vocab]`, before any sampling      |
//!
//! `final_norm` and `logits` have one row per position whose logits the pass computes (the
//! last only, unless all logits are asked for).
//!
//! With no hook set the forward passes are exactly the fused ones (no extra dispatch). A
//! hook on a point a fusion hides (`attn_in`: the norm folded into the q/k/v matvec;
//! `attn_out`, `mlp_out`: the projection fused with the residual add; `final_norm`: the norm
//! folded into the LM head) makes that layer run the unfused path, which exposes it.
//!
//! Adding the points to a family: call [`Hooks::run`] on a point's tensor,
//! [`Hooks::norm_input`] in front of a normed projection, [`Hooks::zero_heads`] on the
//! attention output before o_proj and [`Hooks::linear_residual`] for a projection fused
//! with its residual add (docs/hooks.md shows the lines).

use std::fmt;
use std::sync::{Mutex, OnceLock};

use kiln_kernels::elementwise;
pub use kiln_kernels::logit_edit::{LogitBase, LogitEdit};
use kiln_tensor::{DType, Recorder, Tensor};

use crate::fused::{self, NormRef};
use crate::nn::{self, Linear};
use crate::{ModelConfig, ModelError, Result};

/// A named point of the forward pass (parsed from and printed as its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// `embed`: after the token (and GPT-2's position) embedding.
    Embed,
    /// `blocks.{i}.attn_in`: block i's first norm applied to its input.
    AttnIn(usize),
    /// `blocks.{i}.attn_out`: block i's attention output after o_proj, before the residual.
    AttnOut(usize),
    /// `blocks.{i}.resid_mid`: after block i's attention residual add.
    ResidMid(usize),
    /// `blocks.{i}.mlp_out`: block i's MLP output before its residual add.
    MlpOut(usize),
    /// `blocks.{i}.resid_post`: after block i's MLP residual add (the block's output).
    ResidPost(usize),
    /// `final_norm`: the final norm's output.
    FinalNorm,
    /// `logits`: the LM head's output.
    Logits,
}

impl Point {
    /// Every point of a model of `n_layers` blocks, in the order the forward pass reaches them.
    pub fn all(n_layers: usize) -> Vec<Point> {
        let mut v = vec![Point::Embed];
        for i in 0..n_layers {
            v.extend([Point::AttnIn(i), Point::AttnOut(i), Point::ResidMid(i), Point::MlpOut(i), Point::ResidPost(i)]);
        }
        v.extend([Point::FinalNorm, Point::Logits]);
        v
    }

    /// Parse a point's name for a model of `n_layers` blocks; the error names `param` (the
    /// flag or argument the name came from) and lists the valid names.
    pub fn parse(name: &str, n_layers: usize, param: &str) -> Result<Point> {
        let bad = |detail: String| ModelError::Param { name: param.into(), detail };
        let usage = "valid points: embed, blocks.{i}.attn_in, blocks.{i}.attn_out, blocks.{i}.resid_mid, \
                     blocks.{i}.mlp_out, blocks.{i}.resid_post, final_norm, logits (`kiln hooks -m MODEL` lists them)";
        match name {
            "embed" => return Ok(Point::Embed),
            "final_norm" => return Ok(Point::FinalNorm),
            "logits" => return Ok(Point::Logits),
            _ => {}
        }
        let parts: Vec<&str> = name.split('.').collect();
        let [ "blocks", index, what ] = parts.as_slice() else {
            return Err(bad(format!("unknown hook point {name:?}; {usage}")));
        };
        let Ok(i) = index.parse::<usize>() else {
            return Err(bad(format!("{name:?}: block index {index:?} is not a number; {usage}")));
        };
        if i >= n_layers {
            return Err(bad(format!("{name:?}: block {i} does not exist, the model has blocks 0..{}", n_layers.saturating_sub(1))));
        }
        Ok(match *what {
            "attn_in" => Point::AttnIn(i),
            "attn_out" => Point::AttnOut(i),
            "resid_mid" => Point::ResidMid(i),
            "mlp_out" => Point::MlpOut(i),
            "resid_post" => Point::ResidPost(i),
            _ => return Err(bad(format!("{name:?}: unknown block point {what:?}; {usage}"))),
        })
    }

    /// The block the point belongs to (`None` for `embed`, `final_norm`, `logits`).
    pub fn block(self) -> Option<usize> {
        match self {
            Point::AttnIn(i) | Point::AttnOut(i) | Point::ResidMid(i) | Point::MlpOut(i) | Point::ResidPost(i) => Some(i),
            _ => None,
        }
    }

    /// The width of the point's rows: the vocabulary for `logits`, else the hidden size.
    pub fn width(self, config: &ModelConfig) -> usize {
        if self == Point::Logits {
            config.vocab_size
        } else {
            config.hidden_size
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::Embed => write!(f, "embed"),
            Point::AttnIn(i) => write!(f, "blocks.{i}.attn_in"),
            Point::AttnOut(i) => write!(f, "blocks.{i}.attn_out"),
            Point::ResidMid(i) => write!(f, "blocks.{i}.resid_mid"),
            Point::MlpOut(i) => write!(f, "blocks.{i}.mlp_out"),
            Point::ResidPost(i) => write!(f, "blocks.{i}.resid_post"),
            Point::FinalNorm => write!(f, "final_norm"),
            Point::Logits => write!(f, "logits"),
        }
    }
}

/// An edit of a point's tensor, done on the GPU.
#[derive(Clone, Debug)]
pub enum Edit {
    /// `x += scale · vector` on every row (steering); `vector` has the point's width.
    Add {
        /// `[width]` f32.
        vector: Vec<f32>,
        /// Multiplies `vector` (on the host, once).
        scale: f32,
    },
    /// `x *= factor`.
    Scale(f32),
    /// At `blocks.{i}.attn_out` only: zero these heads' `head_dim` values of the attention
    /// output BEFORE o_proj (transformers' o_proj input `[seq, heads · head_dim]`, head h
    /// in columns `h·head_dim .. (h+1)·head_dim`). o_proj's bias, if any, is still added.
    ZeroHeads(Vec<usize>),
    /// At `logits` only: set or raise token logits, absolute or relative to the row max
    /// (taken before these edits), in order.
    Logits(Vec<LogitEdit>),
}

struct Entry {
    point: Point,
    edit: Edit,
    /// The edit's vector or mask on the GPU, uploaded on first use.
    gpu: OnceLock<Tensor>,
}

/// A point's tensor captured by [`Hooks::capture`], read back by [`Hooks::take_captures`].
#[derive(Clone, Debug)]
pub struct Capture {
    /// Where it was captured.
    pub point: Point,
    /// `[rows, width]`: the rows of every forward pass since the last take, in order.
    pub shape: [usize; 2],
    /// Row-major values.
    pub data: Vec<f32>,
}

/// The hooks set on a model: edits run on the GPU inside the forward pass, captures keep
/// the point's tensor (after the edits at that point) until [`Hooks::take_captures`].
/// Every forward pass while a capture is set adds its rows (a prefill in chunks adds one
/// part per chunk, a decode step one row).
#[derive(Default)]
pub struct Hooks {
    edits: Vec<Entry>,
    captures: Vec<Point>,
    captured: Mutex<Vec<(Point, Tensor)>>,
}

fn param(detail: String) -> ModelError {
    ModelError::Param { name: "hook".into(), detail }
}

impl Hooks {
    /// No hooks: the forward passes run fused, as without hooks.
    pub fn new() -> Hooks {
        Hooks::default()
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty() && self.captures.is_empty()
    }

    /// Capture `point`'s tensor after every forward pass (after the edits at that point).
    pub fn capture(&mut self, point: Point) -> &mut Hooks {
        if !self.captures.contains(&point) {
            self.captures.push(point);
        }
        self
    }

    /// Edit `point`'s tensor on the GPU (edits at one point run in the order added).
    pub fn edit(&mut self, point: Point, edit: Edit) -> &mut Hooks {
        self.edits.push(Entry { point, edit, gpu: OnceLock::new() });
        self
    }

    /// The points captured, in the order asked.
    pub fn captured_points(&self) -> &[Point] {
        &self.captures
    }

    /// Check every point and edit against `config`: blocks that exist, vectors of the
    /// point's width, heads below `num_attention_heads`, head zeroing only at `attn_out`,
    /// logit edits only at `logits` with ids below the vocabulary.
    pub fn check(&self, config: &ModelConfig) -> Result<()> {
        let points = self.edits.iter().map(|e| e.point).chain(self.captures.iter().copied());
        for p in points {
            if let Some(i) = p.block() {
                if i >= config.n_layers {
                    return Err(param(format!("{p}: block {i} does not exist, the model has {} blocks", config.n_layers)));
                }
            }
        }
        for e in &self.edits {
            let p = e.point;
            match &e.edit {
                Edit::Add { vector, .. } if vector.len() != p.width(config) => {
                    return Err(param(format!("{p}: the vector has {} values, the point {}", vector.len(), p.width(config))));
                }
                Edit::ZeroHeads(_) if !matches!(p, Point::AttnOut(_)) => {
                    return Err(param(format!("{p}: heads can be zeroed only at blocks.{{i}}.attn_out")));
                }
                Edit::ZeroHeads(heads) => {
                    if let Some(h) = heads.iter().find(|&&h| h >= config.n_heads) {
                        return Err(param(format!("{p}: head {h} does not exist, the model has {} heads", config.n_heads)));
                    }
                }
                Edit::Logits(_) if p != Point::Logits => {
                    return Err(param(format!("{p}: logit edits act only at `logits`")));
                }
                Edit::Logits(edits) => {
                    if let Some(e) = edits.iter().find(|e| e.id as usize >= config.vocab_size) {
                        return Err(param(format!("logits: token id {} is past the vocabulary of {}", e.id, config.vocab_size)));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// True when a hook acts on `point`'s tensor itself (head zeroing acts before o_proj
    /// and does not count): the fusion hiding it must not run.
    pub fn touches(&self, point: Point) -> bool {
        self.captures.contains(&point)
            || self.edits.iter().any(|e| e.point == point && !matches!(e.edit, Edit::ZeroHeads(_)))
    }

    /// Run the hooks at `point` on `x` `[rows, width]`: its edits in order (each may give a
    /// new tensor), then the capture. Returns the tensor the forward pass continues with
    /// (`x` itself when nothing is set there: no dispatch).
    pub fn run(&self, rec: &mut Recorder, point: Point, x: Tensor) -> Result<Tensor> {
        let mut x = x;
        for e in self.edits.iter().filter(|e| e.point == point) {
            x = self.apply(rec, e, x)?;
        }
        if self.captures.contains(&point) {
            self.captured.lock().unwrap_or_else(|e| e.into_inner()).push((point, x.clone()));
        }
        Ok(x)
    }

    fn upload(&self, e: &Entry, x: &Tensor, values: impl FnOnce() -> Vec<f32>) -> Result<Tensor> {
        if let Some(t) = e.gpu.get() {
            return Ok(t.clone());
        }
        let v = values();
        let t = Tensor::from_slice(x.device(), &v, &[v.len()])?;
        Ok(e.gpu.get_or_init(|| t).clone())
    }

    fn apply(&self, rec: &mut Recorder, e: &Entry, x: Tensor) -> Result<Tensor> {
        let width = x.dim(-1);
        match &e.edit {
            Edit::Add { vector, scale } => {
                if vector.len() != width {
                    return Err(param(format!("{}: the vector has {} values, the point {width}", e.point, vector.len())));
                }
                let v = self.upload(e, &x, || vector.iter().map(|a| a * scale).collect())?;
                nn::add(rec, &x, &v)
            }
            Edit::Scale(factor) => {
                let v = self.upload(e, &x, || vec![*factor; width])?;
                let out = Tensor::empty(x.device(), x.shape(), DType::F32)?;
                elementwise::mul(rec, &x, &v, &out)?;
                Ok(out)
            }
            Edit::Logits(edits) => {
                kiln_kernels::logit_edit::set_logits(rec, &x, edits)?;
                Ok(x)
            }
            // Applied before o_proj by zero_heads.
            Edit::ZeroHeads(_) => Ok(x),
        }
    }

    /// The attention output `attn` `[seq, heads · head_dim]` of block `block` before
    /// o_proj, with the heads zeroed that [`Edit::ZeroHeads`] at `blocks.{block}.attn_out`
    /// names (one multiply by a 0/1 mask; `attn` itself when none).
    pub fn zero_heads(&self, rec: &mut Recorder, block: usize, attn: Tensor, head_dim: usize) -> Result<Tensor> {
        let mut attn = attn;
        for e in self.edits.iter().filter(|e| e.point == Point::AttnOut(block)) {
            let Edit::ZeroHeads(heads) = &e.edit else { continue };
            let width = attn.dim(-1);
            let mask = self.upload(e, &attn, || {
                (0..width).map(|c| if heads.contains(&(c / head_dim.max(1))) { 0.0 } else { 1.0 }).collect()
            })?;
            let out = Tensor::empty(attn.device(), attn.shape(), DType::F32)?;
            elementwise::mul(rec, &attn, &mask, &out)?;
            attn = out;
        }
        Ok(attn)
    }

    /// The input of a normed projection at `point` (`attn_in`, `final_norm`): `(x, norm)`
    /// to fold the norm into the projection when no hook acts there, else the norm applied
    /// and hooked, with [`NormRef::Done`].
    pub fn norm_input<'a>(&self, rec: &mut Recorder, point: Point, x: &Tensor, norm: NormRef<'a>) -> Result<(Tensor, NormRef<'a>)> {
        if !self.touches(point) {
            return Ok((x.clone(), norm));
        }
        let xn = norm.forward(rec, x)?;
        Ok((self.run(rec, point, xn)?, NormRef::Done))
    }

    /// `residual + l(x)` with the hooks at `point` (`attn_out`, `mlp_out`) on `l(x)`: the
    /// fused [`fused::linear_residual`] when none acts there.
    pub fn linear_residual(&self, rec: &mut Recorder, point: Point, x: &Tensor, l: &Linear, residual: &Tensor) -> Result<Tensor> {
        if !self.touches(point) {
            return fused::linear_residual(rec, x, l, residual);
        }
        let y = l.forward(rec, x)?;
        let y = self.run(rec, point, y)?;
        nn::add(rec, residual, &y)
    }

    /// The tensors captured since the last take, read back (call after the recorder's
    /// submission): one [`Capture`] per captured point, in the order asked, its parts from
    /// successive forward passes stacked by rows. Points no pass reached are left out.
    pub fn take_captures(&self) -> Result<Vec<Capture>> {
        let parts = std::mem::take(&mut *self.captured.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out = Vec::new();
        for &point in &self.captures {
            let mut data = Vec::new();
            let mut rows = 0;
            let mut width = 0;
            for (_, t) in parts.iter().filter(|(p, _)| *p == point) {
                width = t.dim(-1);
                rows += t.numel() / width.max(1);
                data.extend(t.to_vec_f32()?);
            }
            if rows > 0 {
                out.push(Capture { point, shape: [rows, width], data });
            }
        }
        Ok(out)
    }
}
