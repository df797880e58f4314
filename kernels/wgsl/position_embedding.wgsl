// position_embedding.wgsl — one invocation adds one element of a learned position
// embedding to the hidden state, in place (GPT-2's wpe), reading each row's position on
// the GPU so a decode step uploads nothing:
//   add_positions  h[t, j] += table[pos_t, j]
//     pos_t = start + t            (one sequence, PER_ROW = 0: `start` in the params)
//          = rows[2t + 1]          (a batch, PER_ROW = 1: the KV cache's (slot, position) table)
//   torch: h = h + wpe(positions)
//
// Bindings (in order): rows (u32 pairs; unread with PER_ROW = 0), w (the table
// [n_positions, d] through weights.wgsl's load_w), h (f32 [n_rows, d], read and written),
// params. The launcher checks every position against the table on the host. The grid is
// 2-D when n_rows · d exceeds one dimension's limit (`row_stride` invocations per grid row).

struct Params {
    n: u32,          // n_rows · d
    d: u32,
    start: u32,      // position of row 0 (PER_ROW = 0)
    row_stride: u32,
}

override PER_ROW: bool = false;
const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> rows: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn add_positions(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x + gid.y * p.row_stride;
    if (k >= p.n) { return; }
    let t = k / p.d;
    let j = k - t * p.d;
    var pos = p.start + t;
    if (PER_ROW) {
        pos = rows[2u * t + 1u];
    }
    h[k] += load_w(pos * p.d + j);
}
