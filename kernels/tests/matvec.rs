//! matvec.wgsl vs its CPU twin: odd N and K (half-precision words straddling rows),
//! both entry points (word loads and vec4 loads), every weight dtype, a model-sized
//! shape, agreement with matmul at M = 1, and clear errors.

use kiln_kernels::reference::matmul::quantize_weights;
use kiln_kernels::reference::matvec::matvec as matvec_ref;
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{matmul, matvec, reference, tolerance, DType, Device, Recorder, Tensor};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

fn tol(dtype: DType) -> tolerance::Tol {
    tolerance::matmul_for(dtype)
}

/// One recorded matvec and the CPU result it must match.
struct Case {
    what: String,
    out: Tensor,
    want: Vec<f32>,
    dtype: DType,
}

/// Record `x[x_shape] · w[n, k]ᵀ` (k = x's last dim) with random data and compute its twin.
fn record(dev: &Device, rec: &mut Recorder, rng: &mut Rng, x_shape: &[usize], n: usize, dtype: DType) -> Case {
    let k = *x_shape.last().unwrap();
    let x = rng.vec(k, 1.0);
    let w = rng.vec(n * k, 1.0);
    let (w_bytes, w_vals) = quantize_weights(&w, dtype);
    let tx = Tensor::from_slice(dev, &x, x_shape).unwrap();
    let tw = Tensor::from_bytes(dev, &w_bytes, &[n, k], dtype).unwrap();
    let mut out_shape = x_shape.to_vec();
    *out_shape.last_mut().unwrap() = n;
    let out = Tensor::empty(dev, &out_shape, DType::F32).unwrap();
    matvec::matvec(rec, &tx, &tw, &out).unwrap();
    Case { what: format!("matvec x{x_shape:?} w[{n}, {k}] {dtype}"), out, want: matvec_ref(&x, &w_vals, n, k), dtype }
}

fn check_all(cases: &[Case]) {
    for c in cases {
        let got = c.out.to_vec_f32().unwrap();
        if let Err(msg) = tolerance::compare(&c.what, &got, &c.want, tol(c.dtype)) {
            panic!("{msg}");
        }
    }
}

#[test]
fn odd_shapes_match_twin_for_every_dtype() {
    let dev = test_device();
    let mut rng = Rng::new(21);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    // K: odd (halves straddle rows), even but not a multiple of 4/8 (word path),
    // multiples of 4 and 8 (vec4 path).
    for n in [1usize, 3, 17, 33, 127] {
        for k in [1usize, 2, 3, 4, 8, 12, 17, 33, 40, 127] {
            for dtype in DTYPES {
                cases.push(record(&dev, &mut rec, &mut rng, &[k], n, dtype));
            }
        }
    }
    rec.submit().unwrap();
    check_all(&cases);
}

#[test]
fn model_sized_shapes_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(22);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in DTYPES {
        cases.push(record(&dev, &mut rec, &mut rng, &[896], 5000, dtype));
        // Long K, odd N (the last workgroup is partly empty).
        cases.push(record(&dev, &mut rec, &mut rng, &[1, 8960], 37, dtype));
        // Long odd K on the word path.
        cases.push(record(&dev, &mut rec, &mut rng, &[4863], 21, dtype));
    }
    rec.submit().unwrap();
    check_all(&cases);
}

#[test]
fn entry_point_follows_alignment_of_k() {
    let dev = test_device();
    let mut rng = Rng::new(23);
    let mut rec = Recorder::new(&dev).with_trace();
    // (K, dtype, kernel): the block matvec reads 16-byte blocks: 4 f32 or 8 halves.
    let expected = [
        (8, DType::F32, "matvec::float"),
        (12, DType::F32, "matvec::float"),
        (12, DType::F16, "matvec::words"),
        (16, DType::BF16, "matvec::float"),
        (17, DType::F32, "matvec::words"),
        (18, DType::F16, "matvec::words"),
    ];
    let cases: Vec<Case> =
        expected.iter().map(|&(k, dtype, _)| record(&dev, &mut rec, &mut rng, &[k], 9, dtype)).collect();
    let trace = rec.submit().unwrap().trace;
    for ((k, dtype, entry), t) in expected.iter().zip(&trace) {
        assert_eq!(t.kernel, *entry, "K = {k}, {dtype}");
    }
    assert_eq!(trace[0].flops, 2 * 9 * 8);
    assert_eq!(trace[0].bytes, (9 * 8 * 4 + 8 * 4 + 9 * 4) as u64);
    check_all(&cases);
}

#[test]
fn rank_two_row_keeps_rank() {
    let dev = test_device();
    let mut rng = Rng::new(24);
    let mut rec = Recorder::new(&dev);
    let cases: Vec<Case> = DTYPES.iter().map(|&d| record(&dev, &mut rec, &mut rng, &[1, 33], 17, d)).collect();
    rec.submit().unwrap();
    assert_eq!(cases[0].out.shape(), &[1, 17]);
    check_all(&cases);
}

#[test]
fn agrees_with_matmul_at_one_row() {
    let dev = test_device();
    let mut rng = Rng::new(25);
    for dtype in DTYPES {
        for (n, k) in [(17usize, 33usize), (130, 256), (65, 127)] {
            let x = rng.vec(k, 1.0);
            let (w_bytes, _) = quantize_weights(&rng.vec(n * k, 1.0), dtype);
            let tx = Tensor::from_slice(&dev, &x, &[1, k]).unwrap();
            let tw = Tensor::from_bytes(&dev, &w_bytes, &[n, k], dtype).unwrap();
            let by_matvec = Tensor::empty(&dev, &[1, n], DType::F32).unwrap();
            let by_matmul = Tensor::empty(&dev, &[1, n], DType::F32).unwrap();
            let mut rec = Recorder::new(&dev);
            matvec::matvec(&mut rec, &tx, &tw, &by_matvec).unwrap();
            matmul::matmul(&mut rec, &tx, &tw, &by_matmul).unwrap();
            rec.submit().unwrap();
            let what = format!("matvec vs matmul n={n} k={k} {dtype}");
            let (a, b) = (by_matvec.to_vec_f32().unwrap(), by_matmul.to_vec_f32().unwrap());
            if let Err(msg) = tolerance::compare(&what, &a, &b, tol(dtype)) {
                panic!("{msg}");
            }
        }
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dev = test_device();
    let f32s = |shape: &[usize]| Tensor::zeros(&dev, shape, DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    let err = |r: kiln_kernels::Result<()>| r.unwrap_err().to_string();

    // More rows than matvec takes: that is matmul's job.
    let e = err(matvec::matvec(&mut rec, &f32s(&[17, 8]), &f32s(&[5, 8]), &f32s(&[17, 5])));
    assert!(
        e.contains("matvec") && e.contains("17 rows") && e.contains("at most 16") && e.contains("use matmul"),
        "{e}"
    );
    // K mismatch.
    let e = err(matvec::matvec(&mut rec, &f32s(&[8]), &f32s(&[5, 7]), &f32s(&[5])));
    assert!(e.contains("K mismatch") && e.contains("K = 8") && e.contains("K = 7"), "{e}");
    // Output of the wrong shape or rank.
    let e = err(matvec::matvec(&mut rec, &f32s(&[8]), &f32s(&[5, 8]), &f32s(&[1, 5])));
    assert!(e.contains("out must have shape [5], got [1, 5]"), "{e}");
    let e = err(matvec::matvec(&mut rec, &f32s(&[1, 8]), &f32s(&[5, 8]), &f32s(&[1, 4])));
    assert!(e.contains("out must have shape [1, 5], got [1, 4]"), "{e}");
    // Batched or rank-1 weights.
    let e = err(matvec::matvec(&mut rec, &f32s(&[8]), &f32s(&[2, 5, 8]), &f32s(&[5])));
    assert!(e.contains("w must be [N, K], got [2, 5, 8]"), "{e}");
    // dtypes.
    let ids = Tensor::zeros(&dev, &[5, 8], DType::U32).unwrap();
    let e = err(matvec::matvec(&mut rec, &f32s(&[8]), &ids, &f32s(&[5])));
    assert!(e.contains("w must be f32, f16, bf16 or a GGUF block type, got u32"), "{e}");
    let x16 = Tensor::zeros(&dev, &[8], DType::BF16).unwrap();
    let e = err(matvec::matvec(&mut rec, &x16, &f32s(&[5, 8]), &f32s(&[5])));
    assert!(e.contains("x must be f32, got bf16"), "{e}");
    // In place.
    let x = f32s(&[4]);
    let e = err(matvec::matvec(&mut rec, &x, &f32s(&[4, 4]), &x));
    assert!(e.contains("different buffer"), "{e}");
}

#[test]
fn several_rows_match_matmul_for_every_weight_type() {
    use kiln_kernels::quant;
    let dev = test_device();
    let mut rng = Rng::new(31);
    let (n, k) = (19, 64);
    for rows in [2usize, 5, 16] {
        let a = rng.vec(rows * k, 1.0);
        let x = Tensor::from_slice(&dev, &a, &[rows, k]).unwrap();
        // Dense dtypes, and a GGUF block type (Q8_0 from random blocks with sane scales).
        let mut weights: Vec<(Tensor, Vec<f32>)> = DTYPES
            .iter()
            .map(|&dt| {
                let (bytes, vals) = reference::matmul::quantize_weights(&rng.vec(n * k, 1.0), dt);
                (Tensor::from_bytes(&dev, &bytes, &[n, k], dt).unwrap(), vals)
            })
            .collect();
        let mut blocks = Vec::new();
        for _ in 0..n * k / 32 {
            blocks.extend_from_slice(&half::f16::from_f32(0.01 + rng.unit() * 0.05).to_le_bytes());
            blocks.extend((0..32).map(|_| rng.below(256) as u8));
        }
        let vals = quant::dequantize(DType::Q8_0, &blocks).unwrap();
        let repacked = quant::repack(DType::Q8_0, &blocks).unwrap();
        weights.push((Tensor::from_bytes(&dev, &repacked, &[n, k], DType::Q8_0).unwrap(), vals));
        for (w, vals) in &weights {
            let mv = Tensor::empty(&dev, &[rows, n], DType::F32).unwrap();
            let mut rec = Recorder::new(&dev);
            matvec::matvec(&mut rec, &x, w, &mv).unwrap();
            rec.submit().unwrap();
            let want = reference::matmul::matmul(&a, vals, 1, rows, n, k, false);
            let what = format!("matvec {rows} rows {}", w.dtype());
            tolerance::compare(&what, &mv.to_vec_f32().unwrap(), &want, tol(w.dtype()))
                .unwrap_or_else(|m| panic!("{m}"));
        }
    }
}
