// matmul.wgsl — tiled matrix multiply for prefill: out = a · wᵀ (the nn.Linear layout).
//
//   a   [batch, M, K] f32        (leading dims flattened to `batch`)
//   w   [N, K] shared by every batch, or [batch, N, K]; any weight dtype (W_DTYPE:
//       f32, f16, bf16, or a GGUF block type in kiln's repacked layout)
//   out [batch, M, N] f32
//   torch: out = a @ w.float().transpose(-1, -2)      (F.linear(a, w) without bias)
//
// One workgroup computes a BM×BN = 64×64 tile of one batch's output; its 16×16 = 256
// invocations each compute a 4×4 block held in registers: invocation (tx, ty) owns output
// rows 4ty..4ty+3 and columns 4tx..4tx+3. K is walked in slices of BK = 32 (one legacy
// block, one K-quant sub-block): every slice the workgroup stages a 64×32 slice of `a`
// and of `w` in workgroup memory, then each invocation does 4×4×32 multiply-adds from it,
// reading one vec4 of `a` (a broadcast: 2 distinct addresses per 32 invocations) and one
// vec4 of `w` (16 consecutive vec4s, no bank conflicts) per k.
//
// Staging: invocation t stages row r = t % 64 of each slice at k = 8·(t / 64) .. +8: one
// run of 8 consecutive `a` values and one run of 8 consecutive weights, decoded together
// by `load_w_run` (weight_runs.wgsl) — a block's (or sub-block's) scales are read once
// per run, with 32-bit loads, and each weight is decoded once per tile and then shared
// by all 64 rows of the tile. Consecutive invocations write consecutive words of the
// staged tiles (no bank conflicts). Rows past M or N read the last row instead (their
// results are never stored); k past K (dense weights only: block rows are whole blocks)
// reads as zero, so any shape works.
//
// The weight tile's element type is `WTile`, declared by the prelude kernels/src/shaders.rs
// puts in front of this file: f32 (`MATMUL`, every device) or f16 (`MATMUL_F16`, which
// opens with `enable f16;` and is only built on devices with SHADER_F16). f16 halves the
// weight tile's size and the workgroup-memory bytes read per multiply-add; the
// multiply-adds stay f32 (f16 × f32 products are exact in f32, accumulation in f32), so
// the only change is each staged weight rounded to f16 — the CPU twin models exactly that
// (reference::matmul::f16_tile_values).
//
// Workgroup memory: a_tile 32 × 64 f32 = 8 KiB, w_tile 32 × 64 WTile = 8 KiB (f32) or
// 4 KiB (f16): at most 16 KiB, WebGPU's default limit.
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
const BK: u32 = 32u;       // k per staged slice
const RUN: u32 = 8u;       // consecutive k one invocation stages per row
const QUADS: u32 = 16u;    // vec4s per staged k (64 rows / 4)

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// a_tile[kk * QUADS + r / 4][r % 4] = a[row0 + r, k0 + kk]; w_tile likewise for w's
// rows (= out's columns).
var<workgroup> a_tile: array<vec4<f32>, BK * QUADS>;
var<workgroup> w_tile: array<vec4<WTile>, BK * QUADS>;

/// Element k of a row of `a` starting at `row`, or 0 past K.
fn a_or_zero(row: u32, k: u32) -> f32 {
    if k < p.k {
        return a[row + k];
    }
    return 0.0;
}

/// `a[row + k .. row + k + 8]`, zeros past K.
fn load_a_run(row: u32, k: u32) -> Run8 {
    let i = row + k;
    if k + RUN <= p.k {
        return Run8(vec4<f32>(a[i], a[i + 1u], a[i + 2u], a[i + 3u]), vec4<f32>(a[i + 4u], a[i + 5u], a[i + 6u], a[i + 7u]));
    }
    return Run8(
        vec4<f32>(a_or_zero(row, k), a_or_zero(row, k + 1u), a_or_zero(row, k + 2u), a_or_zero(row, k + 3u)),
        vec4<f32>(a_or_zero(row, k + 4u), a_or_zero(row, k + 5u), a_or_zero(row, k + 6u), a_or_zero(row, k + 7u)),
    );
}

/// Store 4 consecutive k of row r (tile slots `slot`, `slot + QUADS`, ...; component c).
fn put4(slot: u32, c: u32, av: vec4<f32>, wv: vec4<f32>) {
    a_tile[slot][c] = av.x;
    a_tile[slot + QUADS][c] = av.y;
    a_tile[slot + 2u * QUADS][c] = av.z;
    a_tile[slot + 3u * QUADS][c] = av.w;
    w_tile[slot][c] = WTile(wv.x);
    w_tile[slot + QUADS][c] = WTile(wv.y);
    w_tile[slot + 2u * QUADS][c] = WTile(wv.z);
    w_tile[slot + 3u * QUADS][c] = WTile(wv.w);
}

/// Stage a[row0.., k0..] and w[col0.., k0..] (64×32 each) into workgroup memory.
fn stage_slice(t: u32, row0: u32, col0: u32, k0: u32, a_base: u32, w_base: u32) {
    let r = t % BM;
    let kk = (t / BM) * RUN;
    let gm = min(row0 + r, p.m - 1u);
    let gn = min(col0 + r, p.n - 1u);
    let av = load_a_run(a_base + gm * p.k, k0 + kk);
    let wv = load_w_run(w_base + gn * p.k, k0 + kk, p.k);
    let slot = kk * QUADS + r / 4u;
    put4(slot, r % 4u, av.lo, wv.lo);
    put4(slot + 4u * QUADS, r % 4u, av.hi, wv.hi);
}

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;

    for (var b = wid.z; b < p.batch; b += nwg.z) {
        let a_base = b * p.m * p.k;
        let w_base = b * p.w_batch_stride;
        let o_base = b * p.m * p.n;

        // acc[i][j] = out[row0 + 4 ty + i, col0 + 4 tx + j]
        var acc: array<vec4<f32>, 4>;
        for (var i = 0u; i < 4u; i++) {
            acc[i] = vec4<f32>(0.0);
        }

        for (var k0 = 0u; k0 < p.k; k0 += BK) {
            stage_slice(t, row0, col0, k0, a_base, w_base);
            workgroupBarrier();
            for (var kk = 0u; kk < BK; kk++) {
                let av = a_tile[kk * QUADS + lid.y];
                let wv = vec4<f32>(w_tile[kk * QUADS + lid.x]);
                acc[0] = fma(vec4<f32>(av.x), wv, acc[0]);
                acc[1] = fma(vec4<f32>(av.y), wv, acc[1]);
                acc[2] = fma(vec4<f32>(av.z), wv, acc[2]);
                acc[3] = fma(vec4<f32>(av.w), wv, acc[3]);
            }
            // The next slice overwrites the tiles: wait until everyone has read them.
            workgroupBarrier();
        }

        for (var i = 0u; i < 4u; i++) {
            let gm = row0 + 4u * lid.y + i;
            if gm >= p.m {
                break;
            }
            for (var j = 0u; j < 4u; j++) {
                let gn = col0 + 4u * lid.x + j;
                if gn < p.n {
                    out[o_base + gm * p.n + gn] = acc[i][j];
                }
            }
        }
    }
}
