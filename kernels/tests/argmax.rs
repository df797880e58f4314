//! argmax.wgsl vs its CPU twin: odd row lengths, a vocabulary-sized row, ties, NaNs,
//! -inf rows and signed zeros.

use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{argmax, reference, tolerance, DType, Device, Recorder, Tensor};

/// Argmax of x `[rows, n]` on the GPU, compared with the twin; returns the indices.
fn check(what: &str, dev: &Device, x: &[f32], rows: usize, n: usize) -> Vec<u32> {
    let tx = Tensor::from_slice(dev, x, &[rows, n]).unwrap();
    let out = Tensor::empty(dev, &[rows], DType::U32).unwrap();
    let mut rec = Recorder::new(dev);
    argmax::argmax(&mut rec, &tx, &out).unwrap();
    rec.submit().unwrap();
    let got = out.to_vec_u32().unwrap();
    if let Err(msg) = tolerance::compare_u32(what, &got, &reference::argmax::argmax(x, n)) {
        panic!("{msg}");
    }
    got
}

#[test]
fn odd_row_lengths_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(31);
    for &n in &[1usize, 3, 17, 33, 127, 256, 257, 1000, 4099] {
        let rows = 5;
        let x = rng.vec(rows * n, 10.0);
        check(&format!("random n={n}"), &dev, &x, rows, n);
        // The maximum at the very last / very first position of each row.
        let mut last = x.clone();
        let mut first = x.clone();
        for r in 0..rows {
            last[r * n + n - 1] = 20.0;
            first[r * n] = 20.0;
        }
        assert_eq!(check(&format!("last n={n}"), &dev, &last, rows, n), vec![n as u32 - 1; rows]);
        assert_eq!(check(&format!("first n={n}"), &dev, &first, rows, n), vec![0; rows]);
    }
}

#[test]
fn vocab_sized_row_matches_twin() {
    let dev = test_device();
    let mut rng = Rng::new(32);
    let n = 151936;
    let mut x = rng.vec(n, 30.0);
    x[123457] = 31.0;
    assert_eq!(check("n=151936", &dev, &x, 1, n), vec![123457]);
    // Same maximum at two far-apart positions: the smaller index wins.
    x[99] = 31.0;
    assert_eq!(check("n=151936 tie", &dev, &x, 1, n), vec![99]);
}

#[test]
fn ties_go_to_the_smallest_index() {
    let dev = test_device();
    let mut rng = Rng::new(33);
    for &n in &[3usize, 17, 33, 127, 1000] {
        let rows = 4;
        // Few distinct values: many ties, spread over different invocations' slices.
        let x: Vec<f32> = (0..rows * n).map(|_| rng.below(4) as f32).collect();
        check(&format!("ties n={n}"), &dev, &x, rows, n);
        let constant = vec![2.5f32; rows * n];
        assert_eq!(check(&format!("constant n={n}"), &dev, &constant, rows, n), vec![0; rows]);
    }
}

#[test]
fn nans_are_ignored_and_inf_rows_give_zero() {
    let dev = test_device();
    let mut rng = Rng::new(34);
    for &n in &[1usize, 3, 17, 33, 127, 1000] {
        // Row 0: random with NaNs sprinkled (and a NaN first); row 1: all -inf;
        // row 2: all NaN; row 3: NaNs and -inf with one finite value at the end;
        // row 4: -0.0 before +0.0 among negatives (they tie → the first).
        let mut x = rng.vec(5 * n, 10.0);
        for i in 0..n {
            if i == 0 || rng.below(4) == 0 {
                x[i] = f32::NAN;
            }
            x[n + i] = f32::NEG_INFINITY;
            x[2 * n + i] = f32::NAN;
            x[3 * n + i] = if i % 2 == 0 { f32::NAN } else { f32::NEG_INFINITY };
            x[4 * n + i] = -1.0 - i as f32;
        }
        x[4 * n - 1] = -5.0;
        x[4 * n + n / 2] = -0.0;
        x[4 * n + n - 1] = 0.0;
        let got = check(&format!("nan/inf n={n}"), &dev, &x, 5, n);
        assert_eq!(&got[1..4], &[0, 0, n as u32 - 1], "n={n}");
        assert_eq!(got[4], (n / 2) as u32, "n={n}");
        if n > 1 {
            assert!(!x[got[0] as usize].is_nan(), "n={n} picked a NaN");
        }
    }
}

#[test]
fn rank_one_and_rank_three_inputs() {
    let dev = test_device();
    let mut rng = Rng::new(35);
    let x = rng.vec(2 * 3 * 33, 5.0);
    let want = reference::argmax::argmax(&x, 33);
    let t3 = Tensor::from_slice(&dev, &x, &[2, 3, 33]).unwrap();
    let out3 = Tensor::empty(&dev, &[2, 3], DType::U32).unwrap();
    let t1 = Tensor::from_slice(&dev, &x[..33], &[33]).unwrap();
    let out1 = Tensor::empty(&dev, &[1], DType::U32).unwrap();
    let mut rec = Recorder::new(&dev);
    argmax::argmax(&mut rec, &t3, &out3).unwrap();
    argmax::argmax(&mut rec, &t1, &out1).unwrap();
    rec.submit().unwrap();
    tolerance::compare_u32("rank 3", &out3.to_vec_u32().unwrap(), &want).unwrap_or_else(|m| panic!("{m}"));
    tolerance::compare_u32("rank 1", &out1.to_vec_u32().unwrap(), &want[..1]).unwrap_or_else(|m| panic!("{m}"));
}

#[test]
fn bad_shapes_and_dtypes_are_clear_errors() {
    let dev = test_device();
    let x = Tensor::from_slice(&dev, &[1.0f32; 6], &[2, 3]).unwrap();
    let mut rec = Recorder::new(&dev);
    let wrong = Tensor::empty(&dev, &[3], DType::U32).unwrap();
    let err = argmax::argmax(&mut rec, &x, &wrong).unwrap_err().to_string();
    assert!(err.contains("argmax") && err.contains("out must have shape [2], got [3]"), "{err}");
    let float_out = Tensor::empty(&dev, &[2], DType::F32).unwrap();
    let err = argmax::argmax(&mut rec, &x, &float_out).unwrap_err().to_string();
    assert!(err.contains("out must be u32, got f32"), "{err}");
    let ids = Tensor::from_slice(&dev, &[1u32; 6], &[2, 3]).unwrap();
    let out = Tensor::empty(&dev, &[2], DType::U32).unwrap();
    let err = argmax::argmax(&mut rec, &ids, &out).unwrap_err().to_string();
    assert!(err.contains("x must be f32, got u32"), "{err}");
}
