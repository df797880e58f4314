// matvec.wgsl — a few activation rows times a weight matrix, for decode (one row) and
// short prefills: out = x · wᵀ.
//
//   x   [M, K] f32, M small (the launcher allows up to 16; dispatch z = row of x)
//   w   [N, K] f32/f16/bf16/GGUF blocks (bound as words, see weights.wgsl)
//   out [M, N] f32
//   torch: out = x @ w.float().T       (F.linear(x, w) without bias)
//
// Decode is bound by reading w once, so the kernel is laid out for memory bandwidth:
// a workgroup of 256 invocations computes ROWS = 8 output rows, LANES = 32 invocations
// per row. The lanes of a row stride over its weights so consecutive lanes read
// consecutive words (coalesced), each keeps a running f32 sum, and the 32 partial sums
// are added by a tree reduction in workgroup memory. Lane 0 writes the row's result.
//
// Any K: each lane reads one u32 word at a time (1 f32 or 2 halves). With halves and
// odd K a row starts in the middle of a word; the first and last word of a row then hold
// one element of the neighbouring row, which is skipped. Shapes with K % 4 == 0 take the
// block matvec (matvec_core.wgsl) instead, which also folds norms and epilogues in.
//
// Grid: one workgroup per ROWS output rows, folded into 2-D when N/ROWS exceeds the per-
// dimension limit; `row_stride` = rows covered by one grid row (x workgroups × ROWS).
// The z dimension picks the row m of x; each of the M rows re-reads w (from cache on a
// GPU), which beats a 64-row matmul tile while M is small.
//
// Bindings (in order): x, w, out, params.

struct Params {
    n: u32,
    k: u32,
    row_stride: u32,
    _pad: u32,
}

const WG: u32 = 256u;
const LANES: u32 = 32u;  // invocations per output row
const ROWS: u32 = 8u;    // output rows per workgroup (WG / LANES)

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> partial: array<f32, WG>;

/// The two 16-bit weights packed in `word` (low half first), as f32. f16 or bf16 by W_DTYPE.
fn unpack_pair(word: u32) -> vec2<f32> {
    if (W_DTYPE == 1u) {
        return unpack2x16float(word);
    }
    // bf16 is the top half of an f32.
    return vec2<f32>(bitcast<f32>(word << 16u), bitcast<f32>(word & 0xffff0000u));
}

/// This lane's share of dot(w[row, :], x), reading one u32 word at a time.
fn lane_dot_words(row: u32, lane: u32, m: u32) -> f32 {
    var sum = 0.0;
    let start = row * p.k;  // element index of w[row, 0]
    let xb = m * p.k;       // element index of x[m, 0]
    if (W_DTYPE == 0u) {
        for (var i = lane; i < p.k; i += LANES) {
            sum = fma(bitcast<f32>(w[start + i]), x[xb + i], sum);
        }
        return sum;
    }
    if (W_DTYPE >= 3u) {
        // GGUF block types: each element decoded by load_w (weights.wgsl, quant_*.wgsl).
        for (var i = lane; i < p.k; i += LANES) {
            sum = fma(load_w(start + i), x[xb + i], sum);
        }
        return sum;
    }
    // Halves: words first..last (exclusive) cover elements start..end of this row.
    let end = start + p.k;
    let first = start >> 1u;
    let last = (end >> 1u) + (end & 1u);
    for (var wi = first + lane; wi < last; wi += LANES) {
        let pair = unpack_pair(w[wi]);
        let e = wi * 2u;  // element index of the low half
        if (e >= start) {
            sum = fma(pair.x, x[xb + e - start], sum);
        }
        if (e + 1u < end) {
            sum = fma(pair.y, x[xb + e + 1u - start], sum);
        }
    }
    return sum;
}

/// Add the LANES partial sums of each row in workgroup memory; lane 0 stores the row.
/// Every invocation of the workgroup must call this (it contains barriers).
fn reduce_and_store(t: u32, lane: u32, row: u32, m: u32, sum: f32) {
    partial[t] = sum;
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            partial[t] += partial[t + s];
        }
        workgroupBarrier();
    }
    if (lane == 0u && row < p.n) {
        out[m * p.n + row] = partial[t];
    }
}

fn row_of(t: u32, wid: vec3<u32>) -> u32 {
    return wid.x * ROWS + wid.y * p.row_stride + t / LANES;
}

@compute @workgroup_size(WG)
fn matvec(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = lid.x;
    let lane = t % LANES;
    let row = row_of(t, wid);
    var sum = 0.0;
    if (row < p.n) {
        sum = lane_dot_words(row, lane, wid.z);
    }
    reduce_and_store(t, lane, row, wid.z, sum);
}
