//! A smaller smoke set on the GL backend (llvmpipe on machines without a GPU): the
//! same launchers must work there too. Set KILN_SKIP_GL=1 where no GL driver exists.

use kiln_kernels::testing::{device_on, Rng};
use kiln_kernels::{elementwise, reference, tolerance, DType, Recorder, Tensor};

fn gl_device() -> Option<kiln_tensor::Device> {
    if std::env::var_os("KILN_SKIP_GL").is_some() {
        eprintln!("KILN_SKIP_GL set: skipping the GL smoke set");
        return None;
    }
    Some(device_on("gl"))
}

#[test]
fn elementwise_on_gl() {
    let Some(dev) = gl_device() else { return };
    let mut rng = Rng::new(5);
    let a = rng.vec(333, 5.0);
    let b = rng.vec(333, 5.0);
    let ta = Tensor::from_slice(&dev, &a, &[333]).unwrap();
    let tb = Tensor::from_slice(&dev, &b, &[333]).unwrap();
    let sum = Tensor::empty(&dev, &[333], DType::F32).unwrap();
    let act = Tensor::empty(&dev, &[333], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    elementwise::add(&mut rec, &ta, &tb, &sum).unwrap();
    elementwise::gelu_tanh(&mut rec, &ta, &act).unwrap();
    rec.submit().unwrap();
    tolerance::compare("gl add", &sum.to_vec_f32().unwrap(), &reference::add(&a, &b), tolerance::ELEMENTWISE).unwrap();
    tolerance::compare("gl gelu", &act.to_vec_f32().unwrap(), &reference::gelu_tanh(&a), tolerance::ELEMENTWISE).unwrap();
}

#[test]
fn matmul_matvec_softmax_norm_attention_on_gl() {
    use kiln_kernels::{attention, kv_cache, matmul, matvec, norm, rope, softmax};
    let Some(dev) = gl_device() else { return };
    let mut rng = Rng::new(6);
    let (m, n, k) = (5, 17, 33);
    let a = rng.vec(m * k, 1.0);
    let w = rng.vec(n * k, 1.0);
    let (w_bytes, w_vals) = reference::matmul::quantize_weights(&w, DType::F16);
    let ta = Tensor::from_slice(&dev, &a, &[m, k]).unwrap();
    let tw = Tensor::from_bytes(&dev, &w_bytes, &[n, k], DType::F16).unwrap();
    let mm = Tensor::empty(&dev, &[m, n], DType::F32).unwrap();
    let x1 = Tensor::from_slice(&dev, &a[..k], &[k]).unwrap();
    let mv = Tensor::empty(&dev, &[n], DType::F32).unwrap();
    let sm = Tensor::empty(&dev, &[m, k], DType::F32).unwrap();
    let nw = Tensor::from_slice(&dev, &rng.vec(k, 1.0), &[k]).unwrap();
    let rn = Tensor::empty(&dev, &[m, k], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    matmul::matmul(&mut rec, &ta, &tw, &mm).unwrap();
    matvec::matvec(&mut rec, &x1, &tw, &mv).unwrap();
    softmax::softmax(&mut rec, &ta, &sm).unwrap();
    norm::rms_norm(&mut rec, &ta, &nw, 1e-6, &rn).unwrap();
    rec.submit().unwrap();
    let want_mm = reference::matmul::matmul(&a, &w_vals, 1, m, n, k, false);
    tolerance::compare("gl matmul", &mm.to_vec_f32().unwrap(), &want_mm, tolerance::MATMUL_HALF).unwrap();
    let want_mv = reference::matvec::matvec(&a[..k], &w_vals, n, k);
    tolerance::compare("gl matvec", &mv.to_vec_f32().unwrap(), &want_mv, tolerance::MATMUL_HALF).unwrap();
    let want_sm = reference::softmax::softmax(&a, k);
    tolerance::compare("gl softmax", &sm.to_vec_f32().unwrap(), &want_sm, tolerance::REDUCTION).unwrap();

    // RoPE + KV append + causal GQA attention for a 9-token prompt, 4 heads over 2 kv heads.
    let (t, h, kvh, hd) = (9, 4, 2, 16);
    let table = rope::RopeTable::new(&dev, hd, 10000.0, 32).unwrap();
    let q = Tensor::from_slice(&dev, &rng.vec(t * h * hd, 1.0), &[t, h, hd]).unwrap();
    let kv: Vec<f32> = rng.vec(t * kvh * hd, 1.0);
    let kn = Tensor::from_slice(&dev, &kv, &[t, kvh, hd]).unwrap();
    let k_cache = Tensor::zeros(&dev, &[32, kvh, hd], DType::F32).unwrap();
    let v_cache = Tensor::zeros(&dev, &[32, kvh, hd], DType::F32).unwrap();
    let q_rot = Tensor::empty(&dev, &[t, h, hd], DType::F32).unwrap();
    let out = Tensor::empty(&dev, &[t, h, hd], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    rope::rope(&mut rec, &q, &table, 0, rope::RopeMode::HalfSplit, &q_rot).unwrap();
    kv_cache::kv_append(&mut rec, &kn, &k_cache, 0).unwrap();
    kv_cache::kv_append(&mut rec, &kn, &v_cache, 0).unwrap();
    attention::attention(&mut rec, &q_rot, &k_cache, &v_cache, 0, &out).unwrap();
    rec.submit().unwrap();
    let kc = k_cache.to_vec_f32().unwrap();
    let want = reference::attention::attention(&q_rot.to_vec_f32().unwrap(), &kc, &kc, t, h, kvh, hd, 0);
    tolerance::compare("gl attention", &out.to_vec_f32().unwrap(), &want, tolerance::ATTENTION).unwrap();
}
