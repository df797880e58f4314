// matvec_reduce_subgroup.wgsl — the workgroup sum and entry point of the block matvec
// (matvec_core.wgsl) on adapters with subgroups: each subgroup adds its lanes' values
// with subgroupAdd, then one value per subgroup goes through workgroup memory.
// Built only for devices with the SUBGROUP feature (kernels/src/matvec.rs picks it);
// matvec_reduce_shared.wgsl is the fallback with the same results up to summation order.
// torch: the `.sum()` inside `x @ w.T`.

var<private> sg_id: u32;
var<private> sg_count: u32;
var<private> sg_lane: u32;

// One slot per (value, subgroup): the launcher keeps the subgroup count ≤ SLOTS.
var<workgroup> partial: array<f32, NACC * SLOTS>;
var<workgroup> tot: array<f32, NACC>;

/// tot[i] = Σ over the workgroup's invocations of (*v)[i], for i < count (≤ NACC).
/// Every invocation must call it (it holds barriers).
fn wg_sum(v: ptr<function, array<f32, NACC>>, count: u32, t: u32) {
    for (var i = 0u; i < count; i++) {
        let s = subgroupAdd((*v)[i]);
        if (sg_lane == 0u) {
            partial[i * SLOTS + sg_id] = s;
        }
    }
    workgroupBarrier();
    for (var i = t; i < count; i += WG) {
        var s = 0.0;
        for (var j = 0u; j < sg_count; j++) {
            s += partial[i * SLOTS + j];
        }
        tot[i] = s;
    }
    workgroupBarrier();
}

@compute @workgroup_size(WG)
fn matvec(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_id) sid: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    sg_id = sid;
    sg_count = nsg;
    sg_lane = lane;
    matvec_main(t, wid.x + wid.y * p.groups_per_row);
}
