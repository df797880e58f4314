// matvec_core.wgsl — the shared skeleton of the block matvec kernels, for decode (one
// activation row) and small batches (up to 16 rows): out = epilogue(norm(x) · wᵀ).
//
//   x         [M, K] f32, 1 ≤ M ≤ 16                  (M is the override constant M)
//   w         [N, K] in one weight format; its family file (matvec_float.wgsl,
//             matvec_q32.wgsl, matvec_qk.wgsl) declares `w` and says how a "block" of
//             it is decoded
//   norm_w    [K] f32  γ of an RMSNorm/LayerNorm folded in front (NORM = 1 / 2)
//   norm_b    [K] f32  β of the LayerNorm (NORM = 2)
//   bias      [N] f32  (BIAS)
//   residual  [M, N_out] f32 added last (RESIDUAL)
//   out       [M, N_out] f32; N_out = N, or N / 2 when ACT = 1 pairs gate and up rows.
//             With SEGMENTS the columns are cut at seg1 ≤ seg2 into up to three
//             matrices [M, seg1], [M, seg2 − seg1], [M, N − seg2] stored one after the
//             other (stacked q/k/v projections, each part contiguous for any M)
//   torch:    xn = norm(x) (or x);  y = F.linear(xn, w.float(), bias);
//             ACT 1: y = F.silu(y[:, :N/2]) * y[:, N/2:];  ACT 2: y = F.gelu(y, approximate="tanh")
//             out = y + residual
//
// Layout, built for bandwidth: every weight byte is read once per step and every block
// decoded once, for all M activation rows.
// - A workgroup of WG invocations (32; 64 or 128 with subgroups, a tuning) owns ROWS weight rows (an override: few on GPUs,
//   which want many workgroups in flight; more on CPU adapters, where each load
//   instruction is costly and x is then loaded once for more rows). With ACT = 1 the
//   first half are gate rows j.. and the second half the matching up rows N/2 + j.., so
//   the workgroup can finish its output columns itself.
// - A row is a sequence of blocks (32 elements for Q4_0..Q8_0, 256 for the K-quants, 8
//   for f32/f16/bf16). LANES invocations share a block, each owning a fixed run of its
//   elements: GROUPS groups of 4 consecutive elements (`x_offset`), each group with one
//   scale and one min (`decode_run`). A lane decodes its run of a block once, loading
//   the scales with packed 32-bit loads.
// - Each invocation loops over the blocks at stride WG / LANES. Two loop orders, picked
//   by M (X_IN_REGS):
//     M · GROUPS ≤ X_REGS: per block, load the run's x for every activation row once (vec4
//             loads) into registers, then for each weight row decode the run and
//             accumulate;
//     larger M: per block and weight row, decode the run, then for each activation row
//             load x group by group and accumulate.
//   Either way: acc[m, r] += Σ_g scale_g · (q_g · x_g) − min_g · Σ x_g, so the scale and
//   the min are applied once per group of four, not per element.
// - The M·ROWS sums are added across the workgroup (`wg_sum`, subgroupAdd where the
//   adapter has subgroups, workgroup memory otherwise) and an epilogue adds the bias,
//   applies SwiGLU / GELU, adds the residual and stores.
// - NORM folds the preceding RMSNorm/LayerNorm in: a prologue computes each row's
//   1/rms (and mean) over K, and x is normalised as it is loaded.
//
// Grid: one workgroup per ROWS weight rows, folded into 2-D when that exceeds the per-
// dimension limit (`groups_per_row` = workgroups per grid row).
//
// Bindings (in order): x, w, norm_w, norm_b, bias, residual, out, params. Unused inputs
// are bound to x by the launcher (they are never read).

struct Params {
    n: u32,              // weight rows N
    k: u32,              // input features K
    n_out: u32,          // output columns (N, or N / 2 with ACT = 1)
    groups_per_row: u32, // workgroups per grid row (2-D fold)
    eps: f32,            // the folded norm's epsilon
    seg1: u32,           // SEGMENTS: first column of the second part
    seg2: u32,           // SEGMENTS: first column of the third part (N_out when two parts)
    _pad: u32,
}

override W_DTYPE: u32 = 0u;    // weight format, DType::weight_code (weights.wgsl lists them)
override M: u32 = 1u;          // activation rows, 1..=MAX_M
override ROWS: u32 = 2u;       // weight rows per workgroup, 1..=MAX_ROWS, M·ROWS ≤ NACC
override NORM: u32 = 0u;       // 0 none, 1 RMSNorm, 2 LayerNorm folded in front
override BIAS: bool = false;
override RESIDUAL: bool = false;
override ACT: u32 = 0u;        // 0 none, 1 SwiGLU of (gate, up) row pairs, 2 GELU (tanh)
override SEGMENTS: bool = false; // out holds the column parts one after the other
// Formats whose elements are d · q + m (Q4_1, Q5_1) or d · sc · q − dmin · m (Q4_K, Q5_K)
// need Σx per group; the others skip it.
override HAS_MIN: bool = W_DTYPE == 5u || W_DTYPE == 7u || W_DTYPE == 8u || W_DTYPE == 9u;
// Loop order: with X_IN_REGS every activation row's x for the block is loaded once into
// registers and each decoded weight run is used for all M rows; otherwise each block is
// decoded once and x re-read (from cache) for every activation row, as llama.cpp's
// mul_mat_vec does. X_REGS bounds the vec4s of x held: 16 on GPUs (register pressure),
// 32 on CPU adapters (kernels/src/matvec.rs), where every load instruction costs.
override X_REGS: u32 = 16u;
override X_IN_REGS: bool = M * GROUPS <= X_REGS;

// Invocations per workgroup: 32, or 64/128 with subgroups (the launcher's Tuning).
override WG: u32 = 32u;
// Slots per value in the reduction's workgroup array (naga cannot size it by WG): one per
// invocation without subgroups (WG = 32 there), one per subgroup with them (the launcher
// keeps WG / the adapter's smallest subgroup ≤ 32).
const SLOTS: u32 = 32u;
const MAX_M: u32 = 16u;
const MAX_ROWS: u32 = 16u;
const NACC: u32 = 32u;        // accumulators per invocation: M · ROWS at most
const MAX_GROUPS: u32 = 16u;  // groups of 4 elements one lane owns in a block, at most

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> norm_w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> norm_b: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

/// One invocation's decoded run of a block: GROUPS groups of 4 quants, each group's
/// element value being scale · q − min.
struct Run {
    q: array<vec4<f32>, MAX_GROUPS>,
    scale: array<f32, MAX_GROUPS>,
    min: array<f32, MAX_GROUPS>,
}

var<workgroup> norm_inv: array<f32, MAX_M>;  // 1/rms or 1/std of each activation row
var<workgroup> norm_mean: array<f32, MAX_M>; // LayerNorm's mean (0 for RMSNorm)

/// Weight row r (0..ROWS) of workgroup `group`.
fn weight_row(group: u32, r: u32) -> u32 {
    if (ACT == 1u) {
        let half = ROWS / 2u;
        return select(p.n / 2u + group * half + (r - half), group * half + r, r < half);
    }
    return group * ROWS + r;
}

/// x[m, k..k + 4], normalised when a norm is folded in (k is a multiple of 4).
fn load_x(m: u32, k: u32) -> vec4<f32> {
    let v = x[(m * p.k + k) / 4u];
    if (NORM == 0u) {
        return v;
    }
    let g = norm_w[k / 4u];
    if (NORM == 1u) {
        return v * norm_inv[m] * g;
    }
    return (v - norm_mean[m]) * norm_inv[m] * g + norm_b[k / 4u];
}

/// The folded norm's statistics of every activation row, into norm_inv / norm_mean.
/// RMSNorm: 1/sqrt(mean(x²) + eps). LayerNorm: mean, then 1/sqrt(mean((x − mean)²) + eps)
/// (two passes, as the standalone layer_norm kernel does).
fn norm_prologue(t: u32) {
    let k4 = p.k / 4u;
    var s: array<f32, NACC>;
    for (var m = 0u; m < M; m++) {
        var sum = 0.0;
        var sq = 0.0;
        for (var i = t; i < k4; i += WG) {
            let v = x[m * k4 + i];
            sum += v.x + v.y + v.z + v.w;
            sq += dot(v, v);
        }
        s[m] = select(sq, sum, NORM == 2u);
    }
    wg_sum(&s, M, t);
    if (t < M) {
        let mean = tot[t] / f32(p.k);
        norm_mean[t] = select(0.0, mean, NORM == 2u);
        norm_inv[t] = inverseSqrt(mean + p.eps); // RMSNorm's mean is mean(x²)
    }
    workgroupBarrier();
    if (NORM == 2u) {
        for (var m = 0u; m < M; m++) {
            var sq = 0.0;
            for (var i = t; i < k4; i += WG) {
                let d = x[m * k4 + i] - norm_mean[m];
                sq += dot(d, d);
            }
            s[m] = sq;
        }
        wg_sum(&s, M, t);
        if (t < M) {
            norm_inv[t] = inverseSqrt(tot[t] / f32(p.k) + p.eps);
        }
        workgroupBarrier();
    }
}

/// The 4 bytes of `v` shifted right by `shift` and masked with `mask`, as f32: one field
/// (a nibble, a 2-bit high part, ...) of 4 consecutive quants, for the family files.
fn byte_fields(v: u32, shift: u32, mask: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(v) >> vec4<u32>(shift, shift + 8u, shift + 16u, shift + 24u)) & vec4<u32>(mask));
}

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

fn gelu_tanh(v: f32) -> f32 {
    // tanh clamped as in elementwise.wgsl (some drivers' tanh is NaN for |x| > ~44).
    return 0.5 * v * (1.0 + tanh(clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -10.0, 10.0)));
}

/// Where output (m, col) is stored: row-major [M, N_out], or with SEGMENTS row-major
/// within its column part, the parts one after the other.
fn out_index(m: u32, col: u32) -> u32 {
    if (!SEGMENTS) {
        return m * p.n_out + col;
    }
    let start = select(select(p.seg2, p.seg1, col < p.seg2), 0u, col < p.seg1);
    let end = select(select(p.n_out, p.seg2, col < p.seg2), p.seg1, col < p.seg1);
    return M * start + m * (end - start) + (col - start);
}

/// Bias, activation, residual and store for the workgroup's outputs (sums in `tot`).
fn epilogue(t: u32, group: u32) {
    let outs = select(ROWS, ROWS / 2u, ACT == 1u);
    for (var i = t; i < M * outs; i += WG) {
        let m = i / outs;
        let j = i % outs;
        let col = group * outs + j;
        if (col >= p.n_out) {
            continue;
        }
        var v = tot[m * ROWS + j];
        if (BIAS) {
            v += bias[weight_row(group, j)];
        }
        if (ACT == 1u) {
            var up = tot[m * ROWS + j + ROWS / 2u];
            if (BIAS) {
                up += bias[weight_row(group, j + ROWS / 2u)];
            }
            v = silu(v) * up;
        } else if (ACT == 2u) {
            v = gelu_tanh(v);
        }
        if (RESIDUAL) {
            v += residual[m * p.n_out + col];
        }
        out[out_index(m, col)] = v;
    }
}

/// Σ_g scale_g · (q_g · x_g) − min_g · Σ x_g of one run against one activation row whose
/// groups are `xs[first..first + GROUPS]`.
fn run_dot(run: ptr<function, Run>, xs: ptr<function, array<vec4<f32>, NACC>>, first: u32) -> f32 {
    var s = 0.0;
    for (var g = 0u; g < GROUPS; g++) {
        let xg = (*xs)[first + g];
        s += (*run).scale[g] * dot((*run).q[g], xg);
        if (HAS_MIN) {
            s -= (*run).min[g] * (xg.x + xg.y + xg.z + xg.w);
        }
    }
    return s;
}

/// The whole kernel for workgroup `group`; `t` is the local invocation index.
fn matvec_main(t: u32, group: u32) {
    if (NORM != 0u) {
        norm_prologue(t);
    }
    let lane = t % LANES;
    let nblocks = p.k / BLOCK_ELEMS;
    let row_units = nblocks * BLOCK_UNITS;
    var row_base: array<u32, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        // Rows past N (the last workgroup) re-read row N − 1; the epilogue skips them.
        row_base[r] = min(weight_row(group, r), p.n - 1u) * row_units;
    }
    var acc: array<f32, NACC>;
    var xs: array<vec4<f32>, NACC>;
    for (var b = t / LANES; b < nblocks; b += WG / LANES) {
        let k0 = b * BLOCK_ELEMS;
        if (X_IN_REGS) {
            for (var m = 0u; m < M; m++) {
                for (var g = 0u; g < GROUPS; g++) {
                    xs[m * GROUPS + g] = load_x(m, k0 + x_offset(lane, g));
                }
            }
            for (var r = 0u; r < ROWS; r++) {
                var run = decode_run(row_base[r] + b * BLOCK_UNITS, lane);
                for (var m = 0u; m < M; m++) {
                    acc[m * ROWS + r] += run_dot(&run, &xs, m * GROUPS);
                }
            }
        } else {
            for (var r = 0u; r < ROWS; r++) {
                var run = decode_run(row_base[r] + b * BLOCK_UNITS, lane);
                for (var m = 0u; m < M; m++) {
                    for (var g = 0u; g < GROUPS; g++) {
                        xs[g] = load_x(m, k0 + x_offset(lane, g));
                    }
                    acc[m * ROWS + r] += run_dot(&run, &xs, 0u);
                }
            }
        }
    }
    wg_sum(&acc, M * ROWS, t);
    epilogue(t, group);
}
