// embedding.wgsl — one invocation copies one output element: a token's row of the table.
//
// Bindings (in order): ids (u32 [n_ids]), w (the table [vocab, d] as array<u32>, f32/f16/bf16
// by W_DTYPE, read with load_w from weights.wgsl), out (f32 [n_ids, d]), params.
//   embedding  out[t, j] = table[ids[t], j]        torch: F.embedding(ids, table).float()
// The table may be one row block of a larger vocabulary (a table too big for one
// binding): it holds ids id_base .. id_base + vocab. With `skip_outside` = 1 other ids
// leave their output row untouched (another block's launch writes it); with 0 they
// write zeros (the kernel cannot report errors, so callers check host ids first with
// `embedding::check_ids`).
// The grid is 2-D when n_ids * d exceeds one dimension's workgroup limit; `row_stride`
// is the number of invocations per grid row.

struct Params {
    n: u32,       // n_ids * d output elements
    d: u32,
    vocab: u32,   // rows in this table (block)
    row_stride: u32,
    id_base: u32, // vocabulary id of the table's first row
    skip_outside: u32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn embedding(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x + gid.y * p.row_stride;
    if (k >= p.n) { return; }
    let t = k / p.d;
    let j = k - t * p.d;
    let row = ids[t] - p.id_base; // wraps to a huge value for ids below the block
    if (row < p.vocab) {
        out[k] = load_w(row * p.d + j);
    } else if (p.skip_outside == 0u) {
        out[k] = 0.0;
    }
}
