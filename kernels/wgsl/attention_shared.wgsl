// attention_shared.wgsl — the `attend` entry point of attention.wgsl (appended to this
// file) for any adapter: the lanes of a key slot add their partial scores up through
// workgroup memory. Invocation tid is virtual invocation tid of attention.wgsl.
//
// lanes_sum: invocation vt writes its partial of head g to scratch_a[g * WG + vt]; after
// a barrier, one invocation per (key slot, head) adds the `lanes` partials of that key
// slot into scratch_b; after another barrier every lane reads its key slot's scores.
// torch: part.view(key_slots, lanes, heads).sum(dim=1)

fn lanes_sum(part: array<f32, MAX_G>, vt: u32, kslot: u32, lane: u32, L: u32, ng: u32) -> array<f32, MAX_G> {
    for (var g = 0u; g < MAX_G; g++) { scratch_a[g * WG + vt] = part[g]; }
    workgroupBarrier();
    let kp = WG / L;
    for (var i = vt; i < kp * ng; i += WG) {
        let ks = i / ng;
        let g = i % ng;
        var s = 0.0;
        for (var j = 0u; j < L; j++) { s += scratch_a[g * WG + ks * L + j]; }
        scratch_b[ks * MAX_G + g] = s;
    }
    workgroupBarrier();
    var full: array<f32, MAX_G>;
    for (var g = 0u; g < MAX_G; g++) { full[g] = select(0.0, scratch_b[kslot * MAX_G + g], g < ng); }
    // scratch_b is rewritten by the next pass only after its first barrier, which every
    // invocation reaches after reading here.
    return full;
}

@compute @workgroup_size(WG)
fn attend(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    attend_body(wid, tid);
}
