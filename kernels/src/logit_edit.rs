//! Launcher for `wgsl/logit_edit.wgsl`: set or raise chosen logits of every row, to a
//! value or relative to the row's max, in place on the GPU (hooks at `logits`).

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{expect_dtype, expect_same_device, expect_u32_len, grid_1d};
use crate::shaders::LOGIT_EDIT;

/// Mirrors `Params` in logit_edit.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    n: u32,
    n_edits: u32,
    row_stride: u32,
}

/// What a [`LogitEdit`]'s value is added to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitBase {
    /// Nothing: the value is the logit (`--set-logit ID=12.5`).
    Zero,
    /// The row's max, taken before any edit of the row (`--set-logit ID=max+10`).
    RowMax,
    /// The logit itself: a bias (`--add-logit ID=BIAS`).
    Current,
}

/// One edit of one logit in every row: the target is `base + value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogitEdit {
    /// The column (token id) to edit.
    pub id: u32,
    /// What `value` is added to.
    pub base: LogitBase,
    /// Added to the base.
    pub value: f32,
    /// Only raise: the logit becomes `max(logit, target)` instead of `target`.
    pub raise_only: bool,
}

impl LogitEdit {
    /// The edit as the kernel reads it: id, mode bits (1 row max, 2 raise only, 4 the
    /// logit itself), value bits, 0.
    fn packed(&self) -> [u32; 4] {
        let base = match self.base {
            LogitBase::Zero => 0,
            LogitBase::RowMax => 1,
            LogitBase::Current => 4,
        };
        [self.id, base | (u32::from(self.raise_only) << 1), self.value.to_bits(), 0]
    }
}

/// Apply `edits` in order to every row of `x` (f32 `[.., n]`, in place): the target is
/// `value` plus the edit's base (the row's max before any edit, NaNs ignored; or the logit
/// as it is then); the logit becomes the target, or `max(logit, target)` when
/// `raise_only`. Every id must be < n. No edits records nothing.
pub fn set_logits(rec: &mut Recorder, x: &Tensor, edits: &[LogitEdit]) -> Result<()> {
    let op = "set_logits";
    expect_dtype(op, "x", x, DType::F32)?;
    let n = x.dim(-1);
    if let Some(e) = edits.iter().find(|e| e.id as usize >= n) {
        return Err(TensorError::shape(op, format!("logit id {} is past the {n} columns of x", e.id)));
    }
    if edits.is_empty() || x.numel() == 0 {
        return Ok(());
    }
    let rows = x.numel() / n;
    expect_u32_len(op, x.numel())?;
    let n_edits = expect_u32_len(op, edits.len())?;
    let packed: Vec<u32> = edits.iter().flat_map(|e| e.packed()).collect();
    let table = Tensor::from_slice(x.device(), &packed, &[edits.len(), 4])?;
    expect_same_device(op, &[x, &table])?;
    let (workgroups, row_stride) = grid_1d(x, rows, 1);
    let params = Params { rows: rows as u32, n: n as u32, n_edits, row_stride };
    let pipeline = rec.device().pipeline("logit_edit", LOGIT_EDIT, "set_logits", &[])?;
    rec.dispatch(Dispatch {
        kernel: "logit_edit::set_logits",
        pipeline: &pipeline,
        inputs: &[&table],
        outputs: &[x],
        params: bytemuck::bytes_of(&params),
        workgroups,
        // One comparison per element for the max.
        flops: x.numel() as u64,
        bytes: x.byte_len() + table.byte_len() + (rows * edits.len() * 4) as u64,
    })
}
