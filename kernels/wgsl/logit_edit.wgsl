// logit_edit.wgsl — one workgroup edits chosen entries of one row of x [rows, n] in place
// (a hook on the logits: "set the logit of id to the row max + 10").
//
// Bindings (in order): edits (u32 [n_edits, 4]: id, mode, value bits, unused), x (f32
// [rows, n], read and written), params.
//   set_logits  for each edit e, in order:
//                 goal = value_e + (mode_e & 1 ? max_j x[r, j] : 0) + (mode_e & 4 ? x[r, id_e] : 0)
//                 x[r, id_e] = mode_e & 2 ? max(x[r, id_e], goal) : goal
//   torch: m = x.max(-1).values; x[:, id] = m + value  (relative to the max; `x[:, id] =
//          value` absolute; `x[:, id] += value` added; `.clamp(min=goal)` only raising)
// The row max is taken once, before any edit of the row (NaNs ignored; a row with no
// non-NaN entry has max -3.4e38), so every relative edit of a row sees the same max. The
// launcher checks every id < n on the host. order_key, key_value, is_nan, reduce_best,
// NONE and LOWEST come from order.wgsl. Rows beyond one grid dimension's workgroup limit
// fold into a 2-D grid: row = workgroup_id.x + workgroup_id.y * row_stride.

struct Params {
    rows: u32,
    n: u32,
    n_edits: u32,
    row_stride: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> edits: array<u32>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn set_logits(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.x + wg.y * p.row_stride;
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.n;

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
    let best = reduce_best(lid, best_key, best_idx);
    let row_max = select(key_value(best.x), LOWEST, best.y == NONE);

    // Every read of the row happened before reduce_best's barriers; one invocation writes.
    if (lid == 0u) {
        for (var e = 0u; e < p.n_edits; e++) {
            let id = edits[4u * e];
            let mode = edits[4u * e + 1u];
            let value = bitcast<f32>(edits[4u * e + 2u]);
            let at = base + id;
            let goal = value + select(0.0, row_max, (mode & 1u) != 0u) + select(0.0, x[at], (mode & 4u) != 0u);
            x[at] = select(goal, max(x[at], goal), (mode & 2u) != 0u);
        }
    }
}
