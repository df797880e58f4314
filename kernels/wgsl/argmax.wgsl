// argmax.wgsl — one workgroup finds the index of the largest entry of one row of x [rows, n].
//
// Bindings (in order): x (f32 [rows, n]), out (u32 [rows]), params.
//   argmax  out[r] = smallest i with x[r, i] == max_j x[r, j]      torch: x.argmax(dim=-1)
// Ties go to the smallest index (like torch). NaNs are ignored (torch would pick the
// NaN); -0.0 ties with +0.0; a row of -inf gives 0, and a row with nothing but NaN
// gives 0 too. order_key, is_nan, reduce_best and NONE come from order.wgsl.
//
// Each invocation scans a strided slice of the row keeping its best (key, index), then a
// workgroup tree reduction combines the pairs. Values are compared as order-preserving
// u32 keys, so the result does not depend on how a driver treats inf or -0.0.
// Rows beyond one grid dimension's workgroup limit fold into a 2-D grid:
// row = workgroup_id.x + workgroup_id.y * row_stride.

struct Params {
    rows: u32,
    n: u32,
    row_stride: u32,
    _pad: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn argmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.x + wg.y * p.row_stride;
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.n;

    // This invocation's best over i = lid, lid + WG, ... (increasing i: keep the first).
    var best_key = 0u;
    var best_idx = NONE;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[base + i];
        let k = order_key(v);
        if (!is_nan(v) && k > best_key) {
            best_key = k;
            best_idx = i;
        }
    }

    let idx = reduce_best(lid, best_key, best_idx).y;
    if (lid == 0u) {
        out[row] = select(idx, 0u, idx == NONE);
    }
}
