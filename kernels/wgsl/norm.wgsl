// norm.wgsl — one workgroup normalises one row of x [rows, d] over its last dim.
//
// Bindings (in order):
//   rms_norm    x, weight, out, params
//               out[r, i] = x[r, i] / sqrt(mean_j(x[r, j]²) + eps) * weight[i]
//               torch (HF Qwen2/Llama RMSNorm, in f32):
//                 x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
//   layer_norm  x, weight, bias, out, params
//               out[r, i] = (x[r, i] - μ) / sqrt(σ² + eps) * weight[i] + bias[i]
//               with μ = mean_j x[r, j], σ² = mean_j (x[r, j] - μ)² (biased, like torch)
//               torch: F.layer_norm(x, (d,), weight, bias, eps)
// All f32. The variance is a second pass over (x - μ)², not E[x²] - μ², so large
// offsets do not cancel. Rows beyond one grid dimension's workgroup limit fold into
// a 2-D grid: row = workgroup_id.x + workgroup_id.y * row_stride.

struct Params {
    rows: u32,
    d: u32,
    row_stride: u32,
    eps: f32,
}

const WG: u32 = 256u;

var<workgroup> red: array<f32, WG>;

// Sum of `v` over the workgroup; every invocation gets the result.
fn reduce_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let result = red[0];
    workgroupBarrier(); // all have read red[0] before the next reduction reuses it
    return result;
}

// ---- rms_norm: x, weight, out, params ----
@group(0) @binding(0) var<storage, read> rms_x: array<f32>;
@group(0) @binding(1) var<storage, read> rms_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> rms_out: array<f32>;
@group(0) @binding(3) var<uniform> rms_p: Params;

@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.x + wg.y * rms_p.row_stride;
    if (row >= rms_p.rows) { return; }
    let lid = lid3.x;
    let d = rms_p.d;
    let base = row * d;
    var sq = 0.0;
    for (var i = lid; i < d; i += WG) {
        let v = rms_x[base + i];
        sq += v * v;
    }
    let mean_sq = reduce_sum(lid, sq) / f32(d);
    let inv = inverseSqrt(mean_sq + rms_p.eps);
    for (var i = lid; i < d; i += WG) {
        rms_out[base + i] = rms_x[base + i] * inv * rms_w[i];
    }
}

// ---- layer_norm: x, weight, bias, out, params ----
@group(0) @binding(0) var<storage, read> ln_x: array<f32>;
@group(0) @binding(1) var<storage, read> ln_w: array<f32>;
@group(0) @binding(2) var<storage, read> ln_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> ln_out: array<f32>;
@group(0) @binding(4) var<uniform> ln_p: Params;

@compute @workgroup_size(WG)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.x + wg.y * ln_p.row_stride;
    if (row >= ln_p.rows) { return; }
    let lid = lid3.x;
    let d = ln_p.d;
    let base = row * d;
    var sum = 0.0;
    for (var i = lid; i < d; i += WG) {
        sum += ln_x[base + i];
    }
    let mean = reduce_sum(lid, sum) / f32(d);
    var sq = 0.0;
    for (var i = lid; i < d; i += WG) {
        let c = ln_x[base + i] - mean;
        sq += c * c;
    }
    let variance = reduce_sum(lid, sq) / f32(d);
    let inv = inverseSqrt(variance + ln_p.eps);
    for (var i = lid; i < d; i += WG) {
        ln_out[base + i] = (ln_x[base + i] - mean) * inv * ln_w[i] + ln_b[i];
    }
}
