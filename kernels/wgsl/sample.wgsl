// logprobs.wgsl — placeholder; filled by the scoring work (per-row log-prob of a target id,
// entropy and rank).
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn placeholder() { out[0] = 0.0; }
