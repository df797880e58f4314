// embedding.wgsl — stub, to be written.
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn stub() { out[0] = load_w(0u); }
