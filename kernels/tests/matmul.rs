//! matmul.wgsl vs its CPU twin: odd shapes (not multiples of the 64×64×32 tile),
//! batches (shared and batched weights, rank 1–4 activations), every dense weight dtype
//! on both weight tiles (f32, and f16 where the device has SHADER_F16), large
//! magnitudes, and clear errors for bad arguments. GGUF block weights: quant_legacy.rs
//! and quant_k.rs.

use kiln_kernels::matmul::{auto_weight_tile, WeightTile};
use kiln_kernels::reference::matmul::{abs_matmul, f16_tile_values, matmul as matmul_ref, quantize_weights};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{matmul, tolerance, DType, Device, Recorder, Tensor};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

fn tol(dtype: DType) -> tolerance::Tol {
    tolerance::matmul_for(dtype)
}

/// One recorded matmul and the CPU result it must match.
struct Case {
    what: String,
    out: Tensor,
    want: Vec<f32>,
    dtype: DType,
}

/// Record `a[a_shape] · w[w_shape]ᵀ` with random data and compute its twin.
fn record(dev: &Device, rec: &mut Recorder, rng: &mut Rng, a_shape: &[usize], w_shape: &[usize], dtype: DType) -> Case {
    let k = *a_shape.last().unwrap();
    let (m, batch) = match a_shape.len() {
        1 => (1, 1),
        r => (a_shape[r - 2], a_shape[..r - 2].iter().product()),
    };
    let n = w_shape[w_shape.len() - 2];
    let w_batched = w_shape.len() > 2;

    let a = rng.vec(batch * m * k, 1.0);
    let w = rng.vec(w_shape.iter().product(), 1.0);
    let (w_bytes, w_vals) = quantize_weights(&w, dtype);
    let ta = Tensor::from_slice(dev, &a, a_shape).unwrap();
    let tw = Tensor::from_bytes(dev, &w_bytes, w_shape, dtype).unwrap();
    let mut out_shape = a_shape.to_vec();
    *out_shape.last_mut().unwrap() = n;
    let out = Tensor::empty(dev, &out_shape, DType::F32).unwrap();
    matmul::matmul(rec, &ta, &tw, &out).unwrap();
    Case {
        what: format!("matmul a{a_shape:?} w{w_shape:?} {dtype}"),
        out,
        want: matmul_ref(&a, &w_vals, batch, m, n, k, w_batched),
        dtype,
    }
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
    let mut rng = Rng::new(11);
    let sizes = [1usize, 3, 17, 33, 127];
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for (i, &m) in sizes.iter().enumerate() {
        for (j, &n) in sizes.iter().enumerate() {
            for (l, &k) in sizes.iter().enumerate() {
                // Every (M, N, K) once, the weight dtype rotating so each dtype sees
                // every size in every position.
                let dtype = DTYPES[(i + j + l) % 3];
                cases.push(record(&dev, &mut rec, &mut rng, &[m, k], &[n, k], dtype));
            }
        }
    }
    rec.submit().unwrap();
    check_all(&cases);
}

#[test]
fn moderate_shapes_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(12);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in DTYPES {
        // (M, N, K): partial tiles on every side, exact tiles, long K.
        for (m, n, k) in [(64, 96, 80), (130, 70, 300), (128, 128, 64), (65, 129, 17)] {
            cases.push(record(&dev, &mut rec, &mut rng, &[m, k], &[n, k], dtype));
        }
    }
    rec.submit().unwrap();
    check_all(&cases);
}

#[test]
fn batched_activations_with_shared_weights() {
    let dev = test_device();
    let mut rng = Rng::new(13);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in DTYPES {
        cases.push(record(&dev, &mut rec, &mut rng, &[3, 17, 33], &[20, 33], dtype));
        cases.push(record(&dev, &mut rec, &mut rng, &[2, 3, 5, 40], &[9, 40], dtype));
        cases.push(record(&dev, &mut rec, &mut rng, &[2, 70, 19], &[65, 19], dtype));
    }
    rec.submit().unwrap();
    check_all(&cases);
}

#[test]
fn batched_weights() {
    let dev = test_device();
    let mut rng = Rng::new(14);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in DTYPES {
        // [B, N, K] weights, one matrix per batch of a.
        cases.push(record(&dev, &mut rec, &mut rng, &[4, 17, 33], &[4, 3, 33], dtype));
        // a rank 4 [2, 3, M, K] against w [6, N, K] and against w [2, 3, N, K].
        cases.push(record(&dev, &mut rec, &mut rng, &[2, 3, 5, 40], &[6, 9, 40], dtype));
        cases.push(record(&dev, &mut rec, &mut rng, &[2, 3, 7, 3], &[2, 3, 66, 3], dtype));
    }
    rec.submit().unwrap();
    check_all(&cases);
}

#[test]
fn rank_one_activation_is_one_row() {
    let dev = test_device();
    let mut rng = Rng::new(15);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in DTYPES {
        cases.push(record(&dev, &mut rec, &mut rng, &[19], &[11, 19], dtype));
        cases.push(record(&dev, &mut rec, &mut rng, &[127], &[1, 3, 127], dtype));
    }
    rec.submit().unwrap();
    assert_eq!(cases[0].out.shape(), &[11]);
    check_all(&cases);
}

#[test]
fn batches_beyond_the_grid_limit_loop_in_the_kernel() {
    let dev = test_device();
    let max_z = dev.limits().max_compute_workgroups_per_dimension as usize;
    let mut rng = Rng::new(16);
    let mut rec = Recorder::new(&dev).with_trace();
    let case = record(&dev, &mut rec, &mut rng, &[max_z + 3, 1, 2], &[3, 2], DType::F32);
    let trace = rec.submit().unwrap().trace;
    assert_eq!(trace[0].workgroups, [1, 1, max_z as u32]);
    check_all(&[case]);
}

#[test]
fn trace_reports_flops_and_bytes() {
    let dev = test_device();
    let mut rng = Rng::new(17);
    let mut rec = Recorder::new(&dev).with_trace();
    let case = record(&dev, &mut rec, &mut rng, &[2, 65, 33], &[70, 33], DType::F16);
    let trace = rec.submit().unwrap().trace;
    let kernel = match auto_weight_tile(&dev, DType::F16) {
        WeightTile::F16 => "matmul::matmul_f16",
        _ => "matmul::matmul",
    };
    assert_eq!(trace[0].kernel, kernel);
    assert_eq!(trace[0].flops, 2 * 2 * 65 * 70 * 33);
    assert_eq!(trace[0].bytes, (2 * 65 * 33 * 4 + 70 * 33 * 2 + 2 * 65 * 70 * 4) as u64);
    assert_eq!(trace[0].workgroups, [2, 2, 2]);
    check_all(&[case]);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dev = test_device();
    let f32s = |shape: &[usize]| Tensor::zeros(&dev, shape, DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    let err = |r: kiln_kernels::Result<()>| r.unwrap_err().to_string();

    // K mismatch.
    let e = err(matmul::matmul(&mut rec, &f32s(&[4, 8]), &f32s(&[5, 7]), &f32s(&[4, 5])));
    assert!(e.contains("matmul") && e.contains("K mismatch") && e.contains("K = 8") && e.contains("K = 7"), "{e}");
    // Wrong output shape.
    let e = err(matmul::matmul(&mut rec, &f32s(&[2, 4, 8]), &f32s(&[5, 8]), &f32s(&[4, 5])));
    assert!(e.contains("out must have shape [2, 4, 5], got [4, 5]"), "{e}");
    // u32 weights.
    let ids = Tensor::zeros(&dev, &[5, 8], DType::U32).unwrap();
    let e = err(matmul::matmul(&mut rec, &f32s(&[4, 8]), &ids, &f32s(&[4, 5])));
    assert!(e.contains("w must be f32, f16, bf16 or a GGUF block type, got u32"), "{e}");
    // f16 activations.
    let a16 = Tensor::zeros(&dev, &[4, 8], DType::F16).unwrap();
    let e = err(matmul::matmul(&mut rec, &a16, &f32s(&[5, 8]), &f32s(&[4, 5])));
    assert!(e.contains("a must be f32, got f16"), "{e}");
    // Batched weights whose batch differs from a's.
    let e = err(matmul::matmul(&mut rec, &f32s(&[3, 4, 8]), &f32s(&[2, 5, 8]), &f32s(&[3, 4, 5])));
    assert!(e.contains("batch mismatch") && e.contains("2 matrices") && e.contains("batch 3"), "{e}");
    // Rank-1 weights.
    let e = err(matmul::matmul(&mut rec, &f32s(&[4, 8]), &f32s(&[8]), &f32s(&[4, 1])));
    assert!(e.contains("w must be [N, K] or [batch, N, K], got [8]"), "{e}");
    // Writing into an input.
    let a = f32s(&[4, 4]);
    let e = err(matmul::matmul(&mut rec, &a, &f32s(&[4, 4]), &a));
    assert!(e.contains("different buffer"), "{e}");
}

/// Whether the device can run f16 weight tiles; says so when it cannot.
fn has_f16(dev: &Device) -> bool {
    let ok = dev.features().contains(wgpu::Features::SHADER_F16);
    if !ok {
        eprintln!("{} has no SHADER_F16: f16 weight tiles not tested here", dev.info().name);
    }
    ok
}

/// The weight tiles the device can run.
fn tiles(dev: &Device) -> Vec<WeightTile> {
    if has_f16(dev) {
        vec![WeightTile::F32, WeightTile::F16]
    } else {
        vec![WeightTile::F32]
    }
}

/// `a[m, k] · w[n, k]ᵀ` with `w` stored as `dtype`, on weight tile `tile`; the case
/// compares with the twin of that tile (f16 tiles: the weights rounded to f16), with
/// tolerances scaled by the data's magnitude `a_scale · w_scale`.
#[allow(clippy::too_many_arguments)]
fn record_tile(
    dev: &Device,
    rec: &mut Recorder,
    rng: &mut Rng,
    (m, n, k): (usize, usize, usize),
    dtype: DType,
    tile: WeightTile,
    a_scale: f32,
    w_scale: f32,
) -> (Case, Vec<f32>, Vec<f32>) {
    let a = rng.vec(m * k, a_scale);
    let w = rng.vec(n * k, w_scale);
    let (w_bytes, w_vals) = quantize_weights(&w, dtype);
    let ta = Tensor::from_slice(dev, &a, &[m, k]).unwrap();
    let tw = Tensor::from_bytes(dev, &w_bytes, &[n, k], dtype).unwrap();
    let out = Tensor::empty(dev, &[m, n], DType::F32).unwrap();
    matmul::matmul_with(rec, &ta, &tw, &out, tile).unwrap();
    let staged = if tile == WeightTile::F16 { f16_tile_values(&w_vals) } else { w_vals.clone() };
    let case = Case {
        what: format!("matmul a[{m}, {k}] w[{n}, {k}] {dtype} {tile:?} tile, |a| {a_scale}, |w| {w_scale}"),
        out,
        want: matmul_ref(&a, &staged, 1, m, n, k, false),
        dtype,
    };
    (case, a, w_vals)
}

/// Every dense dtype on both tiles over M ∈ {1, 17, 65, 130}, N ∈ {1, 33, 127, 200} and
/// odd K (runs that cross the row's end, f16 pairs that straddle words): each tile
/// against its own twin, and the f16 tile against the exact weights within one f16
/// rounding per weight (the f32 tile's result, up to summation order).
#[test]
fn both_weight_tiles_match_their_twins_on_odd_shapes() {
    let dev = test_device();
    let mut rng = Rng::new(18);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    let ms = [1usize, 17, 65, 130];
    let ns = [1usize, 33, 127, 200];
    let ks = [1usize, 31, 33, 100];
    for tile in tiles(&dev) {
        for (i, &m) in ms.iter().enumerate() {
            for (j, &n) in ns.iter().enumerate() {
                let k = ks[(i + j) % ks.len()];
                let dtype = DTYPES[(i + 2 * j) % 3];
                let (case, a, w) = record_tile(&dev, &mut rec, &mut rng, (m, n, k), dtype, tile, 1.0, 1.0);
                cases.push((case, tile, a, w, (m, n, k)));
            }
        }
    }
    rec.submit().unwrap();
    for (c, tile, a, w, (m, n, k)) in cases {
        let got = c.out.to_vec_f32().unwrap();
        let tol = if tile == WeightTile::F16 { tolerance::MATMUL_F16_TILE } else { tol(c.dtype) };
        match tolerance::compare(&c.what, &got, &c.want, tol) {
            Ok(report) => eprintln!("{}: {report}", c.what),
            Err(msg) => panic!("{msg}"),
        }
        if tile == WeightTile::F16 {
            let exact = matmul_ref(&a, &w, 1, m, n, k, false);
            let slack: Vec<f32> =
                abs_matmul(&a, &w, 1, m, n, k, false).iter().map(|s| s * tolerance::F16_TILE_ROUNDING).collect();
            let what = format!("{} vs exact weights", c.what);
            match tolerance::compare_with_slack(&what, &got, &exact, tolerance::MATMUL_HALF, &slack) {
                Ok(report) => eprintln!("{what}: {report}"),
                Err(msg) => panic!("{msg}"),
            }
        }
    }
}

/// Activations of ±1e4 and weights of ±100 (f16 range: |w| ≤ 65504 still holds).
#[test]
fn large_magnitudes_match_the_twin_on_both_tiles() {
    let dev = test_device();
    let mut rng = Rng::new(19);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for tile in tiles(&dev) {
        for dtype in DTYPES {
            let (case, _, _) = record_tile(&dev, &mut rec, &mut rng, (70, 65, 300), dtype, tile, 1e4, 100.0);
            cases.push((case, tile));
        }
    }
    rec.submit().unwrap();
    for (c, tile) in cases {
        let got = c.out.to_vec_f32().unwrap();
        let base = if tile == WeightTile::F16 { tolerance::MATMUL_F16_TILE } else { tol(c.dtype) };
        match tolerance::compare(&c.what, &got, &c.want, base.scaled(1e4 * 100.0)) {
            Ok(report) => eprintln!("{}: {report}", c.what),
            Err(msg) => panic!("{msg}"),
        }
    }
}

/// Auto picks f16 tiles for f16 and block weights exactly when the device has SHADER_F16
/// and it is not turned off (`Device::set_f16`, KILN_NO_F16), never for f32 or bf16.
#[test]
fn auto_weight_tile_follows_the_device() {
    let dev = test_device();
    for on in [true, false] {
        dev.set_f16(on);
        let f16 = on && dev.features().contains(wgpu::Features::SHADER_F16);
        let want = if f16 { WeightTile::F16 } else { WeightTile::F32 };
        assert_eq!(auto_weight_tile(&dev, DType::F16), want);
        assert_eq!(auto_weight_tile(&dev, DType::Q4_K), want);
        assert_eq!(auto_weight_tile(&dev, DType::Q8_0), want);
        assert_eq!(auto_weight_tile(&dev, DType::F32), WeightTile::F32);
        assert_eq!(auto_weight_tile(&dev, DType::BF16), WeightTile::F32);
    }
}
