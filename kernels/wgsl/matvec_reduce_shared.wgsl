// matvec_reduce_shared.wgsl — the workgroup sum and entry point of the block matvec
// (matvec_core.wgsl) without subgroups: a tree reduction in workgroup memory, all
// values at once (log2(WG) barriers). Used where the adapter lacks SUBGROUP (GL, some
// older GPUs) or when KILN_NO_SUBGROUPS=1 forces it.
// torch: the `.sum()` inside `x @ w.T`.

var<workgroup> partial: array<f32, NACC * SLOTS>; // WG ≤ SLOTS here
var<workgroup> tot: array<f32, NACC>;

/// tot[i] = Σ over the workgroup's invocations of (*v)[i], for i < count (≤ NACC).
/// Every invocation must call it (it holds barriers).
fn wg_sum(v: ptr<function, array<f32, NACC>>, count: u32, t: u32) {
    for (var i = 0u; i < count; i++) {
        partial[i * WG + t] = (*v)[i];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            for (var i = 0u; i < count; i++) {
                partial[i * WG + t] += partial[i * WG + t + s];
            }
        }
        workgroupBarrier();
    }
    for (var i = t; i < count; i += WG) {
        tot[i] = partial[i * WG];
    }
    workgroupBarrier();
}

@compute @workgroup_size(WG)
fn matvec(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    matvec_main(t, wid.x + wid.y * p.groups_per_row);
}
