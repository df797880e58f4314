//! Launcher for `wgsl/embedding.wgsl`: gather rows of an embedding table (f32, f16 or
//! bf16) into f32, plus `check_ids`, the host-side check the kernel cannot do.

use bytemuck::{Pod, Zeroable};
use kiln_tensor::{DType, Dispatch, Recorder, Result, Tensor, TensorError};

use crate::launch::{
    expect_dtype, expect_float_weight, expect_no_alias, expect_same_device, expect_shape, expect_u32_len, grid_1d,
};
use crate::shaders::EMBEDDING;

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
