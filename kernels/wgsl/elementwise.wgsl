// elementwise.wgsl — one invocation computes one output element.
//
// Bindings (in order): a, [b], out, params.
//   add      out[i] = a[i] + b[i % b_len]          torch: a + b   (b broadcast over leading dims)
//   mul      out[i] = a[i] * b[i % b_len]          torch: a * b
//   silu     out[i] = a[i] * sigmoid(a[i])          torch: F.silu(a)
//   gelu_tanh out[i] = 0.5 a (1 + tanh(√(2/π)(a + 0.044715 a³)))   torch: F.gelu(a, approximate="tanh")
//   swiglu   out[i] = silu(gate[i]) * up[i]         torch: F.silu(gate) * up   (a = gate, b = up)
// The grid is 2-D when n exceeds one dimension's workgroup limit; `row_stride` is
// the number of invocations per grid row.

struct Params {
    n: u32,
    b_len: u32,
    row_stride: u32,
    _pad: u32,
}

const WG: u32 = 256u;

fn flat_index(gid: vec3<u32>, p: Params) -> u32 {
    return gid.x + gid.y * p.row_stride;
}

// ---- binary ops: a, b, out, params ----
@group(0) @binding(0) var<storage, read> bin_a: array<f32>;
@group(0) @binding(1) var<storage, read> bin_b: array<f32>;
@group(0) @binding(2) var<storage, read_write> bin_out: array<f32>;
@group(0) @binding(3) var<uniform> bin_p: Params;

@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid, bin_p);
    if (i >= bin_p.n) { return; }
    bin_out[i] = bin_a[i] + bin_b[i % bin_p.b_len];
}

@compute @workgroup_size(WG)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid, bin_p);
    if (i >= bin_p.n) { return; }
    bin_out[i] = bin_a[i] * bin_b[i % bin_p.b_len];
}

fn silu_f(x: f32) -> f32 {
    // x * sigmoid(x), written so large |x| neither overflows nor gives NaN.
    return x / (1.0 + exp(-x));
}

@compute @workgroup_size(WG)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid, bin_p);
    if (i >= bin_p.n) { return; }
    bin_out[i] = silu_f(bin_a[i]) * bin_b[i];
}

// ---- unary ops: a, out, params ----
@group(0) @binding(0) var<storage, read> un_a: array<f32>;
@group(0) @binding(1) var<storage, read_write> un_out: array<f32>;
@group(0) @binding(2) var<uniform> un_p: Params;

@compute @workgroup_size(WG)
fn silu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid, un_p);
    if (i >= un_p.n) { return; }
    un_out[i] = silu_f(un_a[i]);
}

fn tanh_stable(x: f32) -> f32 {
    // Some drivers' tanh returns NaN for |x| > ~44; clamp first (tanh(±10) == ±1 in f32).
    return tanh(clamp(x, -10.0, 10.0));
}

@compute @workgroup_size(WG)
fn gelu_tanh(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid, un_p);
    if (i >= un_p.n) { return; }
    let x = un_a[i];
    let k = 0.7978845608028654; // sqrt(2/pi)
    un_out[i] = 0.5 * x * (1.0 + tanh_stable(k * (x + 0.044715 * x * x * x)));
}
