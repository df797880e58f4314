//! norm.wgsl vs its CPU twins: odd and model-sized widths, several rows, inputs of
//! magnitude 1e3, and clear errors for wrong weights and bad eps.

use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{norm, reference, tolerance, DType, Device, Recorder, Tensor, TensorError};

const WIDTHS: &[usize] = &[1, 3, 17, 33, 127, 256, 768, 896];

fn check(what: &str, got: &Tensor, want: &[f32]) {
    let got = got.to_vec_f32().unwrap();
    if let Err(msg) = tolerance::compare(what, &got, want, tolerance::REDUCTION) {
        panic!("{msg}");
    }
}

/// Run rms_norm and layer_norm on x of `shape` with random weight/bias and compare.
fn check_both(dev: &Device, rng: &mut Rng, shape: &[usize], scale: f32, offset: f32) {
    let d = *shape.last().unwrap();
    let x: Vec<f32> = rng.vec(shape.iter().product(), scale).into_iter().map(|v| v + offset).collect();
    let w = rng.vec(d, 2.0);
    let b = rng.vec(d, 1.0);
    let eps = 1e-6;
    let tx = Tensor::from_slice(dev, &x, shape).unwrap();
    let tw = Tensor::from_slice(dev, &w, &[d]).unwrap();
    let tb = Tensor::from_slice(dev, &b, &[d]).unwrap();
    let rms = Tensor::empty(dev, shape, DType::F32).unwrap();
    let ln = Tensor::empty(dev, shape, DType::F32).unwrap();
    let mut rec = Recorder::new(dev);
    norm::rms_norm(&mut rec, &tx, &tw, eps, &rms).unwrap();
    norm::layer_norm(&mut rec, &tx, &tw, &tb, 1e-5, &ln).unwrap();
    rec.submit().unwrap();
    let what = format!("shape {shape:?} scale {scale} offset {offset}");
    check(&format!("rms_norm {what}"), &rms, &reference::norm::rms_norm(&x, &w, eps));
    check(&format!("layer_norm {what}"), &ln, &reference::norm::layer_norm(&x, &w, &b, 1e-5));
}

#[test]
fn odd_and_model_widths_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(21);
    for &d in WIDTHS {
        for shape in [vec![d], vec![5, d], vec![2, 3, d]] {
            check_both(&dev, &mut rng, &shape, 3.0, 0.0);
        }
    }
}

#[test]
fn large_magnitudes_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(22);
    for &d in WIDTHS {
        check_both(&dev, &mut rng, &[3, d], 1e3, 0.0);
        // An offset the mean must remove (layer_norm) / that dominates the RMS.
        check_both(&dev, &mut rng, &[3, d], 10.0, 100.0);
    }
}

#[test]
fn constant_rows_give_bias_not_nan() {
    // Zero variance: layer_norm must return exactly the bias, rms_norm of zeros is zero.
    // (d = 32 so the mean 224 / 32 is exact even where division is a reciprocal multiply.)
    let dev = test_device();
    let d = 32;
    let x: Vec<f32> = [vec![7.0f32; d], vec![0.0f32; d]].concat();
    let w = vec![2.0f32; d];
    let b: Vec<f32> = (0..d).map(|i| i as f32 * 0.5).collect();
    let tx = Tensor::from_slice(&dev, &x, &[2, d]).unwrap();
    let tw = Tensor::from_slice(&dev, &w, &[d]).unwrap();
    let tb = Tensor::from_slice(&dev, &b, &[d]).unwrap();
    let rms = Tensor::empty(&dev, &[2, d], DType::F32).unwrap();
    let ln = Tensor::empty(&dev, &[2, d], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    norm::rms_norm(&mut rec, &tx, &tw, 1e-6, &rms).unwrap();
    norm::layer_norm(&mut rec, &tx, &tw, &tb, 1e-5, &ln).unwrap();
    rec.submit().unwrap();
    assert_eq!(ln.to_vec_f32().unwrap(), [b.clone(), b].concat());
    let rms = rms.to_vec_f32().unwrap();
    assert!(rms[d..].iter().all(|&v| v == 0.0), "{rms:?}");
    if let Err(msg) = tolerance::compare(
        "rms_norm constant rows",
        &rms,
        &reference::norm::rms_norm(&x, &w, 1e-6),
        tolerance::REDUCTION,
    ) {
        panic!("{msg}");
    }
}

#[test]
fn wrong_weights_bad_eps_and_dtypes_are_clear_errors() {
    let dev = test_device();
    let x = Tensor::from_slice(&dev, &[1.0f32; 6], &[2, 3]).unwrap();
    let w3 = Tensor::from_slice(&dev, &[1.0f32; 3], &[3]).unwrap();
    let w2 = Tensor::from_slice(&dev, &[1.0f32; 2], &[2]).unwrap();
    let out = Tensor::empty(&dev, &[2, 3], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);

    let err = norm::rms_norm(&mut rec, &x, &w2, 1e-6, &out).unwrap_err().to_string();
    assert!(err.contains("rms_norm") && err.contains("weight must have shape [3], got [2]"), "{err}");
    let err = norm::layer_norm(&mut rec, &x, &w3, &w2, 1e-5, &out).unwrap_err().to_string();
    assert!(err.contains("layer_norm") && err.contains("bias must have shape [3], got [2]"), "{err}");

    for eps in [0.0f32, -1e-5, f32::NAN, f32::INFINITY] {
        let err = norm::rms_norm(&mut rec, &x, &w3, eps, &out).unwrap_err();
        assert!(matches!(&err, TensorError::Param { name, .. } if name == "eps"), "{err}");
        let err = norm::layer_norm(&mut rec, &x, &w3, &w3, eps, &out).unwrap_err();
        assert!(matches!(&err, TensorError::Param { name, .. } if name == "eps"), "{err}");
        assert!(err.to_string().contains("layer_norm needs a finite eps > 0"), "{err}");
    }

    let half_w = Tensor::from_slice(&dev, &[half::f16::ONE; 3], &[3]).unwrap();
    let err = norm::rms_norm(&mut rec, &x, &half_w, 1e-6, &out).unwrap_err().to_string();
    assert!(err.contains("weight must be f32, got f16"), "{err}");
    let wrong_out = Tensor::empty(&dev, &[6], DType::F32).unwrap();
    let err = norm::rms_norm(&mut rec, &x, &w3, 1e-6, &wrong_out).unwrap_err().to_string();
    assert!(err.contains("out must have shape [2, 3]"), "{err}");
    let err = norm::layer_norm(&mut rec, &x, &w3, &w3, 1e-5, &x).unwrap_err().to_string();
    assert!(err.contains("different buffer"), "{err}");
}
