// sample.wgsl — choose the next token of each row of logits [rows, n] on the GPU.
//
// One sampling step for row r runs these entry points in order (sample.rs records them):
//   process         one invocation per element: x = logits with NaN → -inf, then
//                   repetition penalty (HF: ids seen in prompt or output; x > 0 → x / rp,
//                   else x · rp), frequency / presence penalties (OpenAI: output ids only,
//                   x − f·count − p·[count > 0]), + logit bias (−inf bans), / temperature.
//   stats_partial   one workgroup per CHUNK of a row: online max and Σ exp(x − max).
//   stats_finish    one invocation per row: combine the chunks into state[r].max / .total
//                   (slot 0: the processed x) or .raw_max / .raw_total (slot 1: raw logits).
//   search_partial  one workgroup per CHUNK: for 16 candidate thresholds
//                   t_j = lo + j·2^shift (order keys), the count and the mass
//                   Σ exp(x − max) of the elements whose key falls in [t_j, t_j+1).
//   search_decide   one workgroup per row: sums the chunks, takes the largest t_j whose
//                   suffix count (top-k) or suffix mass (top-p) still reaches its target,
//                   and narrows the window; 8 passes (shift 28, 24, …, 0) find the exact
//                   k-th largest value / the top-p boundary value without sorting.
//   draw_partial    one workgroup per CHUNK: the best (x + Gumbel(seed, step, i)) among
//                   kept ids (key ≥ state.thr and, with min-p, exp(x − max) ≥ min_p);
//                   greedy rows use x alone.
//   draw_finish     one invocation per row: the winning id → token[r]; counts it in the
//                   row's history; step += 1; with log-probs, logprob[r] = raw[id] − lse.
// Gumbel-max draws exactly from softmax over the kept ids: argmax(x_i + g_i) with
// g_i = −ln(−ln u_i) is distributed as softmax(x). u_i comes from a counter-based hash of
// (seed, step, i), so a seed reproduces its tokens on every run and device.
//
// Values are compared as order-preserving u32 keys (order.wgsl); ties go to the
// smallest id. Rows are the grid's y dimension; chunks its x dimension.
//
// A row of logits r is sampled with the sequence in slot map[r]: its parameters, RNG step,
// history and bias rows are those of that slot, so one set of buffers with a row per
// serving slot samples any subset of the slots in one pass (the identity map samples
// every row with its own). Per-step scratch (processed logits, partials, state) and the
// outputs (token, logprob) are indexed by r.

struct Params {
    n: u32,          // vocabulary size (row length)
    n_chunks: u32,   // ceil(n / CHUNK)
    rows: u32,
    shift: u32,      // search pass: window step is 2^shift
    mode: u32,       // search: 0 = top-k, 1 = top-p. stats: slot. draw_finish: 1 = write log-probs
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Per-row sampling parameters (mirrors `SampleRow` in sample.rs).
struct Row {
    temperature: f32,         // 0 = greedy
    top_k: u32,               // 0 = off
    top_p: f32,               // 1 = off
    min_p: f32,               // 0 = off
    repetition_penalty: f32,  // 1 = off
    frequency_penalty: f32,
    presence_penalty: f32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,                // advanced by draw_finish
    has_bias: u32,
    _pad: u32,
}

// Per-row state between the kernels of one step (mirrors `SampleState` in sample.rs).
struct State {
    max: f32,        // max of the processed x
    total: f32,      // Σ exp(x − max)
    lo: u32,         // search window start (order key)
    thr: u32,        // keep ids whose key ≥ thr
    kept_mass: f32,  // Σ exp(x − max) over what top-k kept (the top-p denominator)
    raw_max: f32,    // of the raw logits, for log-probs
    raw_total: f32,
    token: u32,
}

const CHUNK: u32 = 1024u;
const WG: u32 = 256u;
const SEARCH_WG: u32 = 128u;
const BINS: u32 = 16u;
const HISTORY_PROMPT_BIT: u32 = 0x80000000u;

// ---- shared helpers -------------------------------------------------------------------

// exp(x − m) for x ≤ m: the unnormalised probability; 0 for a banned (LOWEST) id
// unless everything is banned.
fn weight(x: f32, m: f32) -> f32 {
    return exp(max(x - m, -200.0));
}

// A 32-bit integer hash with good avalanche (Wellons' lowbias32).
fn mix32(x: u32) -> u32 {
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// Uniform in (0, 1) for element i of step `step` of a seed: 24 random bits.
fn uniform01(seed_lo: u32, seed_hi: u32, step: u32, i: u32) -> f32 {
    let key = mix32(step ^ mix32(seed_lo ^ mix32(seed_hi ^ 0x9e3779b9u)));
    let h = mix32(mix32(i ^ key) + key);
    return (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
}

fn gumbel(seed_lo: u32, seed_hi: u32, step: u32, i: u32) -> f32 {
    return -log(-log(uniform01(seed_lo, seed_hi, step, i)));
}

// ---- process --------------------------------------------------------------------------

@group(0) @binding(0) var<storage, read> proc_logits: array<f32>;
@group(0) @binding(1) var<storage, read> proc_history: array<u32>;
@group(0) @binding(2) var<storage, read> proc_bias: array<f32>;
@group(0) @binding(3) var<storage, read> proc_rows: array<Row>;
@group(0) @binding(4) var<storage, read> proc_map: array<u32>;
@group(0) @binding(5) var<storage, read_write> proc_out: array<f32>;
@group(0) @binding(6) var<uniform> proc_p: Params;

@compute @workgroup_size(WG)
fn process(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y;
    let slot = proc_map[row];
    let r = proc_rows[slot];
    let start = wg.x * CHUNK;
    let end = min(start + CHUNK, proc_p.n);
    for (var i = start + lid.x; i < end; i += WG) {
        let at = row * proc_p.n + i;
        let own = slot * proc_p.n + i;
        var x = sanitize(proc_logits[at]);
        var banned = x == LOWEST;
        let h = proc_history[own];
        let count = h & ~HISTORY_PROMPT_BIT;
        if (h != 0u && r.repetition_penalty != 1.0) {
            x = select(x / r.repetition_penalty, x * r.repetition_penalty, x < 0.0);
        }
        if (count > 0u) {
            x -= f32(count) * r.frequency_penalty + r.presence_penalty;
        }
        if (r.has_bias != 0u) {
            let b = proc_bias[own];
            if (bitcast<u32>(b) == NEG_INF_BITS) {
                banned = true;
            } else {
                x += b;
            }
        }
        if (r.temperature > 0.0) {
            x = x / r.temperature;
        }
        proc_out[at] = select(clamp(x, LOWEST, HIGHEST), LOWEST, banned);
    }
}

// ---- stats ----------------------------------------------------------------------------

@group(0) @binding(0) var<storage, read> stats_x: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats_partials: array<u32>;
@group(0) @binding(2) var<uniform> stats_p: Params;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

// (m, s) ⊕ (m2, s2) for the online softmax: s counts exp(x − m).
fn combine_m(m: f32, m2: f32) -> f32 { return max(m, m2); }
fn combine_s(m: f32, s: f32, m2: f32, s2: f32) -> f32 {
    let mm = max(m, m2);
    return s * weight(m, mm) + s2 * weight(m2, mm);
}

@compute @workgroup_size(WG)
fn stats_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.y;
    let lid = lid3.x;
    let start = wg.x * CHUNK;
    let end = min(start + CHUNK, stats_p.n);
    var m = LOWEST;
    var s = 0.0;
    for (var i = start + lid; i < end; i += WG) {
        let x = sanitize(stats_x[row * stats_p.n + i]);
        let mm = max(m, x);
        s = s * weight(m, mm) + weight(x, mm);
        m = mm;
    }
    red_m[lid] = m;
    red_s[lid] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid < k) {
            let s2 = combine_s(red_m[lid], red_s[lid], red_m[lid + k], red_s[lid + k]);
            red_m[lid] = combine_m(red_m[lid], red_m[lid + k]);
            red_s[lid] = s2;
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let at = (row * stats_p.n_chunks + wg.x) * 2u;
        stats_partials[at] = bitcast<u32>(red_m[0]);
        stats_partials[at + 1u] = bitcast<u32>(red_s[0]);
    }
}

@group(0) @binding(0) var<storage, read> sf_partials: array<u32>;
@group(0) @binding(1) var<storage, read_write> sf_state: array<State>;
@group(0) @binding(2) var<uniform> sf_p: Params;

@compute @workgroup_size(64)
fn stats_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if (row >= sf_p.rows) { return; }
    var m = LOWEST;
    var s = 0.0;
    for (var c = 0u; c < sf_p.n_chunks; c++) {
        let at = (row * sf_p.n_chunks + c) * 2u;
        let m2 = bitcast<f32>(sf_partials[at]);
        let s2 = bitcast<f32>(sf_partials[at + 1u]);
        s = combine_s(m, s, m2, s2);
        m = combine_m(m, m2);
    }
    if (sf_p.mode == 0u) {
        sf_state[row].max = m;
        sf_state[row].total = s;
        sf_state[row].kept_mass = s;
        sf_state[row].lo = 0u;
        sf_state[row].thr = 0u;
    } else {
        sf_state[row].raw_max = m;
        sf_state[row].raw_total = s;
    }
}

// ---- threshold search -----------------------------------------------------------------

@group(0) @binding(0) var<storage, read> search_x: array<f32>;
@group(0) @binding(1) var<storage, read> search_state: array<State>;
@group(0) @binding(2) var<storage, read_write> search_partials: array<f32>;
@group(0) @binding(3) var<uniform> search_p: Params;

var<workgroup> red_bins: array<f32, 2048>; // SEARCH_WG * BINS, one row of bins per invocation

@compute @workgroup_size(SEARCH_WG)
fn search_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.y;
    let lid = lid3.x;
    let st = search_state[row];
    let start = wg.x * CHUNK;
    let end = min(start + CHUNK, search_p.n);
    var count: array<f32, BINS>;
    var mass: array<f32, BINS>;
    for (var j = 0u; j < BINS; j++) { count[j] = 0.0; mass[j] = 0.0; }
    for (var i = start + lid; i < end; i += SEARCH_WG) {
        let x = search_x[row * search_p.n + i];
        let k = order_key(x);
        if (k >= st.lo) {
            let bin = min((k - st.lo) >> search_p.shift, BINS - 1u);
            count[bin] += 1.0;
            mass[bin] += weight(x, st.max);
        }
    }
    let out = (row * search_p.n_chunks + wg.x) * 2u * BINS;
    // Reduce the counts, then the masses, through the same workgroup array: each
    // invocation stores its bins, then invocation j < BINS sums bin j down the column.
    for (var which = 0u; which < 2u; which++) {
        for (var j = 0u; j < BINS; j++) {
            red_bins[lid * BINS + j] = select(mass[j], count[j], which == 0u);
        }
        workgroupBarrier();
        if (lid < BINS) {
            var sum = 0.0;
            for (var t = 0u; t < SEARCH_WG; t++) {
                sum += red_bins[t * BINS + lid];
            }
            search_partials[out + which * BINS + lid] = sum;
        }
        workgroupBarrier();
    }
}

@group(0) @binding(0) var<storage, read> sd_partials: array<f32>;
@group(0) @binding(1) var<storage, read> sd_rows: array<Row>;
@group(0) @binding(2) var<storage, read> sd_map: array<u32>;
@group(0) @binding(3) var<storage, read_write> sd_state: array<State>;
@group(0) @binding(4) var<uniform> sd_p: Params;

var<workgroup> sums: array<f32, 32>; // 16 bin counts then 16 bin masses

@compute @workgroup_size(32)
fn search_decide(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.x;
    let lid = lid3.x;
    var total = 0.0;
    for (var c = 0u; c < sd_p.n_chunks; c++) {
        total += sd_partials[(row * sd_p.n_chunks + c) * 2u * BINS + lid];
    }
    sums[lid] = total;
    workgroupBarrier();
    if (lid != 0u) { return; }

    let r = sd_rows[sd_map[row]];
    var st = sd_state[row];
    let top_k_on = sd_p.mode == 0u && r.temperature > 0.0 && r.top_k > 0u && r.top_k < sd_p.n;
    let top_p_on = sd_p.mode == 1u && r.temperature > 0.0 && r.top_p < 1.0;
    if (!top_k_on && !top_p_on) { return; }
    let goal = select(r.top_p * st.kept_mass, f32(r.top_k), top_k_on);
    // Largest j whose suffix (count or mass of keys ≥ t_j) still reaches the target.
    var chosen = 0u;
    var chosen_mass = 0.0;
    var suffix_count = 0.0;
    var suffix_mass = 0.0;
    var found = false;
    for (var jj = 0u; jj < BINS; jj++) {
        let j = BINS - 1u - jj;
        suffix_count += sums[j];
        suffix_mass += sums[BINS + j];
        let reached = select(suffix_mass >= goal, suffix_count >= goal, top_k_on);
        if (reached && !found) {
            found = true;
            chosen = j;
            chosen_mass = suffix_mass;
        }
    }
    if (!found) { chosen_mass = suffix_mass; }
    st.lo += chosen << sd_p.shift;
    if (sd_p.shift == 0u) {
        // Window closed: lo is the exact boundary key.
        st.thr = max(st.thr, st.lo);
        if (top_k_on) { st.kept_mass = chosen_mass; }
        st.lo = 0u;
    }
    sd_state[row] = st;
}

// ---- draw -----------------------------------------------------------------------------

@group(0) @binding(0) var<storage, read> draw_x: array<f32>;
@group(0) @binding(1) var<storage, read> draw_state: array<State>;
@group(0) @binding(2) var<storage, read> draw_rows: array<Row>;
@group(0) @binding(3) var<storage, read> draw_map: array<u32>;
@group(0) @binding(4) var<storage, read_write> draw_partials: array<u32>;
@group(0) @binding(5) var<uniform> draw_p: Params;

@compute @workgroup_size(WG)
fn draw_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.y;
    let lid = lid3.x;
    let r = draw_rows[draw_map[row]];
    let st = draw_state[row];
    let sampling = r.temperature > 0.0;
    let start = wg.x * CHUNK;
    let end = min(start + CHUNK, draw_p.n);
    var best_key = 0u;
    var best_idx = NONE;
    for (var i = start + lid; i < end; i += WG) {
        let x = draw_x[row * draw_p.n + i];
        var keep = true;
        var score = x;
        if (sampling) {
            keep = order_key(x) >= st.thr && (r.min_p == 0.0 || weight(x, st.max) >= r.min_p);
            score = x + gumbel(r.seed_lo, r.seed_hi, r.step, i);
        }
        let k = order_key(score);
        if (keep && (best_idx == NONE || k > best_key)) {
            best_key = k;
            best_idx = i;
        }
    }
    let best = reduce_best(lid, best_key, best_idx);
    if (lid == 0u) {
        let at = (row * draw_p.n_chunks + wg.x) * 2u;
        draw_partials[at] = best.x;
        draw_partials[at + 1u] = best.y;
    }
}

@group(0) @binding(0) var<storage, read> df_partials: array<u32>;
@group(0) @binding(1) var<storage, read> df_logits: array<f32>;
@group(0) @binding(2) var<storage, read> df_map: array<u32>;
@group(0) @binding(3) var<storage, read_write> df_rows: array<Row>;
@group(0) @binding(4) var<storage, read_write> df_state: array<State>;
@group(0) @binding(5) var<storage, read_write> df_history: array<u32>;
@group(0) @binding(6) var<storage, read_write> df_token: array<u32>;
@group(0) @binding(7) var<storage, read_write> df_logprob: array<f32>;
@group(0) @binding(8) var<uniform> df_p: Params;

@compute @workgroup_size(64)
fn draw_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if (row >= df_p.rows) { return; }
    var best_key = 0u;
    var best_idx = NONE;
    for (var c = 0u; c < df_p.n_chunks; c++) {
        let at = (row * df_p.n_chunks + c) * 2u;
        let k = df_partials[at];
        let idx = df_partials[at + 1u];
        if (idx != NONE && (best_idx == NONE || beats(k, idx, best_key, best_idx))) {
            best_key = k;
            best_idx = idx;
        }
    }
    // Nothing kept can only mean an empty row; fall back to id 0.
    let id = select(best_idx, 0u, best_idx == NONE);
    df_token[row] = id;
    df_state[row].token = id;
    let slot = df_map[row];
    let h = slot * df_p.n + id;
    if ((df_history[h] & ~HISTORY_PROMPT_BIT) < ~HISTORY_PROMPT_BIT) {
        df_history[h] += 1u;
    }
    df_rows[slot].step += 1u;
    if (df_p.mode == 1u) {
        let st = df_state[row];
        let x = sanitize(df_logits[row * df_p.n + id]);
        df_logprob[row] = x - st.raw_max - log(st.raw_total);
    }
}
