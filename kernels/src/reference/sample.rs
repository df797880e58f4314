//! CPU twin for wgsl/sample.wgsl, one row at a time: logits processing (same f32
//! operations as the GPU), the kept set of top-k / top-p / min-p (sorting the row, in
//! f64), the counter-based uniforms and the Gumbel-max draw.

use crate::sample::{SampleRow, HISTORY_PROMPT_BIT};

/// Stand-ins for ±inf, as in the WGSL: NaN and −inf become LOWEST, +inf HIGHEST.
pub const LOWEST: f32 = f32::MIN;
/// Stand-in for +inf.
pub const HIGHEST: f32 = f32::MAX;

/// NaN and −inf → LOWEST, +inf → HIGHEST (`sanitize` in order.wgsl).
pub fn sanitize(v: f32) -> f32 {
    if v.is_nan() || v == f32::NEG_INFINITY {
        LOWEST
    } else if v == f32::INFINITY {
        HIGHEST
    } else {
        v
    }
}

/// Penalties, bias and temperature applied to one row of raw logits.
pub fn process(logits: &[f32], history: &[u32], bias: Option<&[f32]>, row: &SampleRow) -> Vec<f32> {
    logits
        .iter()
        .enumerate()
        .map(|(i, &raw)| {
            let mut x = sanitize(raw);
            let mut banned = x == LOWEST;
            let h = history[i];
            let count = h & !HISTORY_PROMPT_BIT;
            if h != 0 && row.repetition_penalty != 1.0 {
                x = if x < 0.0 { x * row.repetition_penalty } else { x / row.repetition_penalty };
            }
            if count > 0 {
                x -= count as f32 * row.frequency_penalty + row.presence_penalty;
            }
            if row.has_bias != 0 {
                let b = bias.map_or(0.0, |b| b[i]);
                if b == f32::NEG_INFINITY {
                    banned = true;
                } else {
                    x += b;
                }
            }
            if row.temperature > 0.0 {
                x /= row.temperature;
            }
            if banned {
                LOWEST
            } else {
                x.clamp(LOWEST, HIGHEST)
            }
        })
        .collect()
}

/// exp(x − m) in f64, 0 for a banned id.
fn weight(x: f32, m: f32) -> f64 {
    if x == LOWEST && m != LOWEST {
        0.0
    } else {
        (x as f64 - m as f64).max(-200.0).exp()
    }
}

/// Which ids of a processed row survive top-k, then top-p (renormalised over what top-k
/// kept), then min-p. Greedy rows keep everything (the draw takes the argmax).
pub fn kept(x: &[f32], row: &SampleRow) -> Vec<bool> {
    let n = x.len();
    if row.temperature <= 0.0 {
        return vec![true; n];
    }
    // Ids by value, largest first (ties by id).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[b].total_cmp(&x[a]).then(a.cmp(&b)));
    let m = x[order[0]];
    let mut threshold = f32::NEG_INFINITY;
    let mut kept_mass: f64 = x.iter().map(|&v| weight(v, m)).sum();
    if row.top_k > 0 && (row.top_k as usize) < n {
        let t = x[order[row.top_k as usize - 1]];
        threshold = t;
        kept_mass = x.iter().filter(|&&v| v >= t).map(|&v| weight(v, m)).sum();
    }
    if row.top_p < 1.0 {
        // The value at which the cumulative mass (largest first) reaches top_p.
        let goal = row.top_p as f64 * kept_mass;
        let mut cumulative = 0.0;
        let mut i = 0;
        while i < n {
            // Take every id tied at this value together.
            let v = x[order[i]];
            while i < n && x[order[i]] == v {
                cumulative += weight(v, m);
                i += 1;
            }
            if cumulative >= goal {
                threshold = threshold.max(v);
                break;
            }
        }
    }
    x.iter().map(|&v| v >= threshold && (row.min_p == 0.0 || weight(v, m) >= row.min_p as f64)).collect()
}

fn mix32(x: u32) -> u32 {
    let mut h = x;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The uniform in (0, 1) the GPU uses for element `i` at `step` of a seed.
pub fn uniform(seed_lo: u32, seed_hi: u32, step: u32, i: u32) -> f32 {
    let key = mix32(step ^ mix32(seed_lo ^ mix32(seed_hi ^ 0x9e37_79b9)));
    let h = mix32(mix32(i ^ key).wrapping_add(key));
    ((h >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

/// Gumbel noise −ln(−ln u) for element `i` of a row's current step (computed in f64).
pub fn gumbel(row: &SampleRow, i: u32) -> f64 {
    let u = uniform(row.seed_lo, row.seed_hi, row.step, i) as f64;
    -(-u.ln()).ln()
}

/// The score the draw maximises for each kept id (x, or x + Gumbel when sampling), or
/// None for removed ids.
pub fn scores(x: &[f32], row: &SampleRow) -> Vec<Option<f64>> {
    let keep = kept(x, row);
    x.iter()
        .enumerate()
        .map(|(i, &v)| keep[i].then(|| if row.temperature > 0.0 { v as f64 + gumbel(row, i as u32) } else { v as f64 }))
        .collect()
}

/// The id the step picks from a processed row: the best score, ties to the smallest id.
pub fn draw(x: &[f32], row: &SampleRow) -> u32 {
    let mut best: Option<(f64, usize)> = None;
    for (i, s) in scores(x, row).into_iter().enumerate() {
        if let Some(s) = s {
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, i));
            }
        }
    }
    best.map_or(0, |(_, i)| i as u32)
}

/// `log softmax(raw)[id]` in f64 (NaN and −inf logits count as LOWEST).
pub fn logprob(raw: &[f32], id: usize) -> f64 {
    let xs: Vec<f64> = raw.iter().map(|&v| sanitize(v) as f64).collect();
    let m = xs.iter().cloned().fold(f64::MIN, f64::max);
    let lse = m + xs.iter().map(|&v| (v - m).exp()).sum::<f64>().ln();
    xs[id] - lse
}
