// matmul.wgsl — tiled matrix multiply for prefill: out = a · wᵀ (the nn.Linear layout).
//
//   a   [batch, M, K] f32        (leading dims flattened to `batch`)
//   w   [N, K] shared by every batch, or [batch, N, K]; f32/f16/bf16 read via load_w
//   out [batch, M, N] f32
//   torch: out = a @ w.float().transpose(-1, -2)      (F.linear(a, w) without bias)
//
// One workgroup computes a BM×BN = 64×64 tile of one batch's output; its 16×16 = 256
// invocations each compute a 4×4 block held in registers. The K dimension is walked in
// steps of BK = 16: every step the workgroup stages a 64×16 slice of `a` and of `w`
// in workgroup memory (4 elements per invocation, consecutive invocations reading
// consecutive k of one row), then each invocation does 4×4×16 multiply-adds from it.
// Loads outside M, N or K read as zero, so any shape works.
//
// Invocation (tx, ty) owns output rows ty + 16·i and columns tx + 16·j (i, j < 4):
// neighbouring invocations read neighbouring words of the staged tiles (no bank
// conflicts) and write neighbouring columns of `out` (coalesced stores).
//
// Grid: x = ⌈N/64⌉ column tiles, y = ⌈M/64⌉ row tiles, z = batches; when batch exceeds
// the per-dimension limit a workgroup loops over batches z, z + num_workgroups.z, ...
//
// Bindings (in order): a, w, out, params.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    // Elements between consecutive batches of w: N·K when w is batched, 0 when shared.
    w_batch_stride: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const BM: u32 = 64u;       // output rows per workgroup
const BN: u32 = 64u;       // output columns per workgroup
const BK: u32 = 16u;       // k per staged slice
const TPD: u32 = 16u;      // invocations per dimension (16×16 = 256)
const THREADS: u32 = 256u;
// Staged tiles are stored k-major with rows padded by one word, so the transposing
// stores (k varies fastest across invocations) hit distinct banks.
const A_STRIDE: u32 = BM + 1u;
const W_STRIDE: u32 = BN + 1u;
// Elements of a staged slice each invocation loads: 64·16 / 256.
const LOADS: u32 = 4u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// a_tile[kk * A_STRIDE + r] = a[row0 + r, k0 + kk]; w_tile likewise for w's rows
// (= out's columns). 2 × 16 × 65 × 4 B = 8.3 KiB of workgroup memory.
var<workgroup> a_tile: array<f32, BK * A_STRIDE>;
var<workgroup> w_tile: array<f32, BK * W_STRIDE>;

/// Stage a[row0.., k0..] and w[col0.., k0..] (64×16 each) into workgroup memory.
fn stage_slice(t: u32, row0: u32, col0: u32, k0: u32, a_base: u32, w_base: u32) {
    for (var i = 0u; i < LOADS; i++) {
        let idx = t + i * THREADS;
        let r = idx / BK;          // tile row, 0..64
        let kk = idx % BK;         // k within the slice, 0..16
        let gk = k0 + kk;
        let gm = row0 + r;
        let gn = col0 + r;
        var av = 0.0;
        if (gm < p.m && gk < p.k) {
            av = a[a_base + gm * p.k + gk];
        }
        var wv = 0.0;
        if (gn < p.n && gk < p.k) {
            wv = load_w(w_base + gn * p.k + gk);
        }
        a_tile[kk * A_STRIDE + r] = av;
        w_tile[kk * W_STRIDE + r] = wv;
    }
}

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let t = lid.y * TPD + lid.x;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;

    for (var b = wid.z; b < p.batch; b += nwg.z) {
        let a_base = b * p.m * p.k;
        let w_base = b * p.w_batch_stride;
        let o_base = b * p.m * p.n;

        // acc[i][j] = out[row0 + ty + 16 i, col0 + tx + 16 j]
        var acc: array<vec4<f32>, 4>;
        for (var i = 0u; i < 4u; i++) {
            acc[i] = vec4<f32>(0.0);
        }

        for (var k0 = 0u; k0 < p.k; k0 += BK) {
            stage_slice(t, row0, col0, k0, a_base, w_base);
            workgroupBarrier();
            for (var kk = 0u; kk < BK; kk++) {
                let wrow = kk * W_STRIDE + lid.x;
                let wv = vec4<f32>(w_tile[wrow], w_tile[wrow + 16u], w_tile[wrow + 32u], w_tile[wrow + 48u]);
                let arow = kk * A_STRIDE + lid.y;
                acc[0] = fma(vec4<f32>(a_tile[arow]), wv, acc[0]);
                acc[1] = fma(vec4<f32>(a_tile[arow + 16u]), wv, acc[1]);
                acc[2] = fma(vec4<f32>(a_tile[arow + 32u]), wv, acc[2]);
                acc[3] = fma(vec4<f32>(a_tile[arow + 48u]), wv, acc[3]);
            }
            // The next slice overwrites the tiles: wait until everyone has read them.
            workgroupBarrier();
        }

        for (var i = 0u; i < 4u; i++) {
            let gm = row0 + lid.y + i * TPD;
            if (gm >= p.m) {
                continue;
            }
            for (var j = 0u; j < 4u; j++) {
                let gn = col0 + lid.x + j * TPD;
                if (gn < p.n) {
                    out[o_base + gm * p.n + gn] = acc[i][j];
                }
            }
        }
    }
}
