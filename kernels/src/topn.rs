//! Launcher for `wgsl/topn.wgsl`: the `top` largest entries of each row of logits with
//! their log-probabilities (log-probs' alternatives, beam-search candidates).

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_shape};
use crate::shaders::TOPN;

/// Elements per workgroup in `topn_partial` (`CHUNK` in the WGSL).
const CHUNK: usize = 1024;
/// The most entries one call may ask for per row.
pub const MAX_TOP: usize = 32;
/// Most rows per call (the grid's y dimension).
const MAX_ROWS: usize = 65535;

/// Mirrors `Params` in topn.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    n_chunks: u32,
    rows: u32,
    top: u32,
}

/// For each row of `logits` f32 `[rows, n]`: `ids` u32 `[rows, top]` — the `top` largest
/// entries, largest first, ties to the smaller id (torch.topk on CPU) — and `logprobs`
/// f32 `[rows, top]` = `logits[id] − logsumexp(row)`. NaN and −inf rank lowest.
pub fn top_logprobs(rec: &mut Recorder, logits: &Tensor, ids: &Tensor, logprobs: &Tensor) -> Result<()> {
    let op = "top_logprobs";
    expect_same_device(op, &[logits, ids, logprobs])?;
    expect_dtype(op, "logits", logits, DType::F32)?;
    expect_dtype(op, "ids", ids, DType::U32)?;
    expect_dtype(op, "logprobs", logprobs, DType::F32)?;
    if logits.rank() != 2 || ids.rank() != 2 {
        return Err(TensorError::Shape {
            op: op.into(),
            detail: format!("logits and ids must be 2-D, got {:?} and {:?}", logits.shape(), ids.shape()),
        });
    }
    let (rows, n, top) = (logits.dim(0), logits.dim(1), ids.dim(1));
    expect_shape(op, "ids", ids, &[rows, top])?;
    expect_shape(op, "logprobs", logprobs, &[rows, top])?;
    expect_no_alias(op, ids, &[logits])?;
    expect_no_alias(op, logprobs, &[logits])?;
    if top == 0 || top > MAX_TOP || top > n || rows == 0 || rows > MAX_ROWS {
        return Err(TensorError::Shape {
            op: op.into(),
            detail: format!("top must be in 1..={} and at most the row length {n}, rows in 1..={MAX_ROWS}; got top = {top}, rows = {rows}", MAX_TOP),
        });
    }
    let n_chunks = n.div_ceil(CHUNK);
    let dev = logits.device();
    let cand = Tensor::empty(dev, &[rows, n_chunks, top, 2], DType::U32)?;
    let stats = Tensor::empty(dev, &[rows, n_chunks, 2], DType::F32)?;
    let params = Params { n: n as u32, n_chunks: n_chunks as u32, rows: rows as u32, top: top as u32 };
    let pipeline = dev.pipeline("topn", TOPN, "topn_partial", &[])?;
    rec.dispatch(Dispatch {
        kernel: "topn::topn_partial",
        pipeline: &pipeline,
        inputs: &[logits],
        outputs: &[&cand, &stats],
        params: bytemuck::bytes_of(&params),
        workgroups: [n_chunks as u32, rows as u32, 1],
        flops: (logits.numel() * (top + 4)) as u64,
        bytes: logits.byte_len() + cand.byte_len() + stats.byte_len(),
    })?;
    let pipeline = dev.pipeline("topn", TOPN, "topn_finish", &[])?;
    rec.dispatch(Dispatch {
        kernel: "topn::topn_finish",
        pipeline: &pipeline,
        inputs: &[&cand, &stats],
        outputs: &[ids, logprobs],
        params: bytemuck::bytes_of(&params),
        workgroups: [rows as u32, 1, 1],
        flops: (cand.numel() * top) as u64,
        bytes: cand.byte_len() + stats.byte_len() + ids.byte_len() + logprobs.byte_len(),
    })
}
