//! rope.wgsl vs its CPU twin: both modes, positions > 0, odd seq/head counts, and the
//! shared cos/sin table against HF's formula.

use kiln_kernels::reference::rope as twin;
use kiln_kernels::rope::{rope, RopeMode, RopeTable};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{tolerance, DType, Recorder, Tensor, TensorError};

const THETA: f32 = 10000.0;

/// Run the GPU rope on random x and compare with the twin.
fn check(
    dev: &kiln_kernels::Device,
    rng: &mut Rng,
    table: &RopeTable,
    seq: usize,
    heads: usize,
    pos_offset: usize,
    mode: RopeMode,
) {
    let hd = table.head_dim;
    let x = rng.vec(seq * heads * hd, 3.0);
    let tx = Tensor::from_slice(dev, &x, &[seq, heads, hd]).unwrap();
    let out = Tensor::empty(dev, &[seq, heads, hd], DType::F32).unwrap();
    let mut rec = Recorder::new(dev);
    rope(&mut rec, &tx, table, pos_offset, mode, &out).unwrap();
    rec.submit().unwrap();
    let cpu = twin::cpu_table(hd, table.theta, table.max_positions);
    let want = twin::rope(&x, seq, heads, hd, &cpu, pos_offset, mode == RopeMode::Interleaved);
    let got = out.to_vec_f32().unwrap();
    let what = format!("rope {mode:?} seq={seq} heads={heads} head_dim={hd} pos_offset={pos_offset}");
    if let Err(msg) = tolerance::compare(&what, &got, &want, tolerance::ROPE) {
        panic!("{msg}");
    }
}

#[test]
fn rope_matches_twin_in_both_modes() {
    let dev = test_device();
    let mut rng = Rng::new(11);
    for &hd in &[2usize, 8, 64, 128] {
        let table = RopeTable::new(&dev, hd, THETA, 200).unwrap();
        for mode in [RopeMode::HalfSplit, RopeMode::Interleaved] {
            for &(seq, heads) in &[(1usize, 1usize), (3, 3), (17, 2), (1, 17)] {
                for &pos in &[0usize, 5, 100] {
                    check(&dev, &mut rng, &table, seq, heads, pos, mode);
                }
            }
        }
    }
}

#[test]
fn rope_uses_the_last_table_positions() {
    let dev = test_device();
    let mut rng = Rng::new(12);
    let table = RopeTable::new(&dev, 64, 1_000_000.0, 40).unwrap();
    // Positions 23..40: exactly fills the table.
    check(&dev, &mut rng, &table, 17, 3, 23, RopeMode::HalfSplit);
    check(&dev, &mut rng, &table, 17, 3, 23, RopeMode::Interleaved);
}

#[test]
fn table_matches_hf_formula() {
    let (hd, max_pos) = (64usize, 4096usize);
    let table = twin::cpu_table(hd, THETA, max_pos);
    assert_eq!(table.len(), max_pos * hd);
    for &pos in &[0usize, 1, 7, 4095] {
        for i in 0..hd / 2 {
            // HF: inv_freq = 1 / theta ** (arange(0, d, 2).float() / d), f32 throughout.
            let inv = 1.0f32 / THETA.powf((2 * i) as f32 / hd as f32);
            let angle = pos as f32 * inv;
            let (c, s) = (table[(pos * hd / 2 + i) * 2], table[(pos * hd / 2 + i) * 2 + 1]);
            assert!((c - angle.cos()).abs() <= 1e-6, "cos at pos {pos} i {i}: {c} vs {}", angle.cos());
            assert!((s - angle.sin()).abs() <= 1e-6, "sin at pos {pos} i {i}: {s} vs {}", angle.sin());
        }
    }
    // Position 0 is the identity rotation; frequency 0 turns by exactly `pos` radians.
    assert!(table[..hd].chunks(2).all(|cs| cs == [1.0, 0.0]));
    assert_eq!(table[(7 * hd / 2) * 2], (7.0f64).cos() as f32);
    assert_eq!(table[(7 * hd / 2) * 2 + 1], (7.0f64).sin() as f32);
}

#[test]
fn rotation_preserves_pair_norms() {
    // A property of the twin itself, so the reference is not just "whatever the GPU does".
    let mut rng = Rng::new(13);
    let (hd, heads) = (8usize, 2usize);
    let table = twin::cpu_table(hd, THETA, 50);
    let x = rng.vec(3 * heads * hd, 2.0);
    for interleaved in [false, true] {
        let y = twin::rope(&x, 3, heads, hd, &table, 40, interleaved);
        for v in 0..3 * heads {
            let n = |a: &[f32]| a[v * hd..(v + 1) * hd].iter().map(|t| t * t).sum::<f32>();
            assert!((n(&x) - n(&y)).abs() < 1e-4, "norm changed: {} vs {}", n(&x), n(&y));
        }
    }
}

#[test]
fn bad_parameters_are_clear_errors() {
    let dev = test_device();
    let param_name = |e: TensorError| match e {
        TensorError::Param { name, .. } => name,
        other => panic!("expected a Param error, got {other}"),
    };
    assert_eq!(param_name(RopeTable::new(&dev, 7, THETA, 10).err().unwrap()), "head_dim");
    assert_eq!(param_name(RopeTable::new(&dev, 0, THETA, 10).err().unwrap()), "head_dim");
    assert_eq!(param_name(RopeTable::new(&dev, 8, 0.0, 10).err().unwrap()), "theta");
    assert_eq!(param_name(RopeTable::new(&dev, 8, f32::NAN, 10).err().unwrap()), "theta");
    assert_eq!(param_name(RopeTable::new(&dev, 8, f32::INFINITY, 10).err().unwrap()), "theta");

    let table = RopeTable::new(&dev, 8, THETA, 10).unwrap();
    let x = Tensor::from_slice(&dev, &[0.5f32; 3 * 2 * 8], &[3, 2, 8]).unwrap();
    let out = Tensor::empty(&dev, &[3, 2, 8], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    let err = rope(&mut rec, &x, &table, 8, RopeMode::HalfSplit, &out).unwrap_err().to_string();
    assert!(err.contains("positions 8..11") && err.contains("10 positions"), "{err}");
    let x4 = Tensor::from_slice(&dev, &[0.5f32; 3 * 4], &[3, 1, 4]).unwrap();
    let out4 = Tensor::empty(&dev, &[3, 1, 4], DType::F32).unwrap();
    let err = rope(&mut rec, &x4, &table, 0, RopeMode::HalfSplit, &out4).unwrap_err().to_string();
    assert!(err.contains("head_dim 4") && err.contains("head_dim 8"), "{err}");
    let flat = x.reshape(&[6, 8]).unwrap();
    let err = rope(&mut rec, &flat, &table, 0, RopeMode::HalfSplit, &out).unwrap_err().to_string();
    assert!(err.contains("[seq, n_heads, head_dim]"), "{err}");
    let wrong_out = Tensor::empty(&dev, &[2, 3, 8], DType::F32).unwrap();
    let err = rope(&mut rec, &x, &table, 0, RopeMode::HalfSplit, &wrong_out).unwrap_err().to_string();
    assert!(err.contains("out must have shape [3, 2, 8]"), "{err}");
    let err = rope(&mut rec, &x, &table, 0, RopeMode::HalfSplit, &x).unwrap_err().to_string();
    assert!(err.contains("different buffer"), "{err}");
    let ids = Tensor::from_slice(&dev, &[1u32; 48], &[3, 2, 8]).unwrap();
    let err = rope(&mut rec, &ids, &table, 0, RopeMode::HalfSplit, &out).unwrap_err().to_string();
    assert!(err.contains("x must be f32, got u32"), "{err}");
}
