//! kv_cache.wgsl vs its CPU twin: exact copies at odd sizes and offsets, appending in
//! pieces equals appending at once, and clear errors.

use kiln_kernels::kv_cache::kv_append;
use kiln_kernels::reference::kv_cache as twin;
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{tolerance, DType, Device, Recorder, Tensor};

fn check(what: &str, got: &Tensor, want: &[f32]) {
    let got = got.to_vec_f32().unwrap();
    if let Err(msg) = tolerance::compare(what, &got, want, tolerance::EXACT) {
        panic!("{msg}");
    }
}

/// Append `pieces` (row counts) one after another starting at `start`, on the GPU and the twin.
fn append_pieces(
    dev: &Device,
    rng: &mut Rng,
    max_ctx: usize,
    kv: usize,
    hd: usize,
    start: usize,
    pieces: &[usize],
) -> (Tensor, Vec<f32>, Vec<f32>) {
    let row = kv * hd;
    let cache = Tensor::zeros(dev, &[max_ctx, kv, hd], DType::F32).unwrap();
    let mut want = vec![0.0f32; max_ctx * row];
    let mut all = Vec::new();
    let mut rec = Recorder::new(dev);
    let mut pos = start;
    let mut news = Vec::new();
    for &n in pieces {
        let data = rng.vec(n * row, 5.0);
        let t = Tensor::from_slice(dev, &data, &[n, kv, hd]).unwrap();
        kv_append(&mut rec, &t, &cache, pos).unwrap();
        want = twin::kv_append(&want, &data, row, pos);
        all.extend_from_slice(&data);
        news.push(t);
        pos += n;
    }
    rec.submit().unwrap();
    (cache, want, all)
}

#[test]
fn append_matches_twin_at_odd_sizes() {
    let dev = test_device();
    let mut rng = Rng::new(21);
    for &(kv, hd) in &[(1usize, 1usize), (2, 3), (3, 17), (2, 64), (1, 127)] {
        for &(max_ctx, start, n) in &[(1usize, 0usize, 1usize), (5, 2, 3), (40, 0, 33), (40, 7, 33), (300, 299, 1)] {
            let (cache, want, _) = append_pieces(&dev, &mut rng, max_ctx, kv, hd, start, &[n]);
            check(&format!("kv_append kv={kv} hd={hd} max_ctx={max_ctx} pos={start} n={n}"), &cache, &want);
        }
    }
}

#[test]
fn appending_in_pieces_equals_appending_once() {
    let dev = test_device();
    let mut rng = Rng::new(22);
    let (max_ctx, kv, hd) = (50usize, 2usize, 40usize);
    let pieces = [5usize, 1, 17, 1, 3];
    let (pieced, want, all) = append_pieces(&dev, &mut rng, max_ctx, kv, hd, 4, &pieces);
    check("kv_append in pieces vs twin", &pieced, &want);
    // The same rows in one append.
    let total: usize = pieces.iter().sum();
    let once = Tensor::zeros(&dev, &[max_ctx, kv, hd], DType::F32).unwrap();
    let t = Tensor::from_slice(&dev, &all, &[total, kv, hd]).unwrap();
    let mut rec = Recorder::new(&dev);
    kv_append(&mut rec, &t, &once, 4).unwrap();
    rec.submit().unwrap();
    check("kv_append once vs in pieces", &once, &pieced.to_vec_f32().unwrap());
}

#[test]
fn bad_appends_are_clear_errors() {
    let dev = test_device();
    let cache = Tensor::zeros(&dev, &[8, 2, 4], DType::F32).unwrap();
    let new = Tensor::from_slice(&dev, &[1.0f32; 3 * 8], &[3, 2, 4]).unwrap();
    let mut rec = Recorder::new(&dev);
    let err = kv_append(&mut rec, &new, &cache, 6).unwrap_err().to_string();
    assert!(err.contains("context full") && err.contains("6..9") && err.contains("holds 8"), "{err}");
    let err = kv_append(&mut rec, &new, &cache, usize::MAX).unwrap_err().to_string();
    assert!(err.contains("context full"), "{err}");
    let wrong_hd = Tensor::from_slice(&dev, &[1.0f32; 3 * 2 * 5], &[3, 2, 5]).unwrap();
    let err = kv_append(&mut rec, &wrong_hd, &cache, 0).unwrap_err().to_string();
    assert!(err.contains("[n_kv_heads, head_dim]"), "{err}");
    let wrong_heads = Tensor::from_slice(&dev, &[1.0f32; 3 * 4], &[3, 1, 4]).unwrap();
    let err = kv_append(&mut rec, &wrong_heads, &cache, 0).unwrap_err().to_string();
    assert!(err.contains("[n_kv_heads, head_dim]"), "{err}");
    let flat = new.reshape(&[3, 8]).unwrap();
    let err = kv_append(&mut rec, &flat, &cache, 0).unwrap_err().to_string();
    assert!(err.contains("new must be [rows, n_kv_heads, head_dim]"), "{err}");
    let err = kv_append(&mut rec, &cache, &cache, 0).unwrap_err().to_string();
    assert!(err.contains("different buffer"), "{err}");
    let ids = Tensor::from_slice(&dev, &[1u32; 24], &[3, 2, 4]).unwrap();
    let err = kv_append(&mut rec, &ids, &cache, 0).unwrap_err().to_string();
    assert!(err.contains("new must be f32, got u32"), "{err}");
}
