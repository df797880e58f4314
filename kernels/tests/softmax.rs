//! softmax.wgsl vs its CPU twins: odd row lengths, several rows, ±1000 logits,
//! -inf masks (including a fully masked row), a 50257-wide row and a folded grid.

use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{reference, softmax, tolerance, DType, Device, Recorder, Tensor};

/// Run both kernels on `x` of `shape`; returns (softmax, log_softmax) read back.
fn run(dev: &Device, x: &[f32], shape: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let tx = Tensor::from_slice(dev, x, shape).unwrap();
    let probs = Tensor::empty(dev, shape, DType::F32).unwrap();
    let logp = Tensor::empty(dev, shape, DType::F32).unwrap();
    let mut rec = Recorder::new(dev);
    softmax::softmax(&mut rec, &tx, &probs).unwrap();
    softmax::log_softmax(&mut rec, &tx, &logp).unwrap();
    rec.submit().unwrap();
    (probs.to_vec_f32().unwrap(), logp.to_vec_f32().unwrap())
}

/// Compare both outputs with the twins and insist on no NaN.
fn check(what: &str, dev: &Device, x: &[f32], shape: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let n = *shape.last().unwrap();
    let (probs, logp) = run(dev, x, shape);
    assert!(probs.iter().chain(&logp).all(|v| !v.is_nan()), "{what}: NaN in output");
    let tol = tolerance::REDUCTION;
    if let Err(msg) = tolerance::compare(&format!("softmax {what}"), &probs, &reference::softmax::softmax(x, n), tol) {
        panic!("{msg}");
    }
    if let Err(msg) =
        tolerance::compare(&format!("log_softmax {what}"), &logp, &reference::softmax::log_softmax(x, n), tol)
    {
        panic!("{msg}");
    }
    (probs, logp)
}

#[test]
fn odd_row_lengths_and_several_rows_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(11);
    for &n in &[1usize, 3, 17, 33, 127, 256, 1000] {
        for shape in [vec![n], vec![5, n], vec![2, 3, n]] {
            let x = rng.vec(shape.iter().product(), 10.0);
            check(&format!("shape {shape:?}"), &dev, &x, &shape);
        }
    }
}

#[test]
fn vocab_sized_row_matches_twin() {
    let dev = test_device();
    let mut rng = Rng::new(12);
    let n = 50257;
    let x = rng.vec(n, 15.0);
    let (probs, _) = check("n=50257", &dev, &x, &[1, n]);
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
}

#[test]
fn logits_near_plus_minus_1000_are_exact() {
    let dev = test_device();
    let mut rng = Rng::new(13);
    // Known answers first: one dominant logit, and two equal ones.
    let (probs, logp) = run(&dev, &[1000.0, -1000.0, 1000.0, 1000.0], &[2, 2]);
    assert_eq!(probs, vec![1.0, 0.0, 0.5, 0.5]);
    let ln2 = std::f32::consts::LN_2;
    assert!((logp[0]).abs() < 1e-6 && (logp[1] + 2000.0).abs() < 1e-3, "{logp:?}");
    assert!((logp[2] + ln2).abs() < 1e-6 && (logp[3] + ln2).abs() < 1e-6, "{logp:?}");
    for &n in &[3usize, 17, 127, 1000] {
        // Rows all near +1000, all near -1000, and mixing both.
        let mut x = Vec::new();
        x.extend((0..n).map(|_| 1000.0 + rng.uniform(5.0)));
        x.extend((0..n).map(|_| -1000.0 + rng.uniform(5.0)));
        x.extend((0..n).map(|i| if i % 2 == 0 { 1000.0 } else { -1000.0 } + rng.uniform(1.0)));
        check(&format!("±1000 n={n}"), &dev, &x, &[3, n]);
    }
}

#[test]
fn masked_entries_and_fully_masked_rows_never_give_nan() {
    let dev = test_device();
    let mut rng = Rng::new(14);
    for &n in &[1usize, 3, 17, 33, 127, 1000] {
        let rows = 4;
        let mut x = rng.vec(rows * n, 10.0);
        for (i, v) in x.iter_mut().enumerate() {
            let row = i / n;
            // Row 0: random masks keeping the first entry; row 1: fully masked;
            // row 2: all but the last masked; row 3: unmasked.
            let masked = match row {
                0 => i % n != 0 && rng.below(3) == 0,
                1 => true,
                2 => i % n != n - 1,
                _ => false,
            };
            if masked {
                *v = f32::NEG_INFINITY;
            }
        }
        let (probs, logp) = check(&format!("masked n={n}"), &dev, &x, &[rows, n]);
        for (i, &v) in x.iter().enumerate() {
            if v == f32::NEG_INFINITY {
                assert_eq!(probs[i], 0.0, "masked prob at {i} (n={n})");
                assert_eq!(logp[i], f32::NEG_INFINITY, "masked logprob at {i} (n={n})");
            }
        }
        // The fully masked row: all 0 / all -inf; the single survivor of row 2 gets 1 / 0.
        assert!(probs[n..2 * n].iter().all(|&p| p == 0.0));
        assert_eq!(probs[3 * n - 1], 1.0, "n={n}");
        assert_eq!(logp[3 * n - 1], 0.0, "n={n}");
    }
}

#[test]
fn more_rows_than_one_grid_dimension_fold_into_2d() {
    let dev = test_device();
    let max = dev.limits().max_compute_workgroups_per_dimension as usize;
    let mut rng = Rng::new(15);
    let (rows, n) = (max + 3, 2);
    let x = rng.vec(rows * n, 5.0);
    check(&format!("rows={rows}"), &dev, &x, &[rows, n]);
}

#[test]
fn bad_shapes_and_dtypes_are_clear_errors() {
    let dev = test_device();
    let x = Tensor::from_slice(&dev, &[1.0f32; 6], &[2, 3]).unwrap();
    let mut rec = Recorder::new(&dev);
    let wrong = Tensor::empty(&dev, &[3, 2], DType::F32).unwrap();
    let err = softmax::softmax(&mut rec, &x, &wrong).unwrap_err().to_string();
    assert!(err.contains("softmax") && err.contains("out must have shape [2, 3]"), "{err}");
    let ids = Tensor::from_slice(&dev, &[1u32; 6], &[2, 3]).unwrap();
    let out = Tensor::empty(&dev, &[2, 3], DType::F32).unwrap();
    let err = softmax::log_softmax(&mut rec, &ids, &out).unwrap_err().to_string();
    assert!(err.contains("log_softmax") && err.contains("x must be f32, got u32"), "{err}");
    let half_out = Tensor::empty(&dev, &[2, 3], DType::F16).unwrap();
    let err = softmax::softmax(&mut rec, &x, &half_out).unwrap_err().to_string();
    assert!(err.contains("out must be f32, got f16"), "{err}");
    let err = softmax::softmax(&mut rec, &x, &x).unwrap_err().to_string();
    assert!(err.contains("different buffer"), "{err}");
}
