//! Launchers for `wgsl/embedding.wgsl` — gather rows of an embedding table (f32, f16 or
//! bf16) into f32, plus `check_ids`, the host-side check the kernel cannot do — and for
//! `wgsl/position_embedding.wgsl` ([`add_positions`], GPT-2's learned positions).

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{
    expect_dtype, expect_float_weight, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d,
};
use crate::kv_cache::Rows;
use crate::shaders::{EMBEDDING, POSITION_EMBEDDING};

const WG: u32 = 256;

/// Mirrors `Params` in embedding.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    d: u32,
    vocab: u32,
    row_stride: u32,
    id_base: u32,
    skip_outside: u32,
    _pad0: u32,
    _pad1: u32,
}

/// `out[.., :] = table[ids[..], :]`: ids u32 of any shape, table `[vocab, d]` (f32, f16 or
/// bf16), out f32 of shape `ids.shape + [d]`.
///
/// An id ≥ vocab gives a row of zeros (a kernel cannot fail); call [`check_ids`] on the
/// host ids to turn that into an error.
pub fn embedding(rec: &mut Recorder, ids: &Tensor, table: &Tensor, out: &Tensor) -> Result<()> {
    gather(rec, ids, table, 0, false, out)
}

/// [`embedding`] from one row block of a vocabulary split into several tables (each
/// within the binding limit): `block` holds ids `first_id .. first_id + rows`; output rows
/// of other ids are left as they are. Launch once per block to gather from all of them.
pub fn embedding_block(rec: &mut Recorder, ids: &Tensor, block: &Tensor, first_id: usize, out: &Tensor) -> Result<()> {
    gather(rec, ids, block, first_id, true, out)
}

fn gather(
    rec: &mut Recorder,
    ids: &Tensor,
    table: &Tensor,
    first_id: usize,
    skip_outside: bool,
    out: &Tensor,
) -> Result<()> {
    let op = "embedding";
    let id_base =
        u32::try_from(first_id).map_err(|_| TensorError::param("first_id", format!("{first_id} exceeds u32")))?;
    expect_same_device(op, &[ids, table, out])?;
    expect_dtype(op, "ids", ids, DType::U32)?;
    let w_dtype = expect_float_weight(op, "table", table)?;
    expect_dtype(op, "out", out, DType::F32)?;
    let [vocab, d] = *table.shape() else {
        return Err(TensorError::shape(op, format!("table must be [vocab, d], got {:?}", table.shape())));
    };
    let mut out_shape = ids.shape().to_vec();
    out_shape.push(d);
    expect_shape(op, "out", out, &out_shape)?;
    expect_no_alias(op, out, &[ids, table])?;
    expect_u32_len(op, table.numel())?;
    let n = out.numel();
    let (workgroups, row_stride) = grid_1d(out, n, WG);
    let params = Params {
        n: expect_u32_len(op, n)?,
        d: d as u32,
        vocab: vocab as u32,
        row_stride,
        id_base,
        skip_outside: skip_outside as u32,
        _pad0: 0,
        _pad1: 0,
    };
    let pipeline = rec.device().pipeline("embedding", EMBEDDING, "embedding", &[("W_DTYPE", w_dtype as f64)])?;
    rec.dispatch(Dispatch {
        kernel: "embedding::embedding",
        pipeline: &pipeline,
        inputs: &[ids, table],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: 0,
        // The ids, the gathered rows of the table, and the output.
        bytes: ids.byte_len() + table.dtype().storage_bytes(n) + out.byte_len(),
    })
}

/// Refuse token ids outside the vocabulary (the kernel would silently give zeros).
pub fn check_ids(ids: &[u32], vocab: usize) -> Result<()> {
    match ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
        None => Ok(()),
        Some((pos, id)) => Err(TensorError::param(
            "ids",
            format!(
                "token id {id} at position {pos} is out of range for a vocabulary of {vocab} (ids must be < {vocab})"
            ),
        )),
    }
}

/// Mirrors `Params` in position_embedding.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PositionParams {
    n: u32,
    d: u32,
    start: u32,
    row_stride: u32,
}

/// `h[r, :] += table[pos_r, :]` in place for h f32 `[n_rows, d]` and table `[n_positions, d]`
/// (f32, f16 or bf16), where `rows` gives each row's position (the same [`Rows`] the KV
/// cache kernels take, so a batched step reads them from the GPU and uploads nothing).
/// torch: `h = h + wpe(positions)`. Errors when a position is past the table.
pub fn add_positions(rec: &mut Recorder, table: &Tensor, rows: Rows, h: &Tensor) -> Result<()> {
    let op = "add_positions";
    expect_same_device(op, &[table, h])?;
    let w_dtype = expect_float_weight(op, "table", table)?;
    expect_dtype(op, "h", h, DType::F32)?;
    let [n_positions, d] = *table.shape() else {
        return Err(TensorError::shape(op, format!("table must be [n_positions, d], got {:?}", table.shape())));
    };
    let n_rows = h.dim(0);
    expect_shape(op, "h", h, &[n_rows, d])?;
    expect_no_alias(op, h, &[table])?;
    expect_u32_len(op, table.numel())?;
    let past = |pos: usize| {
        TensorError::shape(op, format!("position {pos} is past the {n_positions} positions of the table"))
    };
    let (start, per_row, rows_tensor) = match rows {
        Rows::Run { start, .. } => {
            if start.saturating_add(n_rows) > n_positions {
                return Err(past(start.saturating_add(n_rows) - 1));
            }
            (start as u32, false, table)
        }
        Rows::Table { table: rows_table, host } => {
            expect_dtype(op, "rows table", rows_table, DType::U32)?;
            if host.len() != n_rows || rows_table.numel() < 2 * n_rows {
                return Err(TensorError::shape(op, format!("{} (slot, position) pairs for {n_rows} rows", host.len())));
            }
            if let Some(e) = host.iter().find(|e| e[1] as usize >= n_positions) {
                return Err(past(e[1] as usize));
            }
            (0, true, rows_table)
        }
    };
    let n = h.numel();
    let (workgroups, row_stride) = grid_1d(h, n, WG);
    let params = PositionParams { n: expect_u32_len(op, n)?, d: d as u32, start, row_stride };
    let overrides = [("W_DTYPE", w_dtype as f64), ("PER_ROW", if per_row { 1.0 } else { 0.0 })];
    let pipeline = rec.device().pipeline("position_embedding", POSITION_EMBEDDING, "add_positions", &overrides)?;
    rec.dispatch(Dispatch {
        kernel: "embedding::add_positions",
        pipeline: &pipeline,
        inputs: &[rows_tensor, table],
        outputs: &[h],
        params: bytemuck::bytes_of(&params),
        workgroups,
        flops: n as u64,
        bytes: table.dtype().storage_bytes(n) + 2 * h.byte_len(),
    })
}
