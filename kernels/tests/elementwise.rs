//! elementwise.wgsl vs its CPU twins, on odd sizes and large magnitudes.

use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{elementwise, reference, tolerance, DType, Recorder, Tensor};

const SIZES: &[usize] = &[1, 3, 17, 33, 127, 256, 1000, 4099];

fn check(what: &str, got: &Tensor, want: &[f32]) {
    let got = got.to_vec_f32().unwrap();
    if let Err(msg) = tolerance::compare(what, &got, want, tolerance::ELEMENTWISE) {
        panic!("{msg}");
    }
}

#[test]
fn binary_ops_match_twin_with_broadcast() {
    let dev = test_device();
    let mut rng = Rng::new(1);
    for &n in SIZES {
        for &cols in &[1usize, 3, n] {
            if n % cols != 0 {
                continue;
            }
            let a = rng.vec(n, 10.0);
            let b = rng.vec(cols, 10.0);
            let ta = Tensor::from_slice(&dev, &a, &[n / cols, cols]).unwrap();
            let tb = Tensor::from_slice(&dev, &b, &[cols]).unwrap();
            let sum = Tensor::empty(&dev, &[n / cols, cols], DType::F32).unwrap();
            let prod = Tensor::empty(&dev, &[n / cols, cols], DType::F32).unwrap();
            let mut rec = Recorder::new(&dev);
            elementwise::add(&mut rec, &ta, &tb, &sum).unwrap();
            elementwise::mul(&mut rec, &ta, &tb, &prod).unwrap();
            rec.submit().unwrap();
            check(&format!("add n={n} cols={cols}"), &sum, &reference::add(&a, &b));
            check(&format!("mul n={n} cols={cols}"), &prod, &reference::mul(&a, &b));
        }
    }
}

#[test]
fn activations_match_twin_including_large_inputs() {
    let dev = test_device();
    let mut rng = Rng::new(2);
    for &n in SIZES {
        let mut a = rng.vec(n, 8.0);
        // Large magnitudes must not give NaN or inf.
        if n >= 3 {
            a[0] = 1000.0;
            a[1] = -1000.0;
            a[2] = 88.5;
        }
        let up = rng.vec(n, 2.0);
        let ta = Tensor::from_slice(&dev, &a, &[n]).unwrap();
        let tu = Tensor::from_slice(&dev, &up, &[n]).unwrap();
        let outs: Vec<Tensor> = (0..3).map(|_| Tensor::empty(&dev, &[n], DType::F32).unwrap()).collect();
        let mut rec = Recorder::new(&dev);
        elementwise::silu(&mut rec, &ta, &outs[0]).unwrap();
        elementwise::gelu_tanh(&mut rec, &ta, &outs[1]).unwrap();
        elementwise::swiglu(&mut rec, &ta, &tu, &outs[2]).unwrap();
        rec.submit().unwrap();
        check(&format!("silu n={n}"), &outs[0], &reference::silu(&a));
        check(&format!("gelu_tanh n={n}"), &outs[1], &reference::gelu_tanh(&a));
        check(&format!("swiglu n={n}"), &outs[2], &reference::swiglu(&a, &up));
    }
}

#[test]
fn bad_shapes_and_dtypes_are_clear_errors() {
    let dev = test_device();
    let a = Tensor::from_slice(&dev, &[1.0f32; 6], &[2, 3]).unwrap();
    let b = Tensor::from_slice(&dev, &[1.0f32; 2], &[2]).unwrap();
    let out = Tensor::empty(&dev, &[2, 3], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    let err = elementwise::add(&mut rec, &a, &b, &out).unwrap_err().to_string();
    assert!(err.contains("trailing"), "{err}");
    let wrong_out = Tensor::empty(&dev, &[3, 2], DType::F32).unwrap();
    let err = elementwise::silu(&mut rec, &a, &wrong_out).unwrap_err().to_string();
    assert!(err.contains("out must have shape [2, 3]"), "{err}");
    let ids = Tensor::from_slice(&dev, &[1u32; 6], &[2, 3]).unwrap();
    let err = elementwise::silu(&mut rec, &ids, &out).unwrap_err().to_string();
    assert!(err.contains("must be f32, got u32"), "{err}");
    let err = elementwise::silu(&mut rec, &a, &a).unwrap_err().to_string();
    assert!(err.contains("different buffer"), "{err}");
}
