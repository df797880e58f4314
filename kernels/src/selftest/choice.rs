//! Cases for the kernels that pick tokens: argmax, the sampling step (greedy ids exact;
//! processed logits, top-k / top-p / min-p kept sets exact and the Gumbel-max draw
//! against the twin), top-N log-probs, per-token log-probs (scoring), and the logit
//! edits of the `logits` hook (`--set-logit`, `--add-logit`; bit-exact).

use kiln_tensor::{DType, Device, Recorder, Tensor};

use super::{Case, CaseResult, Checks};
use crate::logprobs::{self, COLS};
use crate::reference::sample as twin;
use crate::sample::{step, SampleBuffers, SampleRow, SampleState, StepPlan};
use crate::logit_edit::{set_logits, LogitBase, LogitEdit};
use crate::tolerance::{self, Tol};
use crate::{argmax, reference, topn};

/// The log-prob of a drawn id (raw logits, f32 on the GPU vs f64) — as in
/// kernels/tests/sample.rs.
const DRAW_LOGPROB: Tol = Tol { abs: 1e-4, rel: 0.0 };

fn argmax_case(rows: usize, n: usize, scale: f32, ties_and_nans: bool) -> Case {
    let name = format!("argmax/rows{rows}/n{n}/scale{scale}{}", if ties_and_nans { "/ties-nan" } else { "" });
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let mut x = rng.vec(rows * n, scale);
        if ties_and_nans {
            for r in 0..rows {
                let row = &mut x[r * n..(r + 1) * n];
                // The maximum twice (the smaller index wins) and a NaN before it.
                row[n / 3] = scale * 2.0;
                row[n - 1] = scale * 2.0;
                row[0] = f32::NAN;
            }
        }
        let tx = Tensor::from_slice(dev, &x, &[rows, n])?;
        let out = Tensor::empty(dev, &[rows], DType::U32)?;
        let mut rec = Recorder::new(dev);
        argmax::argmax(&mut rec, &tx, &out)?;
        rec.submit()?;
        checks.exact(&name, &out.to_vec_u32()?, &reference::argmax::argmax(&x, n));
        Ok(())
    })
}

/// What one sampling step left on the GPU.
struct Stepped {
    tokens: Vec<u32>,
    processed: Vec<f32>,
    states: Vec<SampleState>,
    logprobs: Vec<f32>,
}

/// One sampling step over `logits` `[rows, n]`.
fn sample_step(dev: &Device, logits: &[f32], n: usize, rows: &[SampleRow]) -> kiln_tensor::Result<Stepped> {
    let b = SampleBuffers::new(dev, rows, n, None, None)?;
    let t = Tensor::from_slice(dev, logits, &[rows.len(), n])?;
    let mut rec = Recorder::new(dev);
    step(&mut rec, &t, &b, StepPlan::for_rows(rows, true))?;
    rec.submit()?;
    Ok(Stepped {
        tokens: b.token.to_vec_u32()?,
        processed: b.processed.to_vec_f32()?,
        states: b.read_state()?,
        logprobs: b.logprob.to_vec_f32()?,
    })
}

/// Greedy rows (with filters set, which greedy ignores): the id must be the argmax,
/// ties to the smaller id, and its log-prob the twin's.
fn greedy_case(rows: usize, n: usize) -> Case {
    let name = format!("sample/greedy/rows{rows}/n{n}");
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let mut logits = rng.vec(rows * n, 20.0);
        for r in 0..rows {
            let row = &mut logits[r * n..(r + 1) * n];
            let at = rng.below(n as u32) as usize;
            row[at] = 25.0;
            row[n - 1] = 25.0;
        }
        let params: Vec<SampleRow> =
            (0..rows).map(|_| SampleRow { top_k: 1, top_p: 0.1, ..SampleRow::greedy() }).collect();
        let Stepped { tokens, logprobs: lps, .. } = sample_step(dev, &logits, n, &params)?;
        checks.exact(&format!("{name}: ids"), &tokens, &reference::argmax::argmax(&logits, n));
        let want: Vec<f32> = tokens
            .iter()
            .enumerate()
            .map(|(r, &t)| twin::logprob(&logits[r * n..(r + 1) * n], t as usize) as f32)
            .collect();
        checks.close(&format!("{name}: logprob"), &lps, &want, DRAW_LOGPROB);
        Ok(())
    })
}

/// Inverse of the WGSL order key (the threshold read back as a value).
fn key_value(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 { k & 0x7fff_ffff } else { !k })
}

/// The ids the GPU kept: processed value ≥ the threshold value (and min-p).
fn gpu_kept(x: &[f32], st: &SampleState, row: &SampleRow) -> Vec<bool> {
    let t = if st.thr == 0 { f32::NEG_INFINITY } else { key_value(st.thr) };
    x.iter().map(|&v| v >= t && (row.min_p == 0.0 || ((v - st.max).max(-200.0)).exp() >= row.min_p)).collect()
}

/// A sampling row with top-k / top-p / min-p: processed logits vs the twin, the kept set
/// exactly, and the drawn id must score (within f32 rounding of the noise) the best of
/// the twin's scores.
fn filter_case(n: usize, top_k: u32, top_p: f32, min_p: f32, scale: f32, temperature: f32) -> Case {
    let name = format!("sample/kept/n{n}/k{top_k}/p{top_p}/min-p{min_p}/scale{scale}/t{temperature}");
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let logits = rng.vec(n, scale);
        let row = SampleRow { temperature, top_k, top_p, min_p, ..SampleRow::greedy() }.with_seed(7);
        let Stepped { tokens, processed: x, states, .. } = sample_step(dev, &logits, n, &[row])?;
        let history = vec![0u32; n];
        checks.close(
            &format!("{name}: processed"),
            &x,
            &twin::process(&logits, &history, None, &row),
            tolerance::SAMPLE_PROCESS,
        );
        let want = twin::kept(&x, &row);
        let have = gpu_kept(&x, &states[0], &row);
        checks.exact_flags(&format!("{name}: kept set"), &have, &want);
        let scores = twin::scores(&x, &row);
        let best = scores.iter().flatten().cloned().fold(f64::MIN, f64::max);
        match scores[tokens[0] as usize] {
            None => checks.fail(format!("{name}: the GPU drew id {}, which the twin removed", tokens[0])),
            Some(s) if best - s > 1e-4 * best.abs().max(1.0) => checks.fail(format!(
                "{name}: GPU id {} scores {s}, the best is {best} (twin picks {})",
                tokens[0],
                twin::draw(&x, &row)
            )),
            Some(_) => {}
        }
        Ok(())
    })
}

/// top-N ids exactly, their log-probs within 1e-5 of the row's magnitude (as
/// kernels/tests/topn.rs).
fn topn_case(rows: usize, n: usize, top: usize, scale: f32, ties: bool) -> Case {
    let name = format!("topn/rows{rows}/n{n}/top{top}/scale{scale}{}", if ties { "/ties-nan" } else { "" });
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let x: Vec<f32> = if ties {
            (0..rows * n).map(|i| if i % 101 == 17 { f32::NAN } else { rng.below(7) as f32 }).collect()
        } else {
            rng.vec(rows * n, scale)
        };
        let tx = Tensor::from_slice(dev, &x, &[rows, n])?;
        let ids = Tensor::empty(dev, &[rows, top], DType::U32)?;
        let lps = Tensor::empty(dev, &[rows, top], DType::F32)?;
        let mut rec = Recorder::new(dev);
        topn::top_logprobs(&mut rec, &tx, &ids, &lps)?;
        rec.submit()?;
        let want = reference::topn::top_logprobs(&x, n, top);
        let want_ids: Vec<u32> = want.iter().flatten().map(|&(id, _)| id).collect();
        checks.exact(&format!("{name}: ids"), &ids.to_vec_u32()?, &want_ids);
        let got_lps = lps.to_vec_f32()?;
        for (r, row) in want.iter().enumerate() {
            let magnitude = x[r * n..(r + 1) * n].iter().filter(|v| v.is_finite()).fold(1.0f32, |a, &v| a.max(v.abs()));
            let want_lps: Vec<f32> = row.iter().map(|&(_, lp)| lp as f32).collect();
            let tol = Tol { abs: 1e-5 * magnitude + 1e-5, rel: 0.0 };
            checks.close(&format!("{name}: row {r} logprobs"), &got_lps[r * top..(r + 1) * top], &want_lps, tol);
        }
        Ok(())
    })
}

/// Per-token log-prob, entropy (within `LOGPROBS`), rank and argmax (exact); `masked`
/// sprinkles −inf and NaN entries.
fn logprobs_case(rows: usize, n: usize, scale: f32, masked: bool) -> Case {
    let name = format!("logprobs/rows{rows}/n{n}/scale{scale}{}", if masked { "/masked" } else { "" });
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let mut x = rng.vec(rows * n, scale);
        if masked {
            for v in x.iter_mut() {
                match rng.below(6) {
                    0 => *v = f32::NEG_INFINITY,
                    1 => *v = f32::NAN,
                    _ => {}
                }
            }
        }
        let mut targets: Vec<u32> = (0..rows).map(|_| rng.below(n as u32)).collect();
        targets[0] = 0;
        targets[rows - 1] = n as u32 - 1;
        let tx = Tensor::from_slice(dev, &x, &[rows, n])?;
        let tt = Tensor::from_slice(dev, &targets, &[rows])?;
        let out = Tensor::empty(dev, &[rows, COLS], DType::F32)?;
        let mut rec = Recorder::new(dev);
        logprobs::token_logprobs(&mut rec, &tx, &tt, &out)?;
        rec.submit()?;
        let got = out.to_vec_f32()?;
        let want = reference::logprobs::token_logprobs(&x, n, &targets);
        let column = |v: &[f32], c: usize| v.chunks(COLS).map(|r| r[c]).collect::<Vec<f32>>();
        checks.close(
            &format!("{name}: logprob"),
            &column(&got, logprobs::LOGPROB),
            &column(&want, logprobs::LOGPROB),
            tolerance::LOGPROBS,
        );
        checks.close(
            &format!("{name}: entropy"),
            &column(&got, logprobs::ENTROPY),
            &column(&want, logprobs::ENTROPY),
            tolerance::LOGPROBS,
        );
        for (c, what) in [(logprobs::RANK, "rank"), (logprobs::ARGMAX, "argmax")] {
            let ints = |v: Vec<f32>| v.into_iter().map(|f| f as u32).collect::<Vec<u32>>();
            checks.exact(&format!("{name}: {what}"), &ints(column(&got, c)), &ints(column(&want, c)));
        }
        Ok(())
    })
}

/// Logit edits in place on `[rows, n]`: sets to a value or to the row's max plus a value,
/// raises, a bias, two edits of one id, and (with `nans`) NaNs in the rows and one row all
/// NaN — every entry bit-exact against the twin (`LOGIT_EDIT` is exact).
fn logit_edit_case(rows: usize, n: usize, scale: f32, nans: bool) -> Case {
    let name = format!("logit_edit/rows{rows}/n{n}/scale{scale}{}", if nans { "/nan" } else { "" });
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let mut x = rng.vec(rows * n, scale);
        if nans {
            for i in (0..x.len()).step_by(7) {
                x[i] = f32::NAN;
            }
            x[(rows - 1) * n..].fill(f32::NAN);
        }
        let bases = [LogitBase::Zero, LogitBase::RowMax, LogitBase::Current];
        let mut edits: Vec<LogitEdit> = (0..6u32)
            .map(|k| LogitEdit { id: rng.below(n as u32), base: bases[k as usize % 3], value: rng.uniform(20.0), raise_only: k >= 3 })
            .collect();
        edits.push(LogitEdit { id: edits[0].id, base: LogitBase::RowMax, value: 1.0, raise_only: true });
        edits.push(LogitEdit { id: n as u32 - 1, base: LogitBase::Zero, value: -scale, raise_only: false });
        let t = Tensor::from_slice(dev, &x, &[rows, n])?;
        let mut rec = Recorder::new(dev);
        set_logits(&mut rec, &t, &edits)?;
        rec.submit()?;
        let mut want = x.clone();
        reference::logit_edit::set_logits(&mut want, n, &edits);
        checks.close(&name, &t.to_vec_f32()?, &want, tolerance::LOGIT_EDIT);
        Ok(())
    })
}

pub(super) fn cases(out: &mut Vec<Case>) {
    for (rows, n, scale, ties) in
        [(1, 1, 1.0, false), (3, 1025, 10.0, true), (4, 4099, 1e4, false), (2, 151936, 20.0, true)]
    {
        out.push(argmax_case(rows, n, scale, ties));
    }
    for (rows, n) in [(1, 3), (3, 1023), (2, 1025), (1, 151936)] {
        out.push(greedy_case(rows, n));
    }
    // (n, top_k, top_p, min_p) at ordinary, sharp and huge logits.
    let filters: [(usize, u32, f32, f32); 6] = [
        (50, 5, 1.0, 0.0),
        (50, 0, 0.9, 0.0),
        (50, 0, 1.0, 0.05),
        (1000, 40, 0.95, 0.0),
        (4099, 100, 0.8, 0.01),
        (151936, 50, 0.9, 0.0),
    ];
    for (n, k, p, min_p) in filters {
        for (scale, temperature) in [(4.0, 1.0), (1.0e4, 100.0)] {
            out.push(filter_case(n, k, p, min_p, scale, temperature));
        }
    }
    for (rows, n, top, scale, ties) in [
        (1, 1, 1, 1.0, false),
        (3, 33, 7, 10.0, false),
        (2, 1025, 32, 10.0, false),
        (1, 3000, 12, 1.0, true),
        (1, 151936, 20, 1e4, false),
    ] {
        out.push(topn_case(rows, n, top, scale, ties));
    }
    for (rows, n, scale, masked) in
        [(2, 1, 1.0, false), (3, 17, 8.0, true), (4, 257, 8.0, false), (3, 4099, 1e4, false), (2, 151936, 15.0, false)]
    {
        out.push(logprobs_case(rows, n, scale, masked));
    }
    for (rows, n, scale, nans) in [(1, 1, 1.0, false), (3, 17, 1e3, false), (3, 4099, 50.0, true), (2, 151936, 1e4, false)] {
        out.push(logit_edit_case(rows, n, scale, nans));
    }
}
