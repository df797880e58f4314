//! Launchers for `wgsl/sample.wgsl`: one sampling step for each row of logits `[rows, n]`
//! (penalties and bias → temperature → top-k → top-p → min-p → seeded Gumbel-max draw),
//! writing one token id per row. [`SampleBuffers`] holds everything a batch of rows keeps
//! between steps on the GPU; [`step`] records the kernels of one step.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Device, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_same_device, expect_shape};
use crate::shaders::SAMPLE;

/// Elements of a row one workgroup handles in the chunked kernels (`CHUNK` in the WGSL).
pub const CHUNK: usize = 1024;
/// Bins per threshold-search pass: each pass narrows the window 16× (4 bits of the key).
const BINS: usize = 16;
/// Window shifts of the 8 search passes: 32 key bits, 4 per pass.
const SEARCH_SHIFTS: [u32; 8] = [28, 24, 20, 16, 12, 8, 4, 0];
/// Bit of a history word that marks an id seen in the prompt (the rest count outputs).
pub const HISTORY_PROMPT_BIT: u32 = 0x8000_0000;
/// Most rows a batch may have (the grid's y dimension).
pub const MAX_ROWS: usize = 65535;

/// One row's sampling parameters; mirrors `Row` in sample.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct SampleRow {
    /// 0 is greedy.
    pub temperature: f32,
    /// 0 is off.
    pub top_k: u32,
    /// 1 is off.
    pub top_p: f32,
    /// 0 is off.
    pub min_p: f32,
    /// 1 is off.
    pub repetition_penalty: f32,
    /// Subtracted `count` times from an id's logit, count = times it was generated; 0 is off.
    pub frequency_penalty: f32,
    /// Subtracted once from the logit of every id generated at least once; 0 is off.
    pub presence_penalty: f32,
    /// Low 32 bits of the row's RNG seed.
    pub seed_lo: u32,
    /// High 32 bits of the row's RNG seed.
    pub seed_hi: u32,
    /// The RNG counter: the step being sampled (draw_finish advances it).
    pub step: u32,
    /// 1 when the row's bias row is to be added.
    pub has_bias: u32,
    /// Padding that keeps the struct 12 words long, like `Row` in sample.wgsl.
    pub _pad: u32,
}

impl SampleRow {
    /// Greedy decoding: temperature 0, every filter and penalty off, seed 0.
    pub fn greedy() -> SampleRow {
        SampleRow { top_p: 1.0, repetition_penalty: 1.0, ..Zeroable::zeroed() }
    }
    /// These parameters with the RNG seed `seed`.
    pub fn with_seed(mut self, seed: u64) -> SampleRow {
        self.seed_lo = seed as u32;
        self.seed_hi = (seed >> 32) as u32;
        self
    }
    fn is_sampling(&self) -> bool {
        self.temperature > 0.0
    }
}

/// One row's state between the kernels of a step; mirrors `State` in sample.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SampleState {
    /// Max of the processed logits.
    pub max: f32,
    /// Σ exp(x − max) over the processed logits.
    pub total: f32,
    /// Threshold search window start (an order key).
    pub lo: u32,
    /// Ids whose order key is ≥ thr are kept (top-k and top-p together).
    pub thr: u32,
    /// Σ exp(x − max) over what top-k kept.
    pub kept_mass: f32,
    /// Max of the raw logits (for the chosen token's log-prob).
    pub raw_max: f32,
    /// Σ exp(x − raw_max) over the raw logits.
    pub raw_total: f32,
    /// The chosen id.
    pub token: u32,
}

/// What the kernels of a step need to run, decided once per batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepPlan {
    /// Some row samples with top-k.
    pub top_k: bool,
    /// Some row samples with top-p.
    pub top_p: bool,
    /// Some row samples (temperature > 0): the max and total are needed.
    pub sampling: bool,
    /// Write each row's log-prob of its token under the raw logits to `logprob`.
    pub logprob: bool,
}

impl StepPlan {
    /// The plan for a batch of `rows`; `logprob` asks for each chosen token's log-prob.
    pub fn for_rows(rows: &[SampleRow], logprob: bool) -> StepPlan {
        StepPlan {
            top_k: rows.iter().any(|r| r.is_sampling() && r.top_k > 0),
            top_p: rows.iter().any(|r| r.is_sampling() && r.top_p < 1.0),
            sampling: rows.iter().any(SampleRow::is_sampling),
            logprob,
        }
    }
}

/// The GPU buffers of a batch of `rows` rows over a vocabulary of `n`, allocated once
/// and reused every step: nothing is allocated or uploaded per step.
pub struct SampleBuffers {
    /// Rows in the batch.
    pub rows: usize,
    /// Vocabulary size (elements per row of logits).
    pub n: usize,
    /// u32 `[rows, 12]`: the [`SampleRow`]s.
    pub params: Tensor,
    /// u32 `[rows, 8]`: the [`SampleState`]s.
    pub state: Tensor,
    /// u32 `[rows, n]`: per id, [`HISTORY_PROMPT_BIT`] if in the prompt, plus how many
    /// times it was generated.
    pub history: Tensor,
    /// f32 `[rows, n]` logit bias (−inf bans), or `[1]` when no row has one.
    pub bias: Tensor,
    /// f32 `[rows, n]`: the processed logits of the current step.
    pub processed: Tensor,
    /// u32 `[rows, n_chunks, 32]`: per-chunk partial results.
    pub partials: Tensor,
    /// u32 `[rows]`: the chosen ids (may be fed straight back as the next input ids).
    pub token: Tensor,
    /// f32 `[rows]`: log-prob of each chosen id under the raw logits.
    pub logprob: Tensor,
    /// u32 `[rows]`: 0, 1, 2, ... — the map [`step`] uses (row r samples with its own row).
    pub identity: Tensor,
}

impl SampleBuffers {
    /// `history` and `bias`, when given, are `[rows, n]` row-major.
    pub fn new(
        dev: &Device,
        rows: &[SampleRow],
        n: usize,
        history: Option<&[u32]>,
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        let op = "sample";
        let r = rows.len();
        if r == 0 || r > MAX_ROWS || n == 0 {
            return Err(TensorError::Shape {
                op: op.into(),
                detail: format!(
                    "a batch needs 1..={MAX_ROWS} rows and a vocabulary of at least 1, got {r} rows, n = {n}"
                ),
            });
        }
        let n_chunks = n.div_ceil(CHUNK);
        let check_len = |name: &str, len: usize| {
            if len != r * n {
                return Err(TensorError::Shape {
                    op: op.into(),
                    detail: format!("{name} has {len} entries, expected rows * n = {}", r * n),
                });
            }
            Ok(())
        };
        let history = match history {
            Some(h) => {
                check_len("history", h.len())?;
                Tensor::from_slice(dev, h, &[r, n])?
            }
            None => Tensor::zeros(dev, &[r, n], DType::U32)?,
        };
        let bias = match bias {
            Some(b) => {
                check_len("bias", b.len())?;
                Tensor::from_slice(dev, b, &[r, n])?
            }
            None => Tensor::zeros(dev, &[1], DType::F32)?,
        };
        let params: &[u32] = bytemuck::cast_slice(rows);
        Ok(SampleBuffers {
            rows: r,
            n,
            params: Tensor::from_slice(dev, params, &[r, 12])?,
            state: Tensor::zeros(dev, &[r, 8], DType::U32)?,
            history,
            bias,
            processed: Tensor::empty(dev, &[r, n], DType::F32)?,
            partials: Tensor::empty(dev, &[r, n_chunks, 2 * BINS], DType::U32)?,
            token: Tensor::zeros(dev, &[r], DType::U32)?,
            logprob: Tensor::zeros(dev, &[r], DType::F32)?,
            identity: Tensor::from_slice(dev, &(0..r as u32).collect::<Vec<u32>>(), &[r])?,
        })
    }

    fn n_chunks(&self) -> usize {
        self.n.div_ceil(CHUNK)
    }

    fn params_for(&self, rows: usize, shift: u32, mode: u32) -> Params {
        Params { n: self.n as u32, n_chunks: self.n_chunks() as u32, rows: rows as u32, shift, mode, _pad: [0; 3] }
    }

    /// Give row `row` (a serving slot) a new sequence: its parameters (RNG step as in
    /// `params`), its history row (`None`: nothing seen) and its bias row (`None`: none;
    /// needs buffers made with a bias). Written in queue order, before the next submit.
    pub fn set_row(&self, row: usize, params: &SampleRow, history: Option<&[u32]>, bias: Option<&[f32]>) -> Result<()> {
        let op = "sample::set_row";
        if row >= self.rows {
            return Err(TensorError::param("row", format!("{op}: row {row} of {} rows", self.rows)));
        }
        let n = self.n;
        let wrong = |name: &str, len: usize| {
            TensorError::Shape { op: op.into(), detail: format!("{name} row has {len} entries, expected n = {n}") }
        };
        self.params.write_at(row * 12, bytemuck::cast_slice::<SampleRow, u32>(std::slice::from_ref(params)))?;
        match history {
            Some(h) if h.len() != n => return Err(wrong("history", h.len())),
            Some(h) => self.history.write_at(row * n, h)?,
            None => self.history.write_at(row * n, &vec![0u32; n])?,
        }
        let full_bias = self.bias.numel() == self.rows * n;
        match (bias, full_bias) {
            (Some(b), _) if b.len() != n => return Err(wrong("bias", b.len())),
            (Some(b), true) => self.bias.write_at(row * n, b)?,
            (Some(_), false) => {
                return Err(TensorError::param("bias", format!("{op}: these buffers were made without a bias")))
            }
            (None, true) => self.bias.write_at(row * n, &vec![0f32; n])?,
            (None, false) => {}
        }
        Ok(())
    }

    /// The rows' parameters as the GPU has them now (steps advanced).
    pub fn read_rows(&self) -> Result<Vec<SampleRow>> {
        Ok(bytemuck::cast_slice(&self.params.to_vec_u32()?).to_vec())
    }

    /// The rows' state after the last step (for tests and diagnostics).
    pub fn read_state(&self) -> Result<Vec<SampleState>> {
        Ok(bytemuck::cast_slice(&self.state.to_vec_u32()?).to_vec())
    }
}

/// Mirrors `Params` in sample.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    n_chunks: u32,
    rows: u32,
    shift: u32,
    mode: u32,
    _pad: [u32; 3],
}

/// Record one sampling step: `logits` f32 `[rows, n]` → `b.token` (and `b.logprob` when
/// `plan.logprob`). Updates the history (the chosen ids count as generated) and advances
/// each row's RNG step.
pub fn step(rec: &mut Recorder, logits: &Tensor, b: &SampleBuffers, plan: StepPlan) -> Result<()> {
    step_rows(rec, logits, b, plan, &b.identity, b.rows)
}

/// [`step`] for a batch of `B` rows of logits `[B, n]`, row r sampled as the sequence in
/// row `slots[r]` of `b` (distinct; its parameters, RNG step, history and bias): one set
/// of dispatches for the batch. `map` is u32 with at least B elements holding `slots`
/// (written by the caller, like the KV cache's rows table). Token r and logprob r are
/// the batch row's.
pub fn step_slots(
    rec: &mut Recorder,
    logits: &Tensor,
    b: &SampleBuffers,
    plan: StepPlan,
    map: &Tensor,
    slots: &[u32],
) -> Result<()> {
    let op = "sample";
    let rows = logits.dim(0);
    expect_dtype(op, "map", map, DType::U32)?;
    let mut seen = vec![false; b.rows];
    if slots.len() != rows || map.numel() < rows {
        return Err(TensorError::shape(op, format!("{} slots and a map of {} for {rows} rows of logits", slots.len(), map.numel())));
    }
    for &s in slots {
        let s = s as usize;
        if s >= b.rows || std::mem::replace(&mut seen[s], true) {
            return Err(TensorError::param("slots", format!("{op}: slot {s} is out of range (< {}) or repeated", b.rows)));
        }
    }
    step_rows(rec, logits, b, plan, map, rows)
}

fn step_rows(rec: &mut Recorder, logits: &Tensor, b: &SampleBuffers, plan: StepPlan, map: &Tensor, rows: usize) -> Result<()> {
    let op = "sample";
    expect_same_device(op, &[logits, &b.token, map])?;
    expect_dtype(op, "logits", logits, DType::F32)?;
    if rows == 0 || rows > b.rows {
        return Err(TensorError::shape(op, format!("{rows} rows of logits for buffers of {} rows", b.rows)));
    }
    expect_shape(op, "logits", logits, &[rows, b.n])?;
    let grid = [b.n_chunks() as u32, rows as u32, 1];
    let dev = logits.device().clone();
    let pipe = |entry: &str| dev.pipeline("sample", SAMPLE, entry, &[]);
    let elems = (rows * b.n) as u64;

    let pipeline = pipe("process")?;
    rec.dispatch(Dispatch {
        kernel: "sample::process",
        pipeline: &pipeline,
        inputs: &[logits, &b.history, &b.bias, &b.params, map],
        outputs: &[&b.processed],
        params: bytemuck::bytes_of(&b.params_for(rows, 0, 0)),
        workgroups: grid,
        flops: 8 * elems,
        bytes: 12 * elems,
    })?;

    if plan.sampling {
        stats(rec, b, rows, &b.processed, 0)?;
    }
    for (on, mode) in [(plan.top_k, 0u32), (plan.top_p, 1u32)] {
        if !on {
            continue;
        }
        for shift in SEARCH_SHIFTS {
            let params = b.params_for(rows, shift, mode);
            let pipeline = pipe("search_partial")?;
            rec.dispatch(Dispatch {
                kernel: "sample::search_partial",
                pipeline: &pipeline,
                inputs: &[&b.processed, &b.state],
                outputs: &[&b.partials],
                params: bytemuck::bytes_of(&params),
                workgroups: grid,
                flops: 4 * elems,
                bytes: 4 * elems,
            })?;
            let pipeline = pipe("search_decide")?;
            rec.dispatch(Dispatch {
                kernel: "sample::search_decide",
                pipeline: &pipeline,
                inputs: &[&b.partials, &b.params, map],
                outputs: &[&b.state],
                params: bytemuck::bytes_of(&params),
                workgroups: [rows as u32, 1, 1],
                flops: (rows * b.n_chunks() * 2 * BINS) as u64,
                bytes: b.partials.byte_len(),
            })?;
        }
    }
    if plan.logprob {
        stats(rec, b, rows, logits, 1)?;
    }

    let pipeline = pipe("draw_partial")?;
    rec.dispatch(Dispatch {
        kernel: "sample::draw_partial",
        pipeline: &pipeline,
        inputs: &[&b.processed, &b.state, &b.params, map],
        outputs: &[&b.partials],
        params: bytemuck::bytes_of(&b.params_for(rows, 0, 0)),
        workgroups: grid,
        flops: 40 * elems,
        bytes: 4 * elems,
    })?;
    let pipeline = pipe("draw_finish")?;
    rec.dispatch(Dispatch {
        kernel: "sample::draw_finish",
        pipeline: &pipeline,
        inputs: &[&b.partials, logits, map],
        outputs: &[&b.params, &b.state, &b.history, &b.token, &b.logprob],
        params: bytemuck::bytes_of(&b.params_for(rows, 0, plan.logprob as u32)),
        workgroups: [(rows as u32).div_ceil(64), 1, 1],
        flops: (rows * b.n_chunks()) as u64,
        bytes: (rows * b.n_chunks() * 8) as u64,
    })
}

/// Max and Σ exp(x − max) of each row of `x` into the state: slot 0 for the processed
/// logits (also resets the threshold search), slot 1 for the raw logits.
fn stats(rec: &mut Recorder, b: &SampleBuffers, rows: usize, x: &Tensor, slot: u32) -> Result<()> {
    let params = b.params_for(rows, 0, slot);
    let elems = (rows * b.n) as u64;
    let pipeline = rec.device().pipeline("sample", SAMPLE, "stats_partial", &[])?;
    rec.dispatch(Dispatch {
        kernel: "sample::stats_partial",
        pipeline: &pipeline,
        inputs: &[x],
        outputs: &[&b.partials],
        params: bytemuck::bytes_of(&params),
        workgroups: [b.n_chunks() as u32, rows as u32, 1],
        flops: 4 * elems,
        bytes: 4 * elems,
    })?;
    let pipeline = rec.device().pipeline("sample", SAMPLE, "stats_finish", &[])?;
    rec.dispatch(Dispatch {
        kernel: "sample::stats_finish",
        pipeline: &pipeline,
        inputs: &[&b.partials],
        outputs: &[&b.state],
        params: bytemuck::bytes_of(&params),
        workgroups: [(rows as u32).div_ceil(64), 1, 1],
        flops: (rows * b.n_chunks() * 4) as u64,
        bytes: (rows * b.n_chunks() * 8) as u64,
    })
}
