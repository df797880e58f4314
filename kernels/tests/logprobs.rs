//! logprobs.wgsl (token_logprobs) vs its f64 CPU twin: row lengths that are not multiples
//! of the workgroup, a vocabulary-sized row, ±1e4 logits, -inf and NaN entries, ties for
//! the rank, and more rows than one grid dimension holds.
//! Log-prob and entropy within `tolerance::LOGPROBS`; rank and argmax exact.

use kiln_kernels::logprobs::{self, COLS};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{reference, tolerance, DType, Device, Recorder, Tensor};

/// Run token_logprobs on x `[rows, n]`, compare with the twin column by column and
/// return the GPU's `[rows, 4]`.
fn check(what: &str, dev: &Device, x: &[f32], n: usize, targets: &[u32]) -> Vec<[f32; 4]> {
    let rows = targets.len();
    let tx = Tensor::from_slice(dev, x, &[rows, n]).unwrap();
    let tt = Tensor::from_slice(dev, targets, &[rows]).unwrap();
    let out = Tensor::empty(dev, &[rows, COLS], DType::F32).unwrap();
    let mut rec = Recorder::new(dev);
    logprobs::token_logprobs(&mut rec, &tx, &tt, &out).unwrap();
    rec.submit().unwrap();
    let got = out.to_vec_f32().unwrap();
    let want = reference::logprobs::token_logprobs(x, n, targets);
    let column = |v: &[f32], c: usize| v.chunks(COLS).map(|r| r[c]).collect::<Vec<f32>>();
    for (c, name, tol) in [
        (logprobs::LOGPROB, "logprob", tolerance::LOGPROBS),
        (logprobs::ENTROPY, "entropy", tolerance::LOGPROBS),
        (logprobs::RANK, "rank", tolerance::EXACT),
        (logprobs::ARGMAX, "argmax", tolerance::EXACT),
    ] {
        match tolerance::compare(&format!("{what}: {name}"), &column(&got, c), &column(&want, c), tol) {
            Ok(r) if c == logprobs::LOGPROB || c == logprobs::ENTROPY => eprintln!("{what}: {name} {r}"),
            Ok(_) => {}
            Err(msg) => panic!("{msg}"),
        }
    }
    got.chunks(COLS).map(|r| [r[0], r[1], r[2], r[3]]).collect()
}

fn random_targets(rng: &mut Rng, rows: usize, n: usize) -> Vec<u32> {
    (0..rows).map(|_| rng.below(n as u32)).collect()
}

#[test]
fn odd_row_lengths_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(41);
    for &n in &[1usize, 2, 3, 17, 255, 256, 257, 1000, 4099] {
        let rows = 6;
        let x = rng.vec(rows * n, 8.0);
        let mut targets = random_targets(&mut rng, rows, n);
        // The first and the last entry as targets too.
        targets[0] = 0;
        targets[1] = n as u32 - 1;
        check(&format!("random n={n}"), &dev, &x, n, &targets);
    }
}

#[test]
fn vocab_sized_rows_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(42);
    let n = 151936;
    let rows = 3;
    let mut x = rng.vec(rows * n, 15.0);
    x[123457] = 40.0; // row 0: a confident prediction
    let targets = [123457, 5, (n - 1) as u32];
    let got = check("n=151936", &dev, &x, n, &targets);
    assert_eq!(got[0][2], 1.0, "the row's maximum has rank 1");
    assert_eq!(got[0][3], 123457.0, "argmax");
}

#[test]
fn large_magnitudes_do_not_overflow() {
    let dev = test_device();
    let mut rng = Rng::new(43);
    for &n in &[7usize, 300, 5000] {
        // Row 0: all of ±1e4; row 1: moderate values with a few ±1e4 spikes; row 2: all
        // near +1e4 (differences of a few units matter, e^1e4 would overflow).
        let mut x = rng.vec(3 * n, 1e4);
        for i in 0..n {
            x[n + i] = rng.uniform(5.0);
            x[2 * n + i] = 1e4 + rng.uniform(3.0);
        }
        x[n] = 1e4;
        x[n + n / 2] = -1e4;
        let targets = [rng.below(n as u32), 0, rng.below(n as u32)];
        let got = check(&format!("±1e4 n={n}"), &dev, &x, n, &targets);
        assert!(got.iter().all(|r| r.iter().all(|v| v.is_finite() || *v == f32::NEG_INFINITY)), "{got:?}");
    }
}

#[test]
fn masked_and_nan_entries() {
    let dev = test_device();
    let mut rng = Rng::new(44);
    for &n in &[1usize, 5, 33, 1000] {
        // Row 0: random with -inf sprinkled and a -inf target; row 1: random with NaNs and
        // a NaN target; row 2: all -inf; row 3: all NaN; row 4: -inf everywhere but one
        // entry (probability 1, entropy 0); row 5: random with -inf, a finite target.
        let mut x = rng.vec(6 * n, 6.0);
        for i in 0..n {
            if rng.below(3) == 0 {
                x[i] = f32::NEG_INFINITY;
                x[5 * n + i] = f32::NEG_INFINITY;
            }
            if rng.below(3) == 0 {
                x[n + i] = f32::NAN;
            }
            x[2 * n + i] = f32::NEG_INFINITY;
            x[3 * n + i] = f32::NAN;
            x[4 * n + i] = f32::NEG_INFINITY;
        }
        let last = n as u32 - 1;
        x[n - 1] = f32::NEG_INFINITY;
        x[n + (n - 1)] = f32::NAN;
        x[4 * n + n / 2] = 3.0;
        x[5 * n] = 2.0;
        let targets = [last, last, 0, 0, (n / 2) as u32, 0];
        let got = check(&format!("masked n={n}"), &dev, &x, n, &targets);
        assert_eq!(got[0][0], f32::NEG_INFINITY, "a -inf target has log-prob -inf");
        assert_eq!(got[1][0], f32::NEG_INFINITY, "a NaN target has log-prob -inf");
        assert_eq!(got[2], [f32::NEG_INFINITY, 0.0, 1.0, 0.0], "all -inf row");
        assert_eq!(got[3], [f32::NEG_INFINITY, 0.0, 1.0, 0.0], "all NaN row");
        assert_eq!(got[4], [0.0, 0.0, 1.0, (n / 2) as f32], "one live entry");
    }
}

#[test]
fn ties_share_the_best_rank() {
    let dev = test_device();
    let mut rng = Rng::new(45);
    for &n in &[4usize, 17, 300, 2000] {
        let rows = 8;
        // Few distinct values: many ties, spread over different invocations' slices.
        let x: Vec<f32> = (0..rows * n).map(|_| rng.below(4) as f32).collect();
        let targets = random_targets(&mut rng, rows, n);
        check(&format!("ties n={n}"), &dev, &x, n, &targets);
        // A constant row: uniform distribution, entropy ln n, every target rank 1, argmax 0.
        let constant = vec![1.5f32; n];
        let got = check(&format!("constant n={n}"), &dev, &constant, n, &[(n - 1) as u32]);
        assert_eq!((got[0][2], got[0][3]), (1.0, 0.0));
        assert!((got[0][1] - (n as f32).ln()).abs() < 1e-4, "entropy {} vs ln n", got[0][1]);
    }
}

#[test]
fn rows_beyond_one_grid_dimension() {
    let dev = test_device();
    let mut rng = Rng::new(46);
    let rows = 70_000;
    let n = 3;
    let x = rng.vec(rows * n, 4.0);
    let targets = random_targets(&mut rng, rows, n);
    check("70000 rows", &dev, &x, n, &targets);
}

#[test]
fn target_out_of_range_gives_nan() {
    let dev = test_device();
    let got = check("bad target", &dev, &[1.0, 2.0, 3.0], 3, &[3]);
    assert!(got[0][0].is_nan() && got[0][2].is_nan(), "{got:?}");
    assert_eq!(got[0][3], 2.0);
}

#[test]
fn bad_shapes_and_dtypes_are_clear_errors() {
    let dev = test_device();
    let x = Tensor::from_slice(&dev, &[1.0f32; 6], &[2, 3]).unwrap();
    let t = Tensor::from_slice(&dev, &[0u32; 2], &[2]).unwrap();
    let out = Tensor::empty(&dev, &[2, 4], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    let expect = |r: kiln_kernels::Result<()>, want: &str| {
        let err = r.unwrap_err().to_string();
        assert!(err.contains("token_logprobs") && err.contains(want), "{err}");
    };
    let wrong_out = Tensor::empty(&dev, &[2, 3], DType::F32).unwrap();
    expect(logprobs::token_logprobs(&mut rec, &x, &t, &wrong_out), "out must have shape [2, 4], got [2, 3]");
    let wrong_t = Tensor::from_slice(&dev, &[0u32; 3], &[3]).unwrap();
    expect(logprobs::token_logprobs(&mut rec, &x, &wrong_t, &out), "targets must have shape [2], got [3]");
    let float_t = Tensor::from_slice(&dev, &[0f32; 2], &[2]).unwrap();
    expect(logprobs::token_logprobs(&mut rec, &x, &float_t, &out), "targets must be u32, got f32");
    let int_x = Tensor::from_slice(&dev, &[0u32; 6], &[2, 3]).unwrap();
    expect(logprobs::token_logprobs(&mut rec, &int_x, &t, &out), "logits must be f32, got u32");
    let flat = Tensor::from_slice(&dev, &[1.0f32; 6], &[6]).unwrap();
    expect(logprobs::token_logprobs(&mut rec, &flat, &t, &out), "logits must be [rows, vocab], got [6]");
    let x4 = Tensor::from_slice(&dev, &[1.0f32; 8], &[2, 4]).unwrap();
    expect(logprobs::token_logprobs(&mut rec, &x4, &t, &x4), "different buffer");
}
