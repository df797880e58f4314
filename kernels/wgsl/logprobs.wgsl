// logprobs.wgsl — one workgroup scores one row of logits x [rows, n] against its target id.
//
// Bindings (in order): x (f32 [rows, n]), targets (u32 [rows]), out (f32 [rows, 4]), params.
//   token_logprobs  with t = targets[r], L = logsumexp_j x[r, j]:
//     out[r, 0] = x[r, t] - L                      log-prob of the target
//                 torch: F.log_softmax(x, -1).gather(-1, t)
//     out[r, 1] = -Σ_j p_j ln p_j, p = softmax(x)  entropy in nats
//                 torch: -(F.softmax(x, -1) * F.log_softmax(x, -1)).nansum(-1)
//     out[r, 2] = 1 + #{j : x[r, j] > x[r, t]}     rank of the target (ties share the best rank)
//     out[r, 3] = smallest j with x[r, j] == max   argmax id (as f32; exact below 2^24)
//
// Masking: -inf entries have probability 0 and never enter the arithmetic; NaN entries
// count as -inf. A masked target gets log-prob -inf. A row that is entirely masked gives
// log-prob -inf, entropy 0, rank 1 + 0 = 1 and argmax 0. A target id >= n gives NaN
// log-prob and rank (the entropy and argmax are still written). +inf inputs are unsupported.
//
// Each invocation walks a strided slice of the row with an online ("streaming")
// log-sum-exp: it keeps its running max m, s = Σ e^(x - m) and u = Σ e^(x - m) (x - m),
// rescaling both when m grows, plus a count of entries above the target and its best
// (value, index) pair. A workgroup tree reduction merges the states. Then
//   ln S = ln s,  L = m + ln s,  entropy = ln s - u / s   (= L - Σ p x, without cancellation
// between two large terms). One pass over the row.
// Rows beyond one grid dimension's workgroup limit fold into a 2-D grid:
// row = workgroup_id.x + workgroup_id.y * row_stride.

struct Params {
    rows: u32,
    n: u32,
    row_stride: u32,
    _pad: u32,
}

const WG: u32 = 256u;
// The running max starts at LOWEST (order.wgsl), never -inf, so the rescaling factors
// stay finite.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> red_u: array<f32, WG>;
var<workgroup> red_above: array<u32, WG>;
var<workgroup> red_key: array<u32, WG>;
var<workgroup> red_idx: array<u32, WG>;

fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// -inf or NaN: no probability mass.
fn is_masked(v: f32) -> bool {
    return bitcast<u32>(v) == NEG_INF_BITS || is_nan(v);
}

// Online log-sum-exp state: max m, s = Σ e^(x - m), u = Σ e^(x - m) (x - m).
struct Lse {
    m: f32,
    s: f32,
    u: f32,
}

// The state with its reference point moved from a.m up to m (m >= a.m):
// e^(x - m) = e^(x - a.m) e^d and (x - m) = (x - a.m) + d with d = a.m - m <= 0.
// d is finite because both maxima are finite (LOWEST at worst).
fn rescale(a: Lse, m: f32) -> Lse {
    let d = a.m - m;
    let f = exp(d);
    return Lse(m, a.s * f, f * (a.u + d * a.s));
}

fn merge(a: Lse, b: Lse) -> Lse {
    let m = max(a.m, b.m);
    let ra = rescale(a, m);
    let rb = rescale(b, m);
    return Lse(m, ra.s + rb.s, ra.u + rb.u);
}

@compute @workgroup_size(WG)
fn token_logprobs(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.x + wg.y * p.row_stride;
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.n;
    let t = targets[row];
    let valid = t < p.n;
    // The target's logit, NaN counted as -inf (an invalid target reads x[base]).
    var xt = x[base + select(0u, t, valid)];
    if (is_nan(xt)) { xt = neg_inf(); }

    var st = Lse(LOWEST, 0.0, 0.0);
    var above = 0u;
    var best_key = 0u;
    var best_idx = NONE;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[base + i];
        // The argmax skips NaN only: -inf is the argmax of a row with nothing larger.
        // Increasing i: on equal keys the first one stays.
        let k = order_key(v);
        if (!is_nan(v) && k > best_key) {
            best_key = k;
            best_idx = i;
        }
        if (is_masked(v)) { continue; }
        if (v > xt) { above += 1u; }
        if (v > st.m) { st = rescale(st, v); }
        let e = exp(v - st.m);
        st.s += e;
        st.u += e * (v - st.m);
    }

    red_m[lid] = st.m;
    red_s[lid] = st.s;
    red_u[lid] = st.u;
    red_above[lid] = above;
    red_key[lid] = best_key;
    red_idx[lid] = best_idx;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let o = lid + s;
            let merged = merge(Lse(red_m[lid], red_s[lid], red_u[lid]), Lse(red_m[o], red_s[o], red_u[o]));
            red_m[lid] = merged.m;
            red_s[lid] = merged.s;
            red_u[lid] = merged.u;
            red_above[lid] += red_above[o];
            let ko = red_key[o];
            let io = red_idx[o];
            if (ko > red_key[lid] || (ko == red_key[lid] && io < red_idx[lid])) {
                red_key[lid] = ko;
                red_idx[lid] = io;
            }
        }
        workgroupBarrier();
    }

    if (lid == 0u) {
        let m = red_m[0];
        let s = red_s[0];
        var logprob = neg_inf();
        var entropy = 0.0;
        // s >= 1 whenever the row has an unmasked entry (its max contributes e^0).
        if (s > 0.0) {
            let log_s = log(s);
            entropy = max(log_s - red_u[0] / s, 0.0);
            if (!is_masked(xt)) {
                logprob = (xt - m) - log_s;
            }
        }
        let idx = red_idx[0];
        let o = row * 4u;
        out[o] = select(nan(), logprob, valid);
        out[o + 1u] = entropy;
        out[o + 2u] = select(nan(), f32(1u + red_above[0]), valid);
        out[o + 3u] = f32(select(idx, 0u, idx == NONE));
    }
}
