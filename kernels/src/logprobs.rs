//! Launcher for `wgsl/logprobs.wgsl`: per-row log-probability of a target id, the
//! entropy of the row's softmax, the target's rank and the row's argmax (scoring).

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d};
use crate::shaders::LOGPROBS;

/// Columns of [`token_logprobs`]' output, per row.
pub const LOGPROB: usize = 0;
/// Column of the entropy of the row's softmax, in nats.
pub const ENTROPY: usize = 1;
/// Column of the target's rank: 1 + the number of larger logits (as f32).
pub const RANK: usize = 2;
/// Column of the row's argmax id (as f32).
pub const ARGMAX: usize = 3;
/// Number of output columns.
pub const COLS: usize = 4;

/// Mirrors `Params` in logprobs.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    n: u32,
    row_stride: u32,
    _pad: u32,
}

/// For each row r of `logits` f32 `[rows, vocab]` and its target id `targets[r]` (u32
/// `[rows]`), write `out[r]` (f32 `[rows, 4]`) = (log-prob of the target, entropy in
/// nats, rank of the target (1 = most likely; ties share the best rank), argmax id
/// (smallest on ties)); see the column constants [`LOGPROB`] .. [`ARGMAX`].
///
/// -inf and NaN logits count as probability 0; a target id >= vocab gives NaN log-prob
/// and rank (ids are not read back to check them: callers validate ids on the CPU).
pub fn token_logprobs(rec: &mut Recorder, logits: &Tensor, targets: &Tensor, out: &Tensor) -> Result<()> {
    let op = "token_logprobs";
    expect_same_device(op, &[logits, targets, out])?;
    expect_dtype(op, "logits", logits, DType::F32)?;
    expect_dtype(op, "targets", targets, DType::U32)?;
    expect_dtype(op, "out", out, DType::F32)?;
    let [rows, vocab] = *logits.shape() else {
        return Err(TensorError::shape(op, format!("logits must be [rows, vocab], got {:?}", logits.shape())));
    };
    if rows == 0 || vocab == 0 {
        return Err(TensorError::shape(
            op,
            format!("logits must have at least one row and one column, got {:?}", logits.shape()),
        ));
    }
    expect_shape(op, "targets", targets, &[rows])?;
    expect_shape(op, "out", out, &[rows, COLS])?;
    expect_no_alias(op, out, &[logits, targets])?;
    expect_u32_len(op, logits.numel())?;
    let (workgroups, row_stride) = grid_1d(logits, rows, 1);
    let params = Params { rows: rows as u32, n: vocab as u32, row_stride, _pad: 0 };
    let pipeline = rec.device().pipeline("logprobs", LOGPROBS, "token_logprobs", &[])?;
    rec.dispatch(Dispatch {
        kernel: "logprobs::token_logprobs",
        pipeline: &pipeline,
        inputs: &[logits, targets],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        // Compare, subtract, exp, multiply-add twice, count: about 8 per element.
        flops: 8 * logits.numel() as u64,
        bytes: logits.byte_len() + targets.byte_len() + out.byte_len(),
    })
}
