// attention_subgroup.wgsl — the `attend` entry point of attention.wgsl (appended to this
// file) for adapters with subgroups (wgpu's SUBGROUP feature): the lanes of a key slot add
// their partial scores up with subgroupShuffleXor butterflies, without workgroup memory
// or barriers. The launcher picks this only when `lanes` divides every subgroup the
// adapter may use (lanes <= subgroup_min_size; both are powers of two).
//
// Virtual invocation vt = subgroup_id * subgroup_size + subgroup_invocation_id, so the
// `lanes` lanes of a key slot (an aligned block of vt) always share one subgroup.
// torch: part.view(key_slots, lanes, heads).sum(dim=1)

fn lanes_sum(part: array<f32, MAX_G>, vt: u32, kslot: u32, lane: u32, L: u32, ng: u32) -> array<f32, MAX_G> {
    var a = vec4<f32>(part[0], part[1], part[2], part[3]);
    var b = vec4<f32>(part[4], part[5], part[6], part[7]);
    for (var mask = 1u; mask < min(L, 64u); mask <<= 1u) { // L ≤ 64 (the launcher); min keeps it finite
        a += subgroupShuffleXor(a, mask);
        b += subgroupShuffleXor(b, mask);
    }
    return array<f32, MAX_G>(a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w);
}

@compute @workgroup_size(WG)
fn attend(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
) {
    attend_body(wid, sg_id * sg_size + sg_lane);
}
