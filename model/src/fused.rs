//! The decode step's fusions, built on the block matvec's epilogues
//! (`kiln_kernels::matvec::matvec_fused`). A decode step (at most `matvec::MAX_ROWS` rows)
//! runs per layer:
//!
//! | dispatch                                   | replaces                                  |
//! |--------------------------------------------|-------------------------------------------|
//! | norm folded into the stacked q/k/v matvec, bias in its epilogue (one per weight type) | norm, 3 matvecs, 3 bias adds |
//! | RoPE + KV append, attention (`batch::attend`) | (unchanged)                            |
//! | o_proj with the residual add in its epilogue | matvec, add                             |
//! | norm folded into the stacked gate/up matvec, SwiGLU (or GPT-2's bias + GELU) in its epilogue | norm, 2 matvecs, swiglu |
//! | down_proj with the residual add            | matvec, add                               |
//!
//! The norm is folded only where it costs the matvec no extra loads
//! (`matvec::norm_folds_into_registers`: one decode row, or a few for narrow blocks);
//! for larger batches it runs as its own dispatch and the matvec keeps the rest.
//!
//! Prefill (more rows) runs the same weights unfused: the norm, then one tiled matmul per
//! projection over row views of the stacked weights, then the element-wise ops. Every
//! fused path has an unfused twin here, used when the block matvec cannot take the shapes.

use kiln_kernels::matvec::{self, Activation, FoldedNorm, Fusion};
use kiln_tensor::{DType, Device, Recorder, Tensor};

use crate::nn::{self, LayerNorm, LmHead, Linear, RmsNorm};
use crate::Result;

/// The norm in front of a projection.
#[derive(Clone, Copy)]
pub enum NormRef<'a> {
    /// An RMSNorm (Qwen2, Llama, Qwen3).
    Rms(&'a RmsNorm),
    /// A LayerNorm (GPT-2).
    Layer(&'a LayerNorm),
    /// None: the input is normalised already (a hook exposed the norm's output).
    Done,
}

impl<'a> NormRef<'a> {
    /// `norm(x)` in a new tensor (`x` itself for [`NormRef::Done`]).
    pub(crate) fn forward(self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        match self {
            NormRef::Rms(n) => n.forward(rec, x),
            NormRef::Layer(n) => n.forward(rec, x),
            NormRef::Done => Ok(x.clone()),
        }
    }

    /// The norm for the matvec to fold in (`None` for [`NormRef::Done`]).
    fn folded(self) -> Option<FoldedNorm<'a>> {
        match self {
            NormRef::Rms(n) => Some(FoldedNorm::Rms { weight: &n.weight, eps: n.eps }),
            NormRef::Layer(n) => Some(FoldedNorm::Layer { weight: &n.weight, bias: &n.bias, eps: n.eps }),
            NormRef::Done => None,
        }
    }
}

/// The norm for a fused matvec of x with `w`: folded in (`Some`) when that is free, else
/// `None` after `xn` has been set to `norm(x)` (computed once, shared by later calls).
fn fold_or_apply<'a>(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    norm: NormRef<'a>,
    xn: &mut Option<Tensor>,
) -> Result<Option<FoldedNorm<'a>>> {
    if matches!(norm, NormRef::Done) {
        return Ok(None);
    }
    if matvec::norm_folds_into_registers(x.device(), x.dim(0), w.dtype()) {
        return Ok(norm.folded());
    }
    if xn.is_none() {
        *xn = Some(norm.forward(rec, x)?);
    }
    Ok(None)
}

/// True when `x` (a decode step's rows) can go through the fused matvec with `w`.
fn fusable(x: &Tensor, w: &Tensor) -> bool {
    x.dim(0) <= matvec::MAX_ROWS && matvec::block_path_applies(x, w)
}

/// Up to three projections of the same input stacked by rows into one weight per weight
/// type (q, k, v; GPT-2's c_attn), so a decode step reads them in one matvec each.
pub struct Stacked {
    groups: Vec<Group>,
    /// Each projection alone, as views of its group's stacked weight and bias.
    parts: Vec<Linear>,
}

struct Group {
    linear: Linear,
    /// (index into `parts`, first row in the group) for each member, in row order.
    members: Vec<(usize, usize)>,
}

/// `parts` stacked by rows into one new `[Σ rows, K]` tensor (a GPU copy).
fn stack_rows(dev: &Device, parts: &[&Tensor]) -> Result<Tensor> {
    let rows: usize = parts.iter().map(|t| t.dim(0)).sum();
    let mut shape = parts[0].shape().to_vec();
    shape[0] = rows;
    let out = Tensor::empty_unpooled(dev, &shape, parts[0].dtype())?;
    let mut rec = Recorder::new(dev);
    let mut at = 0;
    for t in parts {
        rec.copy_into(t, &out, at)?;
        at += t.numel();
    }
    rec.submit()?;
    Ok(out)
}

/// Rows `start..start + n` of `t` copied into a tensor of their own.
fn copy_rows(dev: &Device, t: &Tensor, start: usize, n: usize) -> Result<Tensor> {
    let mut shape = t.shape().to_vec();
    shape[0] = n;
    let row: usize = shape[1..].iter().product();
    let out = Tensor::empty_unpooled(dev, &shape, t.dtype())?;
    let mut rec = Recorder::new(dev);
    rec.copy_region(t, start * row, &out, 0, n * row)?;
    rec.submit()?;
    Ok(out)
}

impl Stacked {
    /// Stack `parts` (same input features) by weight type. Parts whose stacked rows would
    /// not start on the adapter's storage-offset alignment stay in a group of their own.
    pub fn new(dev: &Device, parts: Vec<Linear>) -> Result<Stacked> {
        let mut groups: Vec<Group> = Vec::new();
        let mut views: Vec<Option<Linear>> = parts.iter().map(|_| None).collect();
        let mut pending: Vec<Vec<usize>> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let same = |g: &Vec<usize>| {
                let q = &parts[g[0]];
                q.weight.dtype() == p.weight.dtype() && q.bias.is_some() == p.bias.is_some()
            };
            match pending.iter_mut().find(|g| same(g)) {
                Some(g) => g.push(i),
                None => pending.push(vec![i]),
            }
        }
        for members in pending {
            if members.len() > 1 {
                if let Some(group) = Self::try_stack(dev, &parts, &members, &mut views)? {
                    groups.push(group);
                    continue;
                }
            }
            for &i in &members {
                let p = &parts[i];
                views[i] = Some(Linear::new(p.weight.clone(), p.bias.clone()));
                groups.push(Group { linear: Linear::new(p.weight.clone(), p.bias.clone()), members: vec![(i, 0)] });
            }
        }
        let parts = views.into_iter().map(|v| v.expect("every part is placed")).collect();
        Ok(Stacked { groups, parts })
    }

    /// Projections already stacked in one weight and bias (GPT-2's c_attn): parts of
    /// `rows` rows each, in order. Where the parts' row views would be misaligned they are
    /// copied apart instead.
    pub fn from_stacked(dev: &Device, stacked: Linear, rows: &[usize]) -> Result<Stacked> {
        let align = dev.limits().min_storage_buffer_offset_alignment as usize;
        let mut starts = Vec::with_capacity(rows.len());
        let mut at = 0;
        for &r in rows {
            starts.push(at);
            at += r;
        }
        let view = |t: &Tensor, start: usize, n: usize| t.narrow_rows(start, n);
        let aligned = starts.iter().all(|&s| (4 * s).is_multiple_of(align))
            && starts.iter().zip(rows).all(|(&s, &n)| view(&stacked.weight, s, n).is_ok());
        let mut parts = Vec::with_capacity(rows.len());
        for (&s, &n) in starts.iter().zip(rows) {
            let (w, b) = if aligned {
                (view(&stacked.weight, s, n)?, stacked.bias.as_ref().map(|b| view(b, s, n)).transpose()?)
            } else {
                (copy_rows(dev, &stacked.weight, s, n)?, stacked.bias.as_ref().map(|b| copy_rows(dev, b, s, n)).transpose()?)
            };
            parts.push(Linear::new(w, b));
        }
        if !aligned {
            return Stacked::new(dev, parts);
        }
        let members = (0..rows.len()).zip(starts).collect();
        Ok(Stacked { groups: vec![Group { linear: stacked, members }], parts })
    }

    /// One stacked group of `members`, with their row views; `None` when a view would be
    /// misaligned.
    fn try_stack(dev: &Device, parts: &[Linear], members: &[usize], views: &mut [Option<Linear>]) -> Result<Option<Group>> {
        let weights: Vec<&Tensor> = members.iter().map(|&i| &parts[i].weight).collect();
        let weight = stack_rows(dev, &weights)?;
        let bias = match parts[members[0]].bias {
            Some(_) => {
                let biases: Vec<&Tensor> = members.iter().map(|&i| parts[i].bias.as_ref().expect("grouped by bias")).collect();
                Some(stack_rows(dev, &biases)?)
            }
            None => None,
        };
        let align = dev.limits().min_storage_buffer_offset_alignment as usize;
        let mut placed = Vec::new();
        let mut start = 0;
        for &i in members {
            let rows = parts[i].weight.dim(0);
            // The decode output part starts at element M·start: aligned for every M when
            // 4·start is.
            let Ok(w) = weight.narrow_rows(start, rows) else { return Ok(None) };
            let b = match &bias {
                Some(b) => match b.narrow_rows(start, rows) {
                    Ok(v) => Some(v),
                    Err(_) => return Ok(None),
                },
                None if (4 * start) % align != 0 => return Ok(None),
                None => None,
            };
            placed.push((i, start, Linear::new(w, b)));
            start += rows;
        }
        let mut group_members = Vec::new();
        for (i, start, view) in placed {
            views[i] = Some(view);
            group_members.push((i, start));
        }
        Ok(Some(Group { linear: Linear::new(weight, bias), members: group_members }))
    }

    /// Weight types stacked: one matvec each per decode step.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Bytes of weights and biases on the GPU.
    pub fn bytes(&self) -> u64 {
        self.groups.iter().map(|g| g.linear.weight.byte_len() + g.linear.bias.as_ref().map_or(0, |b| b.byte_len())).sum()
    }

    /// `norm(x)` `[seq, K]` through every projection: one `[seq, out_i]` tensor per part.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor, norm: NormRef) -> Result<Vec<Tensor>> {
        let seq = x.dim(0);
        if !self.groups.iter().all(|g| fusable(x, &g.linear.weight)) {
            let xn = norm.forward(rec, x)?;
            return self.parts.iter().map(|p| p.forward(rec, &xn)).collect();
        }
        let mut out: Vec<Option<Tensor>> = self.parts.iter().map(|_| None).collect();
        let mut xn = None;
        for g in &self.groups {
            let n = g.linear.out_features();
            let y = Tensor::empty(x.device(), &[seq, n], DType::F32)?;
            let cuts = match g.members.as_slice() {
                [_] => None,
                [_, (_, b)] => Some([*b, n]),
                [_, (_, b), (_, c)] => Some([*b, *c]),
                _ => unreachable!("at most three parts are stacked"),
            };
            let folded = fold_or_apply(rec, x, &g.linear.weight, norm, &mut xn)?;
            let input = xn.as_ref().unwrap_or(x);
            let f = Fusion { norm: folded, bias: g.linear.bias.as_ref(), segments: cuts, ..Default::default() };
            matvec::matvec_fused(rec, input, &g.linear.weight, &f, &y)?;
            let flat = y.reshape(&[seq * n])?;
            for &(i, start) in &g.members {
                let rows = self.parts[i].out_features();
                out[i] = Some(flat.narrow_rows(seq * start, seq * rows)?.reshape(&[seq, rows])?);
            }
        }
        Ok(out.into_iter().map(|t| t.expect("every part is computed")).collect())
    }
}

/// gate and up stacked (`[2·inter, K]`, gate rows first) with SwiGLU in the matvec's
/// epilogue: `silu(gate(norm(x))) * up(norm(x))` in one dispatch per decode step.
pub struct GateUp {
    stacked: Option<Linear>,
    gate: Linear,
    up: Linear,
}

impl GateUp {
    /// Stack `gate` and `up` into one weight on the GPU when they have the same dtype and no
    /// bias (and the stacked weight can be split back into row views); otherwise keep them apart.
    pub fn new(dev: &Device, gate: Linear, up: Linear) -> Result<GateUp> {
        let same = gate.weight.dtype() == up.weight.dtype() && gate.bias.is_none() && up.bias.is_none();
        if !same {
            return Ok(GateUp { stacked: None, gate, up });
        }
        let weight = stack_rows(dev, &[&gate.weight, &up.weight])?;
        let inter = gate.out_features();
        match weight.narrow_rows(inter, inter) {
            Ok(up_view) => {
                let gate_view = weight.narrow_rows(0, inter)?;
                Ok(GateUp { stacked: Some(Linear::new(weight, None)), gate: Linear::new(gate_view, None), up: Linear::new(up_view, None) })
            }
            Err(_) => Ok(GateUp { stacked: None, gate, up }),
        }
    }

    /// Bytes of weights and biases on the GPU.
    pub fn bytes(&self) -> u64 {
        let lin = |l: &Linear| l.weight.byte_len() + l.bias.as_ref().map_or(0, |b| b.byte_len());
        match &self.stacked {
            Some(s) => lin(s),
            None => lin(&self.gate) + lin(&self.up),
        }
    }

    /// x `[seq, K]` → `silu(gate(norm(x))) * up(norm(x))` `[seq, inter]`.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor, norm: NormRef) -> Result<Tensor> {
        if let Some(s) = &self.stacked {
            if fusable(x, &s.weight) {
                let y = Tensor::empty(x.device(), &[x.dim(0), self.gate.out_features()], DType::F32)?;
                let mut xn = None;
                let folded = fold_or_apply(rec, x, &s.weight, norm, &mut xn)?;
                let f = Fusion { norm: folded, act: Activation::SwiGlu, ..Default::default() };
                matvec::matvec_fused(rec, xn.as_ref().unwrap_or(x), &s.weight, &f, &y)?;
                return Ok(y);
            }
        }
        let xn = norm.forward(rec, x)?;
        let gate = self.gate.forward(rec, &xn)?;
        let up = self.up.forward(rec, &xn)?;
        nn::swiglu(rec, &gate, &up)
    }
}

/// `act(norm(x) · Wᵀ + b)` (GPT-2's c_fc with GELU) in one dispatch when it fits.
pub fn normed_linear(rec: &mut Recorder, x: &Tensor, norm: NormRef, l: &Linear, act: Activation) -> Result<Tensor> {
    if fusable(x, &l.weight) {
        let y = Tensor::empty(x.device(), &[x.dim(0), l.out_features()], DType::F32)?;
        let mut xn = None;
        let folded = fold_or_apply(rec, x, &l.weight, norm, &mut xn)?;
        let f = Fusion { norm: folded, bias: l.bias.as_ref(), act, ..Default::default() };
        matvec::matvec_fused(rec, xn.as_ref().unwrap_or(x), &l.weight, &f, &y)?;
        return Ok(y);
    }
    let xn = norm.forward(rec, x)?;
    let y = l.forward(rec, &xn)?;
    match act {
        Activation::None => Ok(y),
        Activation::GeluTanh => nn::gelu_tanh(rec, &y),
        Activation::SwiGlu => unreachable!("SwiGLU goes through GateUp"),
    }
}

/// `residual + x · Wᵀ + b` (o_proj, down_proj, GPT-2's c_proj) in one dispatch when it fits.
pub fn linear_residual(rec: &mut Recorder, x: &Tensor, l: &Linear, residual: &Tensor) -> Result<Tensor> {
    if fusable(x, &l.weight) {
        let y = Tensor::empty(x.device(), residual.shape(), DType::F32)?;
        let f = Fusion { bias: l.bias.as_ref(), residual: Some(residual), ..Default::default() };
        matvec::matvec_fused(rec, x, &l.weight, &f, &y)?;
        return Ok(y);
    }
    let y = l.forward(rec, x)?;
    nn::add(rec, residual, &y)
}

/// Logits `lm_head(norm(x))` `[seq, vocab]`, the final norm folded into each head block's
/// matvec when it fits.
pub fn normed_lm_head(rec: &mut Recorder, head: &LmHead, x: &Tensor, norm: NormRef) -> Result<Tensor> {
    if head.blocks.iter().all(|(_, l)| fusable(x, &l.weight)) {
        return head.forward_with(rec, x.dim(0), |rec, block| normed_linear(rec, x, norm, block, Activation::None));
    }
    let xn = norm.forward(rec, x)?;
    head.forward(rec, &xn)
}
