//! CPU twin for wgsl/logprobs.wgsl, in f64: per row, the target's log-prob, the entropy
//! of the softmax in nats, the target's rank and the argmax id.

/// One row's scores, as the kernel writes them (`[logprob, entropy, rank, argmax]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowScore {
    /// Natural-log probability of the target under the row's softmax.
    pub logprob: f64,
    /// Entropy of the row's softmax, in nats.
    pub entropy: f64,
    /// 1 + the number of entries larger than the target's logit.
    pub rank: f64,
    /// Smallest index of the row's largest non-NaN value.
    pub argmax: u32,
}

impl RowScore {
    /// The four columns as the kernel writes them: `[logprob, entropy, rank, argmax]` as f32.
    pub fn to_f32(self) -> [f32; 4] {
        [self.logprob as f32, self.entropy as f32, self.rank as f32, self.argmax as f32]
    }
}

/// Scores of one row of logits against `target`. -inf and NaN entries have probability
/// 0; an all-masked row gives (-inf, 0, 1, 0); a target out of range gives NaN log-prob
/// and rank. The argmax is the smallest index of the largest non-NaN value.
pub fn row_score(row: &[f32], target: u32) -> RowScore {
    let masked = |v: f32| v.is_nan() || v == f32::NEG_INFINITY;
    let live = || row.iter().copied().filter(|&v| !masked(v)).map(f64::from);
    let argmax = crate::reference::argmax::argmax(row, row.len())[0];
    let Some(&xt) = row.get(target as usize) else {
        let entropy = entropy(live());
        return RowScore { logprob: f64::NAN, entropy, rank: f64::NAN, argmax };
    };
    let xt = if xt.is_nan() { f32::NEG_INFINITY } else { xt };
    let rank = 1 + row.iter().filter(|&&v| !masked(v) && v > xt).count();
    let logprob = match live().fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))) {
        Some(m) if !masked(xt) => {
            let s: f64 = live().map(|v| (v - m).exp()).sum();
            f64::from(xt) - m - s.ln()
        }
        _ => f64::NEG_INFINITY,
    };
    RowScore { logprob, entropy: entropy(live()), rank: rank as f64, argmax }
}

/// -Σ p ln p of softmax over `values` (0 for no values), directly from the probabilities.
fn entropy(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let Some(m) = values.clone().reduce(f64::max) else { return 0.0 };
    let log_s = values.clone().map(|v| (v - m).exp()).sum::<f64>().ln();
    values
        .map(|v| v - m - log_s) // ln p
        .filter(|lp| lp.exp() > 0.0)
        .map(|lp| -lp.exp() * lp)
        .sum()
}

/// `[rows, 4]` (row-major, as the kernel's `out`) for logits `[rows, n]` and one target per row.
pub fn token_logprobs(logits: &[f32], n: usize, targets: &[u32]) -> Vec<f32> {
    logits.chunks(n).zip(targets).flat_map(|(row, &t)| row_score(row, t).to_f32()).collect()
}
