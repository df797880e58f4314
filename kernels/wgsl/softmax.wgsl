// softmax.wgsl — one workgroup normalises one row of x [rows, n] over its last dim.
//
// Bindings (in order): x, out, params.  x, out: f32 [rows, n] (rows = product of leading dims).
//   softmax      out[r, i] = exp(x[r, i] - m) / s            torch: F.softmax(x, dim=-1)
//   log_softmax  out[r, i] = x[r, i] - m - log(s)            torch: F.log_softmax(x, dim=-1)
// where m = max_j x[r, j] and s = Σ_j exp(x[r, j] - m), both over the row's unmasked
// entries, found by two workgroup reductions (max, then sum). Subtracting m keeps
// exp() in range, so logits near ±1000 are exact; log_softmax is computed directly,
// not as log(softmax).
//
// Masking: an entry equal to -inf is masked and gives probability 0 / log-probability
// -inf. Masked entries are recognised by their bits and never enter any arithmetic,
// so a row that is entirely -inf gives all 0 (softmax) and all -inf (log_softmax),
// never NaN (torch gives NaN there). +inf or NaN inputs are unsupported (NaN out).
//
// Rows beyond one grid dimension's workgroup limit fold into a 2-D grid:
// row = workgroup_id.x + workgroup_id.y * row_stride.

struct Params {
    rows: u32,
    n: u32,
    row_stride: u32,
    _pad: u32,
}

const WG: u32 = 256u;
// Start value of the running max: the most negative finite f32.
const LOWEST: f32 = -3.40282347e38;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> red: array<f32, WG>;

// A masked logit is exactly -inf (sign bit, all-ones exponent, zero mantissa).
fn is_masked(v: f32) -> bool {
    return bitcast<u32>(v) == 0xff800000u;
}

// Max of `v` over the workgroup; every invocation gets the result.
fn reduce_max(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let result = red[0];
    workgroupBarrier(); // all have read red[0] before the next reduction reuses it
    return result;
}

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
    workgroupBarrier();
    return result;
}

struct RowStats {
    m: f32, // max over unmasked entries (LOWEST if all are masked)
    s: f32, // Σ exp(x - m) over unmasked entries, clamped to ≥ 1 (see below)
}

// Max and sum of exponentials of the row starting at x[base].
fn row_stats(base: u32, lid: u32) -> RowStats {
    var m = LOWEST;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[base + i];
        if (!is_masked(v)) {
            m = max(m, v);
        }
    }
    m = reduce_max(lid, m);
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[base + i];
        if (!is_masked(v)) {
            s += exp(v - m);
        }
    }
    // With any unmasked entry the max contributes exp(0) = 1, so s >= 1 already; the
    // clamp only matters for an all-masked row, whose entries never use s.
    s = max(reduce_sum(lid, s), 1.0);
    return RowStats(m, s);
}

fn row_of(wg: vec3<u32>) -> u32 {
    return wg.x + wg.y * p.row_stride;
}

@compute @workgroup_size(WG)
fn softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = row_of(wg);
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.n;
    let st = row_stats(base, lid);
    let inv = 1.0 / st.s;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[base + i];
        var y = 0.0;
        if (!is_masked(v)) {
            y = exp(v - st.m) * inv;
        }
        out[base + i] = y;
    }
}

@compute @workgroup_size(WG)
fn log_softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = row_of(wg);
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.n;
    let st = row_stats(base, lid);
    let log_s = log(st.s);
    for (var i = lid; i < p.n; i += WG) {
        let v = x[base + i];
        // A masked entry is -inf and stays -inf: copy it rather than compute with it.
        var y = v;
        if (!is_masked(v)) {
            y = (v - st.m) - log_s;
        }
        out[base + i] = y;
    }
}
