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
// by `load_w_quants` (weight_runs.wgsl) — a block's (or sub-block's) scale and min are
// read once per run, with 32-bit loads, and each weight is decoded once per tile and
// then shared by all 64 rows of the tile. Consecutive invocations write consecutive
// words of the staged tiles (no bank conflicts). Rows past M or N read the last row
// instead (their results are never stored); k past K (dense weights only: block rows
// are whole blocks) reads as zero, so any shape works.
//
// The weight tile comes in two variants, a file prepended to this one (see
// kernels/src/shaders.rs), which defines `WTile`, `stage_w` and the scale groups:
// - matmul_f32.wgsl (`MATMUL`, every device): f32 values, dequantized when staged.
// - matmul_f16.wgsl (`MATMUL_F16`, SHADER_F16 devices, opens with `enable f16;`): for
//   block weights the integer quants (exact in f16) plus a per-row scale and offset per
//   scale group of k (32, or 16 for Q6_K); f16 values for dense weights. Halves the
//   weight tile and the workgroup-memory bytes read per multiply-add.
// Either way the slice is summed per scale group g: part = Σ_k a·w_tile (f32 FMAs), then
// out += part · scale_g − (Σ_k a) · offset_g (scale 1, offset 0 for value tiles).
//
// Workgroup memory: a_tile 32 × 64 f32 = 8 KiB, w_tile 32 × 64 WTile = 8 KiB (f32) or
// 4 KiB (f16, plus 768 B of scales and offsets): at most 16 KiB, WebGPU's default limit.
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

/// Store 4 consecutive k of `a` row r (tile slots `slot`, `slot + QUADS`, ...; component c).
fn put_a4(slot: u32, c: u32, v: vec4<f32>) {
    a_tile[slot][c] = v.x;
    a_tile[slot + QUADS][c] = v.y;
    a_tile[slot + 2u * QUADS][c] = v.z;
    a_tile[slot + 3u * QUADS][c] = v.w;
}

/// Store 4 consecutive k of weight row r, like put_a4.
fn put_w4(slot: u32, c: u32, v: vec4<f32>) {
    w_tile[slot][c] = WTile(v.x);
    w_tile[slot + QUADS][c] = WTile(v.y);
    w_tile[slot + 2u * QUADS][c] = WTile(v.z);
    w_tile[slot + 3u * QUADS][c] = WTile(v.w);
}

/// Stage a[row0.., k0..] and w[col0.., k0..] (64×32 each) into workgroup memory.
fn stage_slice(t: u32, row0: u32, col0: u32, k0: u32, a_base: u32, w_base: u32) {
    let r = t % BM;
    let run = t / BM;
    let kk = run * RUN;
    let gm = min(row0 + r, p.m - 1u);
    let gn = min(col0 + r, p.n - 1u);
    let slot = kk * QUADS + r / 4u;
    let av = load_a_run(a_base + gm * p.k, k0 + kk);
    put_a4(slot, r % 4u, av.lo);
    put_a4(slot + 4u * QUADS, r % 4u, av.hi);
    stage_w(slot, r % 4u, r, run, load_w_quants(w_base + gn * p.k, k0 + kk, p.k));
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
            let gk = group_k();
            // The last slice of a dense row may end early (staged as zeros past K).
            let k_len = min(BK, p.k - k0);
            for (var g = 0u; g * gk < k_len; g++) {
                // part[i][j] = Σ_k a[row i, k] · w_tile[col j, k] over scale group g.
                var part: array<vec4<f32>, 4>;
                var a_sum = vec4<f32>(0.0);
                for (var i = 0u; i < 4u; i++) {
                    part[i] = vec4<f32>(0.0);
                }
                for (var kk = g * gk; kk < min((g + 1u) * gk, k_len); kk++) {
                    let av = a_tile[kk * QUADS + lid.y];
                    let wv = vec4<f32>(w_tile[kk * QUADS + lid.x]);
                    part[0] = fma(vec4<f32>(av.x), wv, part[0]);
                    part[1] = fma(vec4<f32>(av.y), wv, part[1]);
                    part[2] = fma(vec4<f32>(av.z), wv, part[2]);
                    part[3] = fma(vec4<f32>(av.w), wv, part[3]);
                    if group_has_offset() {
                        a_sum += av;
                    }
                }
                let scale = group_scale(g, lid.x);
                let offset = group_offset(lid.x);
                for (var i = 0u; i < 4u; i++) {
                    acc[i] = fma(part[i], scale, acc[i]);
                    if group_has_offset() {
                        acc[i] = fma(vec4<f32>(-a_sum[i]), offset, acc[i]);
                    }
                }
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
