//! topn.wgsl vs its CPU twin: row lengths around the chunk size, a vocabulary-sized row,
//! ties, NaN / −inf entries, large magnitudes and top up to MAX_TOP.

use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::topn::{top_logprobs, MAX_TOP};
use kiln_kernels::{reference, DType, Device, Recorder, Tensor};

/// Log-probs agree to 1e-5 relative to the row's magnitude (f32 logsumexp vs f64).
fn check(what: &str, dev: &Device, x: &[f32], rows: usize, n: usize, top: usize) -> Vec<u32> {
    let t = Tensor::from_slice(dev, x, &[rows, n]).unwrap();
    let ids = Tensor::empty(dev, &[rows, top], DType::U32).unwrap();
    let lps = Tensor::empty(dev, &[rows, top], DType::F32).unwrap();
    let mut rec = Recorder::new(dev);
    top_logprobs(&mut rec, &t, &ids, &lps).unwrap();
    rec.submit().unwrap();
    let (got_ids, got_lps) = (ids.to_vec_u32().unwrap(), lps.to_vec_f32().unwrap());
    let want = reference::topn::top_logprobs(x, n, top);
    let mut max_err: f64 = 0.0;
    for r in 0..rows {
        let scale = x[r * n..(r + 1) * n].iter().filter(|v| v.is_finite()).fold(1.0f32, |a, &v| a.max(v.abs())) as f64;
        for j in 0..top {
            let (id, lp) = want[r][j];
            assert_eq!(
                got_ids[r * top + j],
                id,
                "{what}: row {r} rank {j}: GPU id {} vs twin {id}",
                got_ids[r * top + j]
            );
            let err = (got_lps[r * top + j] as f64 - lp).abs();
            max_err = max_err.max(err / scale);
            assert!(
                err <= 1e-5 * scale + 1e-5,
                "{what}: row {r} rank {j}: logprob {} vs twin {lp} (err {err:e})",
                got_lps[r * top + j]
            );
        }
    }
    eprintln!("{what}: max relative logprob error {max_err:e}");
    got_ids
}

#[test]
fn random_rows_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(51);
    for &(n, top) in &[(1usize, 1usize), (5, 5), (33, 7), (1023, 20), (1024, 32), (1025, 32), (4099, 10)] {
        let rows = 3;
        let x = rng.vec(rows * n, 10.0);
        check(&format!("n={n} top={top}"), &dev, &x, rows, n, top);
    }
}

#[test]
fn vocab_sized_rows_and_large_magnitudes() {
    let dev = test_device();
    let mut rng = Rng::new(52);
    let n = 151936;
    check("n=151936", &dev, &rng.vec(2 * n, 20.0), 2, n, 20);
    check("n=151936 scale 1e4", &dev, &rng.vec(n, 1.0e4), 1, n, MAX_TOP);
}

#[test]
fn ties_nans_and_masked_entries() {
    let dev = test_device();
    let n = 3000;
    // Few distinct values: long runs of ties across chunks.
    let mut x: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    x[17] = f32::NAN;
    x[2500] = f32::NEG_INFINITY;
    let ids = check("ties", &dev, &x, 1, n, 12);
    // Value 6 sits at ids 6, 13, 20, ...: the smallest ids first.
    assert_eq!(ids, (0..12).map(|k| 6 + 7 * k).collect::<Vec<u32>>());
    // A row of -inf but one entry.
    let mut masked = vec![f32::NEG_INFINITY; 2000];
    masked[1999] = 0.5;
    let ids = check("masked", &dev, &masked, 1, 2000, 3);
    assert_eq!(ids[0], 1999);
}

#[test]
fn bad_shapes_are_errors() {
    let dev = test_device();
    let x = Tensor::zeros(&dev, &[2, 10], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    for (top, what) in [(11usize, "longer than the row"), (MAX_TOP + 1, "over MAX_TOP")] {
        let ids = Tensor::empty(&dev, &[2, top], DType::U32).unwrap();
        let lps = Tensor::empty(&dev, &[2, top], DType::F32).unwrap();
        let err = top_logprobs(&mut rec, &x, &ids, &lps).unwrap_err().to_string();
        assert!(err.contains("top"), "{what}: {err}");
    }
}
