//! Multiple-choice evaluation with calibration: lm-evaluation-harness's log-likelihood
//! scoring of each choice given a context, accuracy under three length conventions, and
//! how well the model's confidence matches its accuracy (expected calibration error,
//! its bins, the Brier score). See docs/eval.md.
//!
//! One item is a context, its choices and the index of the right one. Choice `j` is
//! scored as the continuation `delimiter + choices[j]` of the context
//! ([`crate::score::score_answer_only`]: answer tokens only, trailing whitespace of the context
//! moved to the continuation, as lm-eval's `_encode_pair`), giving its log-likelihood
//! `ll_j = Σ ln p(answer token | everything before it)`. Then, per item:
//!
//! | prediction | rule | lm-eval |
//! |---|---|---|
//! | `pred` | `argmax_j ll_j` | `acc` |
//! | `pred_norm` | `argmax_j ll_j / chars(choices[j])` | `acc_norm` |
//! | `pred_per_token` | `argmax_j ll_j / tokens_j` | (none) |
//!
//! (`argmax` takes the first of equal values, as `np.argmax`; `chars` counts Unicode
//! scalar values, as Python's `len`.) Each accuracy is the mean of its 0/1 hits, with
//! lm-eval's standard error `sample_std(hits) / sqrt(n)` (n − 1 in the variance).
//!
//! Calibration uses the choices' softmax `p_j = exp(ll_j) / Σ_k exp(ll_k)`: the
//! confidence is `p_pred`, correct when `pred` is the gold index. ECE over `bins` equal
//! bins `(lo, hi]` is `Σ_b (n_b / n) |accuracy_b − confidence_b|`; the Brier score is the
//! mean over items of `Σ_j (p_j − [j = gold])²`.

use kiln_model::{Model, Tokenizer};
use kiln_tensor::Device;

use crate::error::{param_error, Result};
use crate::score::score_answer_only;

/// One multiple-choice item.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The text every choice continues.
    pub context: String,
    /// The candidate continuations (at least one, none empty).
    pub choices: Vec<String>,
    /// Index of the right choice.
    pub gold: usize,
}

impl Item {
    /// Checks the item: `where_` names it in errors (e.g. `task.jsonl:3`).
    pub fn check(&self, where_: &str) -> Result<()> {
        if self.choices.is_empty() {
            return Err(param_error("choices", format!("{where_}: has no choices")));
        }
        if let Some(j) = self.choices.iter().position(String::is_empty) {
            return Err(param_error("choices", format!("{where_}: choice {j} is empty")));
        }
        if self.gold >= self.choices.len() {
            return Err(param_error(
                "gold",
                format!("{where_}: gold is {} but there are {} choices", self.gold, self.choices.len()),
            ));
        }
        Ok(())
    }
}

/// The score of one choice.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceScore {
    /// Σ log-prob of the continuation's tokens (nats): lm-eval's log-likelihood.
    pub loglikelihood: f64,
    /// Tokens the continuation was scored over.
    pub tokens: usize,
    /// Unicode scalar values of the choice (without the delimiter), `acc_norm`'s divisor.
    pub chars: usize,
    /// Every continuation token was the argmax of its position (lm-eval's `is_greedy`).
    pub greedy: bool,
}

/// One item's scores and predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemResult {
    /// Scores of the choices, in order.
    pub choices: Vec<ChoiceScore>,
    /// Index of the right choice.
    pub gold: usize,
    /// `argmax ll_j`.
    pub pred: usize,
    /// `argmax ll_j / chars_j`.
    pub pred_norm: usize,
    /// `argmax ll_j / tokens_j`.
    pub pred_per_token: usize,
    /// Softmax of the log-likelihoods over the choices.
    pub probs: Vec<f64>,
}

impl ItemResult {
    /// The result for these choice scores: predictions and the softmax over choices.
    pub fn new(choices: Vec<ChoiceScore>, gold: usize) -> ItemResult {
        let lls: Vec<f64> = choices.iter().map(|c| c.loglikelihood).collect();
        let norm: Vec<f64> = choices.iter().map(|c| c.loglikelihood / c.chars as f64).collect();
        let per_token: Vec<f64> = choices.iter().map(|c| c.loglikelihood / c.tokens.max(1) as f64).collect();
        let max = lls.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = lls.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        ItemResult {
            gold,
            pred: argmax(&lls),
            pred_norm: argmax(&norm),
            pred_per_token: argmax(&per_token),
            probs: exps.iter().map(|e| e / total).collect(),
            choices,
        }
    }

    /// The probability the model gives its prediction (`probs[pred]`).
    pub fn confidence(&self) -> f64 {
        self.probs[self.pred]
    }

    /// `pred == gold`.
    pub fn correct(&self) -> bool {
        self.pred == self.gold
    }
}

/// The first index of the largest value (`np.argmax`; NaN never wins).
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() && !x.is_nan() {
            best = i;
        }
    }
    best
}

/// Score every choice of `item` as the continuation `delimiter + choice` of its context.
pub fn score_item(dev: &Device, model: &Model, tokenizer: &Tokenizer, item: &Item, delimiter: &str) -> Result<ItemResult> {
    item.check("item")?;
    let mut choices = Vec::with_capacity(item.choices.len());
    for choice in &item.choices {
        let a = score_answer_only(dev, model, tokenizer, &item.context, &format!("{delimiter}{choice}"))?;
        let t = &a.answer_totals;
        choices.push(ChoiceScore {
            loglikelihood: t.sum_logprob,
            tokens: t.tokens,
            chars: choice.chars().count(),
            greedy: t.greedy,
        });
    }
    Ok(ItemResult::new(choices, item.gold))
}

/// An accuracy with its standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    /// Mean of the 0/1 hits.
    pub value: f64,
    /// `sample_std(hits) / sqrt(n)`; `None` below two items.
    pub stderr: Option<f64>,
}

impl Accuracy {
    fn of(hits: impl Iterator<Item = bool>) -> Accuracy {
        let hits: Vec<f64> = hits.map(|h| if h { 1.0 } else { 0.0 }).collect();
        let n = hits.len() as f64;
        let value = hits.iter().sum::<f64>() / n;
        let stderr = (hits.len() >= 2).then(|| {
            let var = hits.iter().map(|h| (h - value).powi(2)).sum::<f64>() / (n - 1.0);
            (var / n).sqrt()
        });
        Accuracy { value, stderr }
    }
}

/// One calibration bin: the items whose confidence is in `(lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bin {
    /// Lower edge (excluded).
    pub lo: f64,
    /// Upper edge (included).
    pub hi: f64,
    /// Items in the bin.
    pub count: usize,
    /// Fraction of them predicted right (0 when empty).
    pub accuracy: f64,
    /// Their mean confidence (0 when empty).
    pub confidence: f64,
}

/// Expected calibration error over `bins` equal-width bins `(lo, hi]` of [0, 1], and the
/// bins (seed 003's convention: a confidence of exactly 0 falls in no bin).
pub fn calibration(confidence: &[f64], correct: &[bool], bins: usize) -> (f64, Vec<Bin>) {
    let n = confidence.len();
    let mut out = Vec::with_capacity(bins);
    let mut ece = 0.0;
    // Edges as np.linspace(0, 1, bins + 1) computes them (b · step, the last exactly 1),
    // so a confidence on an edge lands in the same bin as in NumPy.
    let step = 1.0 / bins as f64;
    let edge = |b: usize| if b == bins { 1.0 } else { b as f64 * step };
    for b in 0..bins {
        let (lo, hi) = (edge(b), edge(b + 1));
        let members: Vec<usize> = (0..n).filter(|&i| confidence[i] > lo && confidence[i] <= hi).collect();
        let count = members.len();
        let (accuracy, mean_conf) = if count == 0 {
            (0.0, 0.0)
        } else {
            let right = members.iter().filter(|&&i| correct[i]).count() as f64;
            (right / count as f64, members.iter().map(|&i| confidence[i]).sum::<f64>() / count as f64)
        };
        if count > 0 {
            ece += count as f64 / n as f64 * (accuracy - mean_conf).abs();
        }
        out.push(Bin { lo, hi, count, accuracy, confidence: mean_conf });
    }
    (ece, out)
}

/// Every metric of an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Items evaluated.
    pub items: usize,
    /// Accuracy of `pred` (sum of log-probs; lm-eval's `acc`).
    pub acc: Accuracy,
    /// Accuracy of `pred_norm` (per character; lm-eval's `acc_norm`).
    pub acc_norm: Accuracy,
    /// Accuracy of `pred_per_token` (mean log-prob per token).
    pub acc_per_token: Accuracy,
    /// Expected calibration error of `pred`'s confidence.
    pub ece: f64,
    /// The bins the ECE was computed over.
    pub bins: Vec<Bin>,
    /// Mean over items of `Σ_j (p_j − [j = gold])²`.
    pub brier: f64,
}

/// The metrics of `results` with `bins` calibration bins (an error with no results or
/// no bins).
pub fn report(results: &[ItemResult], bins: usize) -> Result<Report> {
    if results.is_empty() {
        return Err(param_error("items", "none to evaluate"));
    }
    if bins == 0 {
        return Err(param_error("bins", "must be at least 1"));
    }
    let conf: Vec<f64> = results.iter().map(ItemResult::confidence).collect();
    let correct: Vec<bool> = results.iter().map(ItemResult::correct).collect();
    let (ece, bin_list) = calibration(&conf, &correct, bins);
    let brier = results
        .iter()
        .map(|r| r.probs.iter().enumerate().map(|(j, p)| (p - if j == r.gold { 1.0 } else { 0.0 }).powi(2)).sum::<f64>())
        .sum::<f64>()
        / results.len() as f64;
    Ok(Report {
        items: results.len(),
        acc: Accuracy::of(results.iter().map(|r| r.pred == r.gold)),
        acc_norm: Accuracy::of(results.iter().map(|r| r.pred_norm == r.gold)),
        acc_per_token: Accuracy::of(results.iter().map(|r| r.pred_per_token == r.gold)),
        ece,
        bins: bin_list,
        brier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(ll: f64, tokens: usize, chars: usize) -> ChoiceScore {
        ChoiceScore { loglikelihood: ll, tokens, chars, greedy: false }
    }

    /// Seed 003's ECE example (10 predictions, 5 bins): the notebook prints ECE 0.285.
    #[test]
    fn calibration_matches_seed_003() {
        let conf = [0.95, 0.90, 0.85, 0.80, 0.75, 0.70, 0.60, 0.55, 0.45, 0.30];
        let correct = [true, true, false, true, false, true, false, false, false, false];
        let (ece, bins) = calibration(&conf, &correct, 5);
        // (0.2,0.4]: {0.30} acc 0 conf .30; (0.4,0.6]: {.60,.55,.45} acc 0 conf .5333;
        // (0.6,0.8]: {.80,.75,.70} acc 2/3 conf .75; (0.8,1.0]: {.95,.90,.85} acc 2/3 conf .9.
        let want = 0.1 * 0.30 + 0.3 * (1.6 / 3.0) + 0.3 * (0.75 - 2.0 / 3.0) + 0.3 * (0.9 - 2.0 / 3.0);
        assert!((ece - want).abs() < 1e-12, "{ece} vs {want}");
        assert!((ece - 0.285).abs() < 1e-12);
        assert_eq!(bins.iter().map(|b| b.count).collect::<Vec<_>>(), vec![0, 1, 3, 3, 3]);
    }

    #[test]
    fn predictions_follow_each_convention() {
        // Sum favours the short choice; per char and per token the long one.
        let r = ItemResult::new(vec![choice(-2.0, 1, 2), choice(-3.0, 6, 12)], 1);
        assert_eq!((r.pred, r.pred_norm, r.pred_per_token), (0, 1, 1));
        let p0 = 1.0 / (1.0 + (-1.0f64).exp());
        assert!((r.probs[0] - p0).abs() < 1e-12 && (r.confidence() - p0).abs() < 1e-12);
        assert!(!r.correct());
        // Ties go to the first choice, as np.argmax.
        assert_eq!(ItemResult::new(vec![choice(-1.0, 1, 1), choice(-1.0, 1, 1)], 0).pred, 0);
    }

    #[test]
    fn report_has_lm_eval_stderr_and_brier() {
        let right = ItemResult::new(vec![choice(-0.1, 1, 1), choice(-5.0, 1, 1)], 0);
        let wrong = ItemResult::new(vec![choice(-0.1, 1, 1), choice(-5.0, 1, 1)], 1);
        let rep = report(&[right.clone(), wrong.clone(), right.clone(), right], 10).unwrap();
        assert_eq!(rep.acc.value, 0.75);
        // sample std of [1,0,1,1] = 0.5; / sqrt(4) = 0.25
        assert!((rep.acc.stderr.unwrap() - 0.25).abs() < 1e-12);
        let p = wrong.probs[0];
        let want = (3.0 * ((p - 1.0).powi(2) + (1.0 - p).powi(2)) + (p.powi(2) + (1.0 - p - 1.0).powi(2))) / 4.0;
        assert!((rep.brier - want).abs() < 1e-12, "{} vs {want}", rep.brier);
        assert!(report(&[], 10).is_err());
        assert_eq!(report(&[wrong], 10).unwrap().acc.stderr, None);
    }

    #[test]
    fn bad_items_are_named() {
        let item = |choices: &[&str], gold| Item {
            context: "c".into(),
            choices: choices.iter().map(|s| s.to_string()).collect(),
            gold,
        };
        let e = item(&["a", "b"], 2).check("t.jsonl:3").unwrap_err().to_string();
        assert!(e.contains("t.jsonl:3") && e.contains("gold is 2"), "{e}");
        let e = item(&["a", ""], 0).check("t.jsonl:4").unwrap_err().to_string();
        assert!(e.contains("choice 1 is empty"), "{e}");
        assert!(item(&[], 0).check("x").is_err());
    }
}
