//! The block matvec (wgsl/matvec_core.wgsl + one family file per weight format) against
//! its CPU twin: every weight format (f32, f16, bf16 and the eight GGUF block types),
//! every row count M = 1..=16, odd N, several K, both reductions (subgroups and
//! workgroup memory), large magnitudes, and every fusion (norm, bias, SwiGLU/GELU,
//! residual) against the composed ops.

use kiln_kernels::matvec::{self, Activation, FoldedNorm, Fusion};
use kiln_kernels::reference::matmul::quantize_weights;
use kiln_kernels::reference::matvec::{self as twin, Norm};
use kiln_kernels::testing::{random_blocks, test_device, Rng};
use kiln_kernels::{tolerance, DType, Device, Recorder, Tensor};

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];
const BLOCKS: [DType; 8] =
    [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K];

/// Random weights `[n, k]` stored as `dtype`: (bytes to upload, the values the twin uses).
fn weights(rng: &mut Rng, dtype: DType, n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    if dtype.is_quantized() {
        random_blocks(rng, dtype, n, k, 0.05)
    } else {
        quantize_weights(&rng.vec(n * k, 1.0), dtype)
    }
}

/// K values that fit `dtype`: whole blocks (16 bytes for floats), odd block counts.
fn ks(dtype: DType) -> &'static [usize] {
    match dtype.block_size() {
        1 if dtype == DType::F32 => &[4, 12, 40, 72],
        1 => &[8, 24, 40, 72],
        32 => &[32, 96, 160],
        _ => &[256, 768],
    }
}

struct Case {
    what: String,
    out: Tensor,
    want: Vec<f32>,
    tol: tolerance::Tol,
}

fn check(cases: &[Case]) {
    for c in cases {
        let got = c.out.to_vec_f32().unwrap();
        tolerance::compare(&c.what, &got, &c.want, c.tol).unwrap_or_else(|m| panic!("{m}"));
    }
}

/// Plain block matvec for every format in `dtypes`, each M of `ms`, odd N, on `dev`.
fn row_counts(dev: &Device, seed: u64, dtypes: &[DType], ms: &[usize]) {
    let mut rng = Rng::new(seed);
    for dtype in dtypes.iter().copied() {
        let mut rec = Recorder::new(dev).with_trace();
        let mut cases = Vec::new();
        for (i, &k) in ks(dtype).iter().enumerate() {
            for &m in ms {
                // Odd N so the last workgroup's second row is past the end.
                let n = [1usize, 3, 17, 33][(m + i) % 4];
                let (bytes, vals) = weights(&mut rng, dtype, n, k);
                let x = rng.vec(m * k, 1.0);
                let tx = Tensor::from_slice(dev, &x, &[m, k]).unwrap();
                let tw = Tensor::from_bytes(dev, &bytes, &[n, k], dtype).unwrap();
                let out = Tensor::empty(dev, &[m, n], DType::F32).unwrap();
                matvec::matvec(&mut rec, &tx, &tw, &out).unwrap();
                let what = format!("block matvec {dtype} M={m} N={n} K={k} subgroups={}", dev.subgroups());
                cases.push(Case {
                    what,
                    out,
                    want: twin::matvec_rows(&x, &vals, n, k),
                    tol: tolerance::matmul_for(dtype),
                });
            }
        }
        let trace = rec.submit().unwrap().trace;
        assert!(trace.iter().all(|t| t.kernel != "matvec::words"), "{dtype}: every case takes the block matvec");
        check(&cases);
    }
}

/// One format of each family file (float, 32-element blocks, Q4_K/Q5_K, Q6_K) at every
/// M = 1..=16, and every other format at M = 1, 3 and 16 (M changes only the shared
/// skeleton, each pipeline compile costs ~0.5 s on lavapipe), on the adapter's default
/// path (subgroups where it has them).
#[test]
fn every_format_and_row_count() {
    let dev = test_device();
    let per_family = [DType::F16, DType::Q5_0, DType::Q4_K, DType::Q6_K];
    row_counts(&dev, 41, &per_family, &(1..=16).collect::<Vec<_>>());
    let others: Vec<DType> = FLOATS.iter().chain(&BLOCKS).copied().filter(|d| !per_family.contains(d)).collect();
    row_counts(&dev, 43, &others, &[1, 3, 16]);
}

/// The workgroup-memory reduction: a row count of each loop order and accumulator use.
#[test]
fn every_format_without_subgroups() {
    let dev = test_device();
    dev.set_subgroups(false);
    assert!(!dev.subgroups());
    let all: Vec<DType> = FLOATS.iter().chain(&BLOCKS).copied().collect();
    row_counts(&dev, 42, &all, &[1, 5, 16]);
}

/// Model-sized shapes with large activations: Qwen2.5-0.5B's q_proj (K 896), mlp_down
/// (K 4864) and SmolLM2's mlp_up (K 576), in the formats those files use.
#[test]
fn model_shapes_and_large_magnitudes() {
    let dev = test_device();
    let mut rng = Rng::new(43);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for (dtype, n, k) in [
        (DType::Q5_0, 896, 896),
        (DType::Q8_0, 128, 896),
        (DType::Q4_K, 896, 4864),
        (DType::Q6_K, 896, 4864),
        (DType::Q4_1, 1536, 576),
        (DType::F16, 896, 896),
        (DType::BF16, 129, 4864),
    ] {
        for m in [1usize, 4, 16] {
            let (bytes, vals) = weights(&mut rng, dtype, n, k);
            let x = rng.vec(m * k, 300.0);
            let tx = Tensor::from_slice(&dev, &x, &[m, k]).unwrap();
            let tw = Tensor::from_bytes(&dev, &bytes, &[n, k], dtype).unwrap();
            let out = Tensor::empty(&dev, &[m, n], DType::F32).unwrap();
            matvec::matvec(&mut rec, &tx, &tw, &out).unwrap();
            let what = format!("block matvec {dtype} M={m} N={n} K={k} |x| ≤ 300");
            let abs_w: Vec<f32> = vals.iter().map(|v| v.abs()).collect();
            let abs_x: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            let sum_abs = twin::matvec_rows(&abs_x, &abs_w, n, k).into_iter().fold(0.0f32, f32::max);
            let tol = tolerance::dot_products(dtype, sum_abs);
            cases.push(Case { what, out, want: twin::matvec_rows(&x, &vals, n, k), tol });
        }
    }
    rec.submit().unwrap();
    check(&cases);
}

/// (norm, bias, activation, residual): each fusion alone, and the combinations the
/// models use (Qwen2/Llama: RMSNorm + bias; SwiGLU; residual. GPT-2: LayerNorm + bias + GELU).
const FUSIONS: [(u8, bool, Activation, bool); 10] = [
    (0, false, Activation::None, false),
    (1, false, Activation::None, false),
    (2, false, Activation::None, false),
    (0, true, Activation::None, false),
    (0, false, Activation::SwiGlu, false),
    (0, false, Activation::GeluTanh, false),
    (0, false, Activation::None, true),
    (1, true, Activation::SwiGlu, true),
    (2, true, Activation::GeluTanh, true),
    (1, true, Activation::None, false),
];

/// Every fusion of [`FUSIONS`] equals the composed ops' twins, for `dtypes` and M = 1, 3, 16.
fn fusions(dev: &Device, seed: u64, dtypes: &[DType]) {
    let mut rng = Rng::new(seed);
    let mut rec = Recorder::new(dev);
    let mut cases = Vec::new();
    let (n, k) = (34usize, 256usize);
    let gamma = rng.vec(k, 2.0);
    let beta = rng.vec(k, 1.0);
    let bias = rng.vec(n, 1.0);
    let t_gamma = Tensor::from_slice(dev, &gamma, &[k]).unwrap();
    let t_beta = Tensor::from_slice(dev, &beta, &[k]).unwrap();
    let t_bias = Tensor::from_slice(dev, &bias, &[n]).unwrap();
    for &dtype in dtypes {
        let (bytes, vals) = weights(&mut rng, dtype, n, k);
        let tw = Tensor::from_bytes(dev, &bytes, &[n, k], dtype).unwrap();
        for m in [1usize, 3, 16] {
            for (norm, with_bias, act, with_residual) in FUSIONS {
                let n_out = if act == Activation::SwiGlu { n / 2 } else { n };
                // Offset activations so LayerNorm's mean matters.
                let x: Vec<f32> = rng.vec(m * k, 3.0).iter().map(|v| v + 5.0).collect();
                let resid = rng.vec(m * n_out, 2.0);
                let tx = Tensor::from_slice(dev, &x, &[m, k]).unwrap();
                let t_resid = Tensor::from_slice(dev, &resid, &[m, n_out]).unwrap();
                let out = Tensor::empty(dev, &[m, n_out], DType::F32).unwrap();
                let (gpu_norm, cpu_norm) = match norm {
                    0 => (None, None),
                    1 => (
                        Some(FoldedNorm::Rms { weight: &t_gamma, eps: 1e-6 }),
                        Some(Norm::Rms { weight: &gamma, eps: 1e-6 }),
                    ),
                    _ => (
                        Some(FoldedNorm::Layer { weight: &t_gamma, bias: &t_beta, eps: 1e-5 }),
                        Some(Norm::Layer { weight: &gamma, bias: &beta, eps: 1e-5 }),
                    ),
                };
                let f = Fusion {
                    norm: gpu_norm,
                    bias: with_bias.then_some(&t_bias),
                    act,
                    residual: with_residual.then_some(&t_resid),
                    segments: None,
                };
                matvec::matvec_fused(&mut rec, &tx, &tw, &f, &out).unwrap();
                let want = twin::fused(
                    &x,
                    &vals,
                    n,
                    k,
                    cpu_norm,
                    with_bias.then_some(bias.as_slice()),
                    act,
                    with_residual.then_some(resid.as_slice()),
                );
                let what = format!(
                    "fused {dtype} M={m} norm={norm} bias={with_bias} act={act:?} residual={with_residual} subgroups={}",
                    dev.subgroups()
                );
                cases.push(Case { what, out, want, tol: tolerance::MATVEC_FUSED });
            }
        }
    }
    rec.submit().unwrap();
    check(&cases);
}

/// Stacked projections (q, k, v) with their output cut into parts: each part is the
/// twin's columns, stored contiguously, for M = 1, 3, 16 and two or three parts.
fn segments(dev: &Device, seed: u64, dtypes: &[DType]) {
    let mut rng = Rng::new(seed);
    let mut rec = Recorder::new(dev);
    let mut cases = Vec::new();
    let (n, k) = (40usize, 256usize);
    let gamma = rng.vec(k, 2.0);
    let bias = rng.vec(n, 1.0);
    let t_gamma = Tensor::from_slice(dev, &gamma, &[k]).unwrap();
    let t_bias = Tensor::from_slice(dev, &bias, &[n]).unwrap();
    for &dtype in dtypes {
        let (bytes, vals) = weights(&mut rng, dtype, n, k);
        let tw = Tensor::from_bytes(dev, &bytes, &[n, k], dtype).unwrap();
        for m in [1usize, 3, 16] {
            for cuts in [[24, 32], [8, 40], [0, 13]] {
                let x = rng.vec(m * k, 3.0);
                let tx = Tensor::from_slice(dev, &x, &[m, k]).unwrap();
                let out = Tensor::empty(dev, &[m, n], DType::F32).unwrap();
                let f = Fusion {
                    norm: Some(FoldedNorm::Rms { weight: &t_gamma, eps: 1e-6 }),
                    bias: Some(&t_bias),
                    segments: Some(cuts),
                    ..Default::default()
                };
                matvec::matvec_fused(&mut rec, &tx, &tw, &f, &out).unwrap();
                let y = twin::fused(&x, &vals, n, k, Some(Norm::Rms { weight: &gamma, eps: 1e-6 }), Some(&bias), Activation::None, None);
                let want = twin::segmented(&y, m, n, cuts);
                let what = format!("segments {cuts:?} {dtype} M={m} subgroups={}", dev.subgroups());
                cases.push(Case { what, out, want, tol: tolerance::MATVEC_FUSED });
            }
        }
    }
    rec.submit().unwrap();
    check(&cases);
}

#[test]
fn segmented_outputs_equal_the_twin_with_subgroups() {
    segments(&test_device(), 46, &[DType::F16, DType::Q5_0, DType::Q4_K]);
}

#[test]
fn segmented_outputs_equal_the_twin_without_subgroups() {
    let dev = test_device();
    dev.set_subgroups(false);
    segments(&dev, 47, &[DType::F32, DType::Q8_0, DType::Q6_K]);
}

#[test]
fn fusions_equal_the_composed_ops_with_subgroups() {
    fusions(&test_device(), 44, &[DType::F16, DType::Q5_K, DType::Q8_0]);
}

#[test]
fn fusions_equal_the_composed_ops_without_subgroups() {
    let dev = test_device();
    dev.set_subgroups(false);
    fusions(&dev, 45, &[DType::F32, DType::Q4_1, DType::Q6_K]);
}

#[test]
fn fused_bad_arguments_are_clear_errors() {
    let dev = test_device();
    let f32s = |shape: &[usize]| Tensor::zeros(&dev, shape, DType::F32).unwrap();
    let (x, w) = (f32s(&[2, 8]), f32s(&[6, 8]));
    let err = |f: &Fusion, out: &Tensor, x: &Tensor, w: &Tensor| {
        matvec::matvec_fused(&mut Recorder::new(&dev), x, w, f, out).unwrap_err().to_string()
    };
    let e = err(&Fusion { act: Activation::SwiGlu, ..Default::default() }, &f32s(&[2, 6]), &x, &w);
    assert!(e.contains("out must have shape [2, 3]"), "{e}");
    let e = err(&Fusion { act: Activation::SwiGlu, ..Default::default() }, &f32s(&[2, 2]), &x, &f32s(&[5, 8]));
    assert!(e.contains("SwiGLU") && e.contains("odd"), "{e}");
    let short = f32s(&[7]);
    let e = err(
        &Fusion { norm: Some(FoldedNorm::Rms { weight: &short, eps: 1e-6 }), ..Default::default() },
        &f32s(&[2, 6]),
        &x,
        &w,
    );
    assert!(e.contains("norm weight must have shape [8], got [7]"), "{e}");
    let e = err(&Fusion { bias: Some(&short), ..Default::default() }, &f32s(&[2, 6]), &x, &w);
    assert!(e.contains("bias must have shape [6], got [7]"), "{e}");
    let r = f32s(&[1, 6]);
    let e = err(&Fusion { residual: Some(&r), ..Default::default() }, &f32s(&[2, 6]), &x, &w);
    assert!(e.contains("residual must have shape [2, 6], got [1, 6]"), "{e}");
    let out = f32s(&[2, 6]);
    let e = err(&Fusion { residual: Some(&out), ..Default::default() }, &out, &x, &w);
    assert!(e.contains("different buffer"), "{e}");
    let e = err(&Fusion { segments: Some([5, 3]), ..Default::default() }, &f32s(&[2, 6]), &x, &w);
    assert!(e.contains("segments 5, 3"), "{e}");
    let e = err(&Fusion::default(), &f32s(&[2, 6]), &f32s(&[2, 7]), &f32s(&[6, 7]));
    assert!(e.contains("K % 4 == 0"), "{e}");
}

/// Q8_0 with its block shared by 1, 2, 4 or 8 invocations (the GPU default is 4, a CPU
/// adapter's 1), 1, 2 or 16 weight rows per workgroup and 32, 64 or 128 invocations per
/// workgroup (past 32 with subgroups only), on both reductions, with a norm folded in:
/// every combination equals the twin. K = 32 leaves most invocations without
/// a block; K = 576 (18 blocks, SmolLM2) leaves a partial last pass.
#[test]
fn q8_0_lane_counts_and_row_counts_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(47);
    for subgroups in [true, false] {
        dev.set_subgroups(subgroups);
        let mut rec = Recorder::new(&dev);
        let mut cases = Vec::new();
        for q8_lanes in [1usize, 2, 4, 8] {
            for (i, &(k, m, rows)) in [(32usize, 1usize, 2usize), (576, 1, 16), (160, 3, 1), (576, 16, 2)].iter().enumerate() {
                let n = [5usize, 33, 17, 3][i];
                let (bytes, vals) = weights(&mut rng, DType::Q8_0, n, k);
                let x = rng.vec(m * k, 3.0);
                let g = rng.vec(k, 1.0);
                let tx = Tensor::from_slice(&dev, &x, &[m, k]).unwrap();
                let tw = Tensor::from_bytes(&dev, &bytes, &[n, k], DType::Q8_0).unwrap();
                let tg = Tensor::from_slice(&dev, &g, &[k]).unwrap();
                let out = Tensor::empty(&dev, &[m, n], DType::F32).unwrap();
                let f = Fusion { norm: Some(FoldedNorm::Rms { weight: &tg, eps: 1e-6 }), ..Default::default() };
                let tuning = matvec::Tuning { rows, q8_lanes, workgroup: [32, 64, 128][(i + q8_lanes) % 3] };
                matvec::matvec_fused_tuned(&mut rec, &tx, &tw, &f, &out, &tuning).unwrap();
                let norm = Some(Norm::Rms { weight: &g, eps: 1e-6 });
                cases.push(Case {
                    what: format!("Q8_0 lanes={q8_lanes} rows={rows} M={m} N={n} K={k} subgroups={}", dev.subgroups()),
                    out,
                    want: twin::fused(&x, &vals, n, k, norm, None, Activation::None, None),
                    tol: tolerance::matmul_for(DType::Q8_0),
                });
            }
        }
        rec.submit().unwrap();
        check(&cases);
    }
    let x = Tensor::zeros(&dev, &[1, 32], DType::F32).unwrap();
    let w = Tensor::zeros(&dev, &[2, 32], DType::F32).unwrap();
    let out = Tensor::zeros(&dev, &[1, 2], DType::F32).unwrap();
    let bad = matvec::Tuning { rows: 2, q8_lanes: 3, workgroup: 32 };
    let e = matvec::matvec_fused_tuned(&mut Recorder::new(&dev), &x, &w, &Fusion::default(), &out, &bad).unwrap_err();
    assert!(e.to_string().contains("q8_lanes") && e.to_string().contains("got 3"), "{e}");
    let bad = matvec::Tuning { rows: 2, q8_lanes: 1, workgroup: 48 };
    let e = matvec::matvec_fused_tuned(&mut Recorder::new(&dev), &x, &w, &Fusion::default(), &out, &bad).unwrap_err();
    assert!(e.to_string().contains("workgroup") && e.to_string().contains("got 48"), "{e}");
}


/// Workgroups of 64 and 128 invocations (with subgroups) for the other families: a float,
/// a 32-element, a K-quant and the Q6_K file, one and five activation rows.
#[test]
fn wide_workgroups_match_twin_for_every_family() {
    let dev = test_device();
    let mut rng = Rng::new(48);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in [DType::F16, DType::Q5_0, DType::Q4_1, DType::Q4_K, DType::Q6_K] {
        for (workgroup, m) in [(64usize, 1usize), (128, 5)] {
            let k = ks(dtype)[1];
            let n = 7;
            let (bytes, vals) = weights(&mut rng, dtype, n, k);
            let x = rng.vec(m * k, 1.0);
            let tx = Tensor::from_slice(&dev, &x, &[m, k]).unwrap();
            let tw = Tensor::from_bytes(&dev, &bytes, &[n, k], dtype).unwrap();
            let out = Tensor::empty(&dev, &[m, n], DType::F32).unwrap();
            let tuning = matvec::Tuning { rows: 2, q8_lanes: 1, workgroup };
            matvec::matvec_fused_tuned(&mut rec, &tx, &tw, &Fusion::default(), &out, &tuning).unwrap();
            cases.push(Case {
                what: format!("{dtype} workgroup={workgroup} M={m} N={n} K={k} subgroups={}", dev.subgroups()),
                out,
                want: twin::matvec_rows(&x, &vals, n, k),
                tol: tolerance::matmul_for(dtype),
            });
        }
    }
    rec.submit().unwrap();
    check(&cases);
}
