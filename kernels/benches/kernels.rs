//! Criterion benches for the kernels at GPT-2 124M / Qwen2.5-0.5B layer shapes.
//! Each iteration records one dispatch, submits and waits, so the figure includes
//! submission overhead; `kiln bench kernels` reports GPU-timestamp medians instead.
//! Run: `cargo bench -p kiln-kernels` (backend from KILN_TEST_BACKEND, default vulkan).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use half::{bf16, f16};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{attention, elementwise, matmul, matvec, norm, softmax, DType, Device, Recorder, Tensor};

fn f32s(dev: &Device, rng: &mut Rng, shape: &[usize]) -> Tensor {
    Tensor::from_slice(dev, &rng.vec(shape.iter().product(), 1.0), shape).unwrap()
}

fn run(dev: &Device, f: impl Fn(&mut Recorder)) {
    let mut rec = Recorder::new(dev);
    f(&mut rec);
    rec.submit().unwrap();
}

fn benches(c: &mut Criterion) {
    let dev = test_device();
    let mut rng = Rng::new(1);
    let mut g = c.benchmark_group("kernels");
    g.sample_size(10);

    // Decode: GPT-2 MLP up-projection, f16 weights.
    let w: Vec<f16> = rng.vec(3072 * 768, 0.05).into_iter().map(f16::from_f32).collect();
    let w = Tensor::from_slice(&dev, &w, &[3072, 768]).unwrap();
    let x = f32s(&dev, &mut rng, &[1, 768]);
    let y = Tensor::empty(&dev, &[1, 3072], DType::F32).unwrap();
    g.throughput(Throughput::Bytes(w.byte_len()));
    g.bench_function("matvec gpt2 mlp_up 1x768 · 3072x768 f16", |b| {
        b.iter(|| run(&dev, |r| matvec::matvec(r, &x, &w, &y).unwrap()))
    });

    // Prefill: Qwen2.5 MLP gate projection for 32 tokens, bf16 weights.
    let w: Vec<bf16> = rng.vec(4864 * 896, 0.05).into_iter().map(bf16::from_f32).collect();
    let w = Tensor::from_slice(&dev, &w, &[4864, 896]).unwrap();
    let a = f32s(&dev, &mut rng, &[32, 896]);
    let y = Tensor::empty(&dev, &[32, 4864], DType::F32).unwrap();
    g.throughput(Throughput::Elements(2 * 32 * 4864 * 896));
    g.bench_function("matmul qwen2 mlp_gate 32x896 · 4864x896 bf16", |b| {
        b.iter(|| run(&dev, |r| matmul::matmul(r, &a, &w, &y).unwrap()))
    });

    // Decode attention: Qwen2.5 heads over 512 cached positions.
    let q = f32s(&dev, &mut rng, &[1, 14, 64]);
    let k = f32s(&dev, &mut rng, &[512, 2, 64]);
    let v = f32s(&dev, &mut rng, &[512, 2, 64]);
    let o = Tensor::empty(&dev, &[1, 14, 64], DType::F32).unwrap();
    g.throughput(Throughput::Bytes(k.byte_len() + v.byte_len()));
    g.bench_function("attention_decode qwen2 14/2 heads, 512 positions", |b| {
        b.iter(|| run(&dev, |r| attention::attention_decode(r, &q, &k, &v, 511, &o).unwrap()))
    });

    // Sampling-side reductions over a GPT-2 vocabulary row.
    let logits = f32s(&dev, &mut rng, &[1, 50257]);
    let probs = Tensor::empty(&dev, &[1, 50257], DType::F32).unwrap();
    g.throughput(Throughput::Bytes(2 * logits.byte_len()));
    g.bench_function("softmax 1x50257", |b| b.iter(|| run(&dev, |r| softmax::softmax(r, &logits, &probs).unwrap())));

    // Norm + activation at a Qwen2.5 prefill shape.
    let h = f32s(&dev, &mut rng, &[32, 896]);
    let nw = f32s(&dev, &mut rng, &[896]);
    let hn = Tensor::empty(&dev, &[32, 896], DType::F32).unwrap();
    g.throughput(Throughput::Bytes(2 * h.byte_len()));
    g.bench_function("rms_norm 32x896", |b| b.iter(|| run(&dev, |r| norm::rms_norm(r, &h, &nw, 1e-6, &hn).unwrap())));
    let gate = f32s(&dev, &mut rng, &[32, 4864]);
    let up = f32s(&dev, &mut rng, &[32, 4864]);
    let act = Tensor::empty(&dev, &[32, 4864], DType::F32).unwrap();
    g.throughput(Throughput::Bytes(3 * gate.byte_len()));
    g.bench_function("swiglu 32x4864", |b| b.iter(|| run(&dev, |r| elementwise::swiglu(r, &gate, &up, &act).unwrap())));
    g.finish();
}

criterion_group!(kernel_benches, benches);
criterion_main!(kernel_benches);
