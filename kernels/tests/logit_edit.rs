//! logit_edit.wgsl vs its CPU twin: random rows of odd lengths and a vocabulary-sized
//! row, absolute and relative sets and raises, several edits of one id, NaNs in the row,
//! and ids past the row (a clear error).

use kiln_kernels::logit_edit::{set_logits, LogitBase, LogitEdit};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{reference, tolerance, Device, Recorder, Tensor};

/// `edits` on x `[rows, n]` on the GPU, compared with the twin; returns the GPU's rows.
fn check(what: &str, dev: &Device, x: &[f32], rows: usize, n: usize, edits: &[LogitEdit]) -> Vec<f32> {
    let t = Tensor::from_slice(dev, x, &[rows, n]).unwrap();
    let mut rec = Recorder::new(dev);
    set_logits(&mut rec, &t, edits).unwrap();
    rec.submit().unwrap();
    let got = t.to_vec_f32().unwrap();
    let mut want = x.to_vec();
    reference::logit_edit::set_logits(&mut want, n, edits);
    tolerance::compare(what, &got, &want, tolerance::LOGIT_EDIT).unwrap_or_else(|m| panic!("{m}"));
    got
}

fn edit(id: u32, value: f32, relative: bool, raise_only: bool) -> LogitEdit {
    LogitEdit { id, base: if relative { LogitBase::RowMax } else { LogitBase::Zero }, value, raise_only }
}

#[test]
fn random_rows_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(41);
    for &n in &[1usize, 3, 17, 255, 257, 1000, 4099] {
        let rows = 3;
        let x = rng.vec(rows * n, 1e3);
        let mut edits = Vec::new();
        for k in 0..4u32 {
            let id = rng.below(n as u32);
            edits.push(edit(id, rng.uniform(20.0), k % 2 == 0, k >= 2));
        }
        edits.push(LogitEdit { id: rng.below(n as u32), base: LogitBase::Current, value: rng.uniform(20.0), raise_only: false });
        let got = check(&format!("n={n}"), &dev, &x, rows, n, &edits);
        // Untouched entries keep their bits.
        for (i, (&g, &w)) in got.iter().zip(&x).enumerate() {
            if !edits.iter().any(|e| e.id as usize == i % n) {
                assert_eq!(g.to_bits(), w.to_bits(), "n={n} index {i} changed");
            }
        }
    }
}

#[test]
fn relative_set_is_row_max_plus_value_and_becomes_argmax() {
    let dev = test_device();
    let mut rng = Rng::new(42);
    let n = 151936;
    let mut x = rng.vec(2 * n, 30.0);
    x[n + 77] = 45.0;
    let got = check("vocab", &dev, &x, 2, n, &[edit(12345, 10.0, true, false)]);
    let max0 = x[..n].iter().copied().fold(f32::MIN, f32::max);
    assert_eq!(got[12345], max0 + 10.0);
    assert_eq!(got[n + 12345], 55.0);
    // Later edits see the max before any edit; a raise below the current value keeps it.
    let got = check("order", &dev, &x[..n], 1, n, &[edit(5, 10.0, true, false), edit(6, 1.0, true, false), edit(5, -100.0, false, true)]);
    assert_eq!(got[5], max0 + 10.0);
    assert_eq!(got[6], max0 + 1.0);
    // A bias adds to the logit as it is.
    let got = check("bias", &dev, &x[..n], 1, n, &[LogitEdit { id: 9, base: LogitBase::Current, value: -2.5, raise_only: false }]);
    assert_eq!(got[9], x[9] - 2.5);
}

#[test]
fn nans_are_ignored_by_the_max() {
    let dev = test_device();
    let mut rng = Rng::new(43);
    let n = 300;
    let mut x = rng.vec(2 * n, 5.0);
    for i in (0..n).step_by(7) {
        x[i] = f32::NAN;
    }
    for v in &mut x[n..] {
        *v = f32::NAN;
    }
    let got = check("nan", &dev, &x, 2, n, &[edit(1, 2.0, true, false)]);
    assert!(!got[1].is_nan());
    assert_eq!(got[n + 1], f32::MIN + 2.0);
}

#[test]
fn ids_past_the_row_are_clear_errors() {
    let dev = test_device();
    let t = Tensor::from_slice(&dev, &[0.0f32; 6], &[2, 3]).unwrap();
    let mut rec = Recorder::new(&dev);
    let err = set_logits(&mut rec, &t, &[edit(3, 1.0, false, false)]).unwrap_err().to_string();
    assert!(err.contains("set_logits") && err.contains("logit id 3 is past the 3 columns"), "{err}");
}
