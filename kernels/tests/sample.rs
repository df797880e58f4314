//! sample.wgsl vs its CPU twin: logits processing, the kept sets of top-k / top-p /
//! min-p (exact), the Gumbel-max draw, log-probs, and the empirical distribution of
//! 20,000 draws against softmax(logits / T) (chi-square, p > 0.001).

use kiln_kernels::reference::sample as twin;
use kiln_kernels::sample::{step, SampleBuffers, SampleRow, SampleState, StepPlan, HISTORY_PROMPT_BIT};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{tolerance, Device, Recorder, Tensor};

/// One step over `rows` rows of `logits` `[rows, n]`; returns the tokens, the GPU's
/// processed logits, the states and the log-probs.
struct Stepped {
    tokens: Vec<u32>,
    processed: Vec<f32>,
    states: Vec<SampleState>,
    logprobs: Vec<f32>,
}

fn run(
    dev: &Device,
    logits: &[f32],
    n: usize,
    rows: &[SampleRow],
    history: Option<&[u32]>,
    bias: Option<&[f32]>,
) -> Stepped {
    let b = SampleBuffers::new(dev, rows, n, history, bias).unwrap();
    let t = Tensor::from_slice(dev, logits, &[rows.len(), n]).unwrap();
    let mut rec = Recorder::new(dev);
    step(&mut rec, &t, &b, StepPlan::for_rows(rows, true)).unwrap();
    rec.submit().unwrap();
    Stepped {
        tokens: b.token.to_vec_u32().unwrap(),
        processed: b.processed.to_vec_f32().unwrap(),
        states: b.read_state().unwrap(),
        logprobs: b.logprob.to_vec_f32().unwrap(),
    }
}

fn sampling(temperature: f32, seed: u64) -> SampleRow {
    SampleRow { temperature, ..SampleRow::greedy() }.with_seed(seed)
}

/// Inverse of the WGSL order key (for reading the threshold back as a value).
fn key_value(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 { k & 0x7fff_ffff } else { !k })
}

/// The ids the GPU kept: processed value ≥ the threshold value (and min-p).
fn gpu_kept(x: &[f32], st: &SampleState, row: &SampleRow) -> Vec<bool> {
    let t = if st.thr == 0 { f32::NEG_INFINITY } else { key_value(st.thr) };
    x.iter().map(|&v| v >= t && (row.min_p == 0.0 || ((v - st.max).max(-200.0)).exp() >= row.min_p)).collect()
}

/// The twin's score of the GPU's choice must be (within rounding) the best score.
fn check_draw(what: &str, x: &[f32], row: &SampleRow, got: u32) {
    let scores = twin::scores(x, row);
    let best = scores.iter().flatten().cloned().fold(f64::MIN, f64::max);
    let Some(s) = scores[got as usize] else {
        panic!("{what}: the GPU drew id {got}, which the twin removed");
    };
    // f32 Gumbel noise on the GPU vs f64 here: 1e-4 absolute on scores of magnitude ≤ 100.
    assert!(
        best - s <= 1e-4 * best.abs().max(1.0),
        "{what}: GPU id {got} scores {s}, the best is {best} (twin picks {})",
        twin::draw(x, row)
    );
}

#[test]
fn processing_matches_twin() {
    let dev = test_device();
    let mut rng = Rng::new(41);
    for &n in &[7usize, 1000, 1025, 5003] {
        let logits = rng.vec(n, 8.0);
        let history: Vec<u32> = (0..n)
            .map(|_| match rng.below(6) {
                0 => HISTORY_PROMPT_BIT,
                1 => 1,
                2 => HISTORY_PROMPT_BIT | 3,
                _ => 0,
            })
            .collect();
        let bias: Vec<f32> = (0..n)
            .map(|_| match rng.below(10) {
                0 => f32::NEG_INFINITY,
                1 => 5.0,
                2 => -2.5,
                _ => 0.0,
            })
            .collect();
        let row = SampleRow {
            repetition_penalty: 1.3,
            frequency_penalty: 0.5,
            presence_penalty: -0.25,
            has_bias: 1,
            ..sampling(0.7, 1)
        };
        let got = run(&dev, &logits, n, &[row], Some(&history), Some(&bias));
        let want = twin::process(&logits, &history, Some(&bias), &row);
        if let Err(msg) =
            tolerance::compare(&format!("process n={n}"), &got.processed, &want, tolerance::SAMPLE_PROCESS)
        {
            panic!("{msg}");
        }
        // A banned id is never drawn.
        assert!(bias[got.tokens[0] as usize] != f32::NEG_INFINITY, "n={n}: drew a banned id");
    }
}

#[test]
fn kept_sets_match_twin_exactly() {
    let dev = test_device();
    let mut rng = Rng::new(42);
    let cases: &[(usize, u32, f32, f32)] = &[
        // (n, top_k, top_p, min_p)
        (50, 5, 1.0, 0.0),
        (50, 0, 0.9, 0.0),
        (50, 0, 1.0, 0.05),
        (1000, 40, 0.95, 0.0),
        (1025, 0, 0.5, 0.0),
        (4099, 100, 0.8, 0.01),
        (151936, 50, 0.9, 0.0),
        (151936, 0, 0.95, 0.02),
    ];
    for &(n, top_k, top_p, min_p) in cases {
        for (scale, temperature) in [(4.0f32, 1.0f32), (30.0, 0.6), (1.0e4, 100.0)] {
            let logits = rng.vec(n, scale);
            let row = SampleRow { top_k, top_p, min_p, ..sampling(temperature, 7) };
            let got = run(&dev, &logits, n, &[row], None, None);
            let x = &got.processed;
            let want = twin::kept(x, &row);
            let have = gpu_kept(x, &got.states[0], &row);
            let what = format!("n={n} k={top_k} p={top_p} min_p={min_p} scale={scale}");
            let differ: Vec<usize> = (0..n).filter(|&i| want[i] != have[i]).collect();
            assert!(
                differ.is_empty(),
                "{what}: kept sets differ at ids {:?} (twin keeps {}, GPU {})",
                &differ[..differ.len().min(8)],
                want.iter().filter(|&&k| k).count(),
                have.iter().filter(|&&k| k).count()
            );
            if top_k > 0 {
                assert!(want.iter().filter(|&&k| k).count() <= top_k as usize, "{what}: more than k kept");
            }
            check_draw(&what, x, &row, got.tokens[0]);
        }
    }
}

#[test]
fn ties_at_the_top_k_boundary_are_kept() {
    let dev = test_device();
    // Values 0..9 each appearing 3 times: top-4 keeps the six ids at values 9 and 8.
    let n = 30;
    let logits: Vec<f32> = (0..n).map(|i| (i % 10) as f32).collect();
    let row = SampleRow { top_k: 4, ..sampling(1.0, 3) };
    let got = run(&dev, &logits, n, &[row], None, None);
    let have = gpu_kept(&got.processed, &got.states[0], &row);
    let kept: Vec<usize> = (0..n).filter(|&i| have[i]).collect();
    assert_eq!(kept, vec![8, 9, 18, 19, 28, 29]);
    assert_eq!(have, twin::kept(&got.processed, &row));
}

#[test]
fn greedy_takes_the_argmax_and_ignores_filters() {
    let dev = test_device();
    let mut rng = Rng::new(43);
    for &n in &[3usize, 1023, 1024, 1025, 151936] {
        let mut logits = rng.vec(n, 20.0);
        logits[n / 3] = 25.0;
        logits[n - 1] = 25.0; // a tie: the smaller id wins
        let row = SampleRow { top_k: 1, top_p: 0.1, ..SampleRow::greedy() };
        let got = run(&dev, &logits, n, &[row], None, None);
        assert_eq!(got.tokens[0] as usize, n / 3, "n={n}");
        let lp = twin::logprob(&logits, n / 3);
        assert!((got.logprobs[0] as f64 - lp).abs() < 1e-4, "n={n}: logprob {} vs twin {lp}", got.logprobs[0]);
    }
}

#[test]
fn draws_match_twin_on_many_rows_and_seeds() {
    let dev = test_device();
    let mut rng = Rng::new(44);
    let n = 3001;
    let rows: Vec<SampleRow> = (0..64u64)
        .map(|r| SampleRow {
            top_k: [0, 20][r as usize % 2],
            top_p: [1.0, 0.9, 0.7][r as usize % 3],
            ..sampling(0.5 + (r % 4) as f32 * 0.5, r * 977)
        })
        .collect();
    let logits = rng.vec(rows.len() * n, 6.0);
    let got = run(&dev, &logits, n, &rows, None, None);
    for (r, row) in rows.iter().enumerate() {
        let x = &got.processed[r * n..(r + 1) * n];
        check_draw(&format!("row {r}"), x, row, got.tokens[r]);
        let lp = twin::logprob(&logits[r * n..(r + 1) * n], got.tokens[r] as usize);
        assert!((got.logprobs[r] as f64 - lp).abs() < 1e-4, "row {r}: logprob {} vs twin {lp}", got.logprobs[r]);
    }
}

#[test]
fn the_same_seed_gives_the_same_tokens_and_steps_advance() {
    let dev = test_device();
    let mut rng = Rng::new(45);
    let n = 2000;
    let logits = rng.vec(n, 2.0);
    let row = SampleRow { top_p: 0.95, ..sampling(1.0, 12345) };
    let b = SampleBuffers::new(&dev, &[row], n, None, None).unwrap();
    let t = Tensor::from_slice(&dev, &logits, &[1, n]).unwrap();
    let draws = |b: &SampleBuffers| -> Vec<u32> {
        (0..8)
            .map(|_| {
                let mut rec = Recorder::new(&dev);
                step(&mut rec, &t, b, StepPlan::for_rows(&[row], false)).unwrap();
                rec.submit().unwrap();
                b.token.to_vec_u32().unwrap()[0]
            })
            .collect()
    };
    let first = draws(&b);
    assert_eq!(b.read_rows().unwrap()[0].step, 8, "each step advances the RNG counter");
    let again = draws(&SampleBuffers::new(&dev, &[row], n, None, None).unwrap());
    assert_eq!(first, again, "same seed, same tokens");
    let other = draws(&SampleBuffers::new(&dev, &[row.with_seed(54321)], n, None, None).unwrap());
    assert_ne!(first, other, "another seed draws other tokens");
    // The history counts what was drawn.
    let history = b.history.to_vec_u32().unwrap();
    for &id in &first {
        assert!(history[id as usize] >= 1);
    }
    assert_eq!(history.iter().sum::<u32>(), 8);
}

/// Chi-square statistic's critical value at p = 0.001 (Wilson–Hilferty).
fn chi2_critical(df: usize) -> f64 {
    let k = df as f64;
    let z = 3.0902; // upper 0.001 quantile of N(0, 1)
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// 20,000 draws of one row (each a different RNG step) against the twin's kept set
/// renormalised: removed ids never appear, kept ids pass a chi-square test.
fn check_distribution(what: &str, logits: &[f32], row: SampleRow) {
    let dev = test_device();
    let n = logits.len();
    let draws = 20_000;
    let rows: Vec<SampleRow> = (0..draws).map(|s| SampleRow { step: s as u32, ..row }).collect();
    let all: Vec<f32> = (0..draws).flat_map(|_| logits.iter().copied()).collect();
    let got = run(&dev, &all, n, &rows, None, None);
    let x = &got.processed[..n];
    let keep = twin::kept(x, &row);
    let m = x.iter().cloned().fold(f32::MIN, f32::max) as f64;
    let w: Vec<f64> = (0..n).map(|i| if keep[i] { (x[i] as f64 - m).exp() } else { 0.0 }).collect();
    let total: f64 = w.iter().sum();
    let mut counts = vec![0usize; n];
    for &t in &got.tokens {
        counts[t as usize] += 1;
    }
    for i in 0..n {
        assert!(keep[i] || counts[i] == 0, "{what}: id {i} was removed but drawn {} times", counts[i]);
    }
    let mut chi2 = 0.0;
    let mut df = 0;
    for i in (0..n).filter(|&i| keep[i]) {
        let expected = draws as f64 * w[i] / total;
        chi2 += (counts[i] as f64 - expected).powi(2) / expected;
        df += 1;
    }
    let crit = chi2_critical(df.max(2) - 1);
    assert!(
        chi2 < crit,
        "{what}: chi-square {chi2:.1} over {df} kept ids exceeds {crit:.1} (p = 0.001); counts {counts:?}"
    );
    eprintln!("{what}: chi-square {chi2:.1} (critical {crit:.1}, {df} kept ids)");
}

fn test_logits() -> Vec<f32> {
    // 24 ids with probabilities spread over two orders of magnitude.
    (0..24).map(|i| ((i * 7) % 24) as f32 * 0.2 - 2.0).collect()
}

#[test]
fn draws_follow_softmax_over_temperature() {
    for t in [1.0f32, 0.5, 2.0] {
        check_distribution(&format!("T={t}"), &test_logits(), sampling(t, 99));
    }
}

#[test]
fn draws_follow_the_filtered_distribution() {
    let logits = test_logits();
    check_distribution("top-k 5", &logits, SampleRow { top_k: 5, ..sampling(1.0, 5) });
    check_distribution("top-p 0.6", &logits, SampleRow { top_p: 0.6, ..sampling(1.0, 6) });
    check_distribution("min-p 0.3", &logits, SampleRow { min_p: 0.3, ..sampling(1.0, 7) });
    check_distribution(
        "k 10, p 0.8, min-p 0.1, T 0.7",
        &logits,
        SampleRow { top_k: 10, top_p: 0.8, min_p: 0.1, ..sampling(0.7, 8) },
    );
}
