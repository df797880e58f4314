//! kv_cache.wgsl vs its CPU twins: the fused RoPE + append into f16 and f32 multi-slot
//! caches (both RoPE modes, one sequence and per-row tables), the plain append, exact
//! f32 row copies at odd sizes and offsets, appending in pieces equals appending at once,
//! and clear errors.

use kiln_kernels::kv_cache::{kv_append, kv_append_rows, rope_kv_append, Rows};
use kiln_kernels::reference::kv_cache as twin;
use kiln_kernels::reference::rope::cpu_table;
use kiln_kernels::rope::{RopeMode, RopeTable};
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

/// A cache's contents as f32 (f16 widened exactly).
fn cache_values(t: &Tensor) -> Vec<f32> {
    t.to_vec_f32().unwrap()
}

struct AppendCase<'a> {
    n_heads: usize,
    n_kv: usize,
    hd: usize,
    slots: usize,
    capacity: usize,
    rows: &'a [(usize, usize)],
    run: bool,
    f16: bool,
    /// None: kv_append_rows (no RoPE, no q).
    rope: Option<RopeMode>,
}

/// Run the fused append on random rows over caches already holding random values, and
/// compare q_out and both caches (every position, so untouched ones must stay) with the twin.
fn check_append(dev: &Device, rng: &mut Rng, c: &AppendCase) {
    let n_rows = c.rows.len();
    let dtype = if c.f16 { DType::F16 } else { DType::F32 };
    let shape = [c.slots, c.capacity, c.n_kv, c.hd];
    let n: usize = shape.iter().product();
    let store = |x: f32| if c.f16 { twin::round_f16(x) } else { x };
    let mut k_host: Vec<f32> = rng.vec(n, 1.0).into_iter().map(store).collect();
    let mut v_host: Vec<f32> = rng.vec(n, 1.0).into_iter().map(store).collect();
    let upload = |data: &[f32]| {
        if c.f16 {
            let h: Vec<half::f16> = data.iter().map(|&x| half::f16::from_f32(x)).collect();
            Tensor::from_slice(dev, &h, &shape).unwrap()
        } else {
            Tensor::from_slice(dev, data, &shape).unwrap()
        }
    };
    let (tk_cache, tv_cache) = (upload(&k_host), upload(&v_host));
    assert_eq!(tk_cache.dtype(), dtype);
    let q = rng.vec(n_rows * c.n_heads * c.hd, 3.0);
    let k = rng.vec(n_rows * c.n_kv * c.hd, 3.0);
    let v = rng.vec(n_rows * c.n_kv * c.hd, 3.0);
    let tq = Tensor::from_slice(dev, &q, &[n_rows, c.n_heads, c.hd]).unwrap();
    let tk = Tensor::from_slice(dev, &k, &[n_rows, c.n_kv, c.hd]).unwrap();
    let tv = Tensor::from_slice(dev, &v, &[n_rows, c.n_kv, c.hd]).unwrap();
    let q_out = Tensor::empty(dev, &[n_rows, c.n_heads, c.hd], DType::F32).unwrap();
    let host: Vec<[u32; 2]> = c.rows.iter().map(|&(s, p)| [s as u32, p as u32]).collect();
    let flat: Vec<u32> = host.iter().flatten().copied().collect();
    let table_t = Tensor::from_slice(dev, &flat, &[n_rows, 2]).unwrap();
    let rows = if c.run {
        Rows::Run { slot: c.rows[0].0, start: c.rows[0].1 }
    } else {
        Rows::Table { table: &table_t, host: &host }
    };
    let max_pos = c.capacity + 3;
    let table = RopeTable::new(dev, c.hd, 10000.0, max_pos).unwrap();
    let mut rec = Recorder::new(dev);
    let row_elems = c.n_kv * c.hd;
    let want_q = match c.rope {
        Some(mode) => {
            rope_kv_append(&mut rec, &tq, &tk, &tv, &table, mode, rows, &q_out, &tk_cache, &tv_cache).unwrap();
            let cpu = cpu_table(c.hd, 10000.0, max_pos);
            let interleaved = mode == RopeMode::Interleaved;
            Some(twin::rope_kv_append(
                &q,
                &k,
                &v,
                &cpu,
                interleaved,
                c.rows,
                c.n_heads,
                c.n_kv,
                c.hd,
                c.capacity,
                c.f16,
                &mut k_host,
                &mut v_host,
            ))
        }
        None => {
            kv_append_rows(&mut rec, &tk, &tv, rows, &tk_cache, &tv_cache).unwrap();
            twin::append_rows(&mut k_host, &mut v_host, &k, &v, c.rows, row_elems, c.capacity, c.f16);
            None
        }
    };
    rec.submit().unwrap();
    let what = format!(
        "{} {} heads={}/{} hd={} slots={} rows={:?} {}",
        c.rope.map_or("kv_append_rows".to_string(), |m| format!("rope_kv_append {m:?}")),
        if c.f16 { "f16" } else { "f32" },
        c.n_heads,
        c.n_kv,
        c.hd,
        c.slots,
        c.rows,
        if c.run { "run" } else { "table" }
    );
    if let Some(want_q) = want_q {
        if let Err(msg) =
            tolerance::compare(&format!("{what}: q_out"), &q_out.to_vec_f32().unwrap(), &want_q, tolerance::ROPE)
        {
            panic!("{msg}");
        }
    }
    // K went through RoPE (f32 results may differ by an ulp before rounding); V is a copy.
    let k_tol = match (c.f16, c.rope.is_some()) {
        (true, true) => tolerance::KV_F16_STORE,
        (false, true) => tolerance::ROPE,
        (_, false) => tolerance::EXACT,
    };
    if let Err(msg) = tolerance::compare(&format!("{what}: k_cache"), &cache_values(&tk_cache), &k_host, k_tol) {
        panic!("{msg}");
    }
    if let Err(msg) =
        tolerance::compare(&format!("{what}: v_cache"), &cache_values(&tv_cache), &v_host, tolerance::EXACT)
    {
        panic!("{msg}");
    }
}

#[test]
fn rope_append_matches_twin_for_one_sequence() {
    let dev = test_device();
    let mut rng = Rng::new(23);
    for f16 in [true, false] {
        for mode in [RopeMode::HalfSplit, RopeMode::Interleaved] {
            for &(n_heads, n_kv, hd) in &[(14usize, 2usize, 64usize), (3, 1, 40), (6, 6, 72), (4, 2, 8), (2, 1, 128)] {
                // A prefill of 17 tokens at 5.. in slot 1 of 3, and one decode token at 30.
                let prefill: Vec<(usize, usize)> = (5..22).map(|p| (1, p)).collect();
                for rows in [prefill, vec![(2usize, 30usize)]] {
                    let c = AppendCase {
                        n_heads,
                        n_kv,
                        hd,
                        slots: 3,
                        capacity: 31,
                        rows: &rows,
                        run: true,
                        f16,
                        rope: Some(mode),
                    };
                    check_append(&dev, &mut rng, &c);
                }
            }
        }
    }
}

#[test]
fn rope_append_writes_each_table_row_to_its_slot_and_position() {
    let dev = test_device();
    let mut rng = Rng::new(24);
    let rows = [(2usize, 0usize), (0, 9), (3, 4), (1, 30)];
    for f16 in [true, false] {
        for &(n_heads, n_kv, hd) in &[(14usize, 2usize, 64usize), (9, 3, 40)] {
            let c = AppendCase {
                n_heads,
                n_kv,
                hd,
                slots: 4,
                capacity: 31,
                rows: &rows,
                run: false,
                f16,
                rope: Some(RopeMode::HalfSplit),
            };
            check_append(&dev, &mut rng, &c);
            let c = AppendCase { rope: None, ..c };
            check_append(&dev, &mut rng, &c);
        }
    }
}

#[test]
fn plain_append_rows_matches_twin() {
    let dev = test_device();
    let mut rng = Rng::new(25);
    for f16 in [true, false] {
        for &(n_kv, hd) in &[(12usize, 64usize), (1, 2), (3, 72)] {
            let rows: Vec<(usize, usize)> = (0..7).map(|p| (0, p)).collect();
            let c =
                AppendCase { n_heads: n_kv, n_kv, hd, slots: 1, capacity: 7, rows: &rows, run: true, f16, rope: None };
            check_append(&dev, &mut rng, &c);
        }
    }
}

#[test]
fn bad_fused_appends_are_clear_errors() {
    let dev = test_device();
    let t = |shape: &[usize], dt: DType| Tensor::zeros(&dev, shape, dt).unwrap();
    let (kc, vc) = (t(&[2, 8, 2, 4], DType::F16), t(&[2, 8, 2, 4], DType::F16));
    let (q, k, v, q_out) =
        (t(&[2, 4, 4], DType::F32), t(&[2, 2, 4], DType::F32), t(&[2, 2, 4], DType::F32), t(&[2, 4, 4], DType::F32));
    let table = RopeTable::new(&dev, 4, 10000.0, 6).unwrap();
    let rows_t = t(&[2, 2], DType::U32);
    let hs = RopeMode::HalfSplit;
    let mut rec = Recorder::new(&dev);
    let err = rope_kv_append(&mut rec, &q, &k, &v, &table, hs, Rows::Run { slot: 0, start: 7 }, &q_out, &kc, &vc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("context full") && err.contains("7..9"), "{err}");
    let err = rope_kv_append(&mut rec, &q, &k, &v, &table, hs, Rows::Run { slot: 0, start: 5 }, &q_out, &kc, &vc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("position 6 is outside the RoPE table's 6 positions"), "{err}");
    let err = rope_kv_append(&mut rec, &q, &k, &v, &table, hs, Rows::Run { slot: 2, start: 0 }, &q_out, &kc, &vc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("slot 2 of a cache with 2 slots"), "{err}");
    let dup = [[1u32, 3], [1, 3]];
    let err =
        rope_kv_append(&mut rec, &q, &k, &v, &table, hs, Rows::Table { table: &rows_t, host: &dup }, &q_out, &kc, &vc)
            .unwrap_err()
            .to_string();
    assert!(err.contains("two rows write slot 1 position 3"), "{err}");
    let err =
        kv_append_rows(&mut rec, &k, &v, Rows::Table { table: &rows_t, host: &dup }, &kc, &vc).unwrap_err().to_string();
    assert!(err.contains("two rows write slot 1 position 3"), "{err}");
    let k3 = t(&[3, 2, 4], DType::F32);
    let err = rope_kv_append(&mut rec, &q, &k3, &k3, &table, hs, Rows::Run { slot: 0, start: 0 }, &q_out, &kc, &vc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("same rows"), "{err}");
    let k1 = t(&[2, 1, 4], DType::F32);
    let err = kv_append_rows(&mut rec, &k1, &k1, Rows::Run { slot: 0, start: 0 }, &kc, &vc).unwrap_err().to_string();
    assert!(err.contains("k must be [n_rows, 2, 4]"), "{err}");
    let err = rope_kv_append(&mut rec, &q, &k, &v, &table, hs, Rows::Run { slot: 0, start: 0 }, &q, &kc, &vc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("different buffer"), "{err}");
    let err = kv_append_rows(&mut rec, &k, &v, Rows::Run { slot: 0, start: 0 }, &kc, &kc).unwrap_err().to_string();
    assert!(err.contains("different buffer"), "{err}");
    let vc32 = t(&[2, 8, 2, 4], DType::F32);
    let err = kv_append_rows(&mut rec, &k, &v, Rows::Run { slot: 0, start: 0 }, &kc, &vc32).unwrap_err().to_string();
    assert!(err.contains("v_cache must be f16, got f32"), "{err}");
    let table8 = RopeTable::new(&dev, 8, 10000.0, 6).unwrap();
    let err = rope_kv_append(&mut rec, &q, &k, &v, &table8, hs, Rows::Run { slot: 0, start: 0 }, &q_out, &kc, &vc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("RoPE table's 8"), "{err}");
    let (kc_odd, vc_odd) = (t(&[8, 1, 3], DType::F32), t(&[8, 1, 3], DType::F32));
    let k_odd = t(&[1, 1, 3], DType::F32);
    let err = kv_append_rows(&mut rec, &k_odd, &k_odd, Rows::Run { slot: 0, start: 0 }, &kc_odd, &vc_odd)
        .unwrap_err()
        .to_string();
    assert!(err.contains("head_dim must be even"), "{err}");
    rec.submit().unwrap();
}
