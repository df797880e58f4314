//! attention.wgsl (online softmax) vs its two-pass f64 CPU twin: GQA ratios 1, 2, 3, 7
//! and 9 (two head chunks), head_dim 8/40/64/72/128, f32 and f16 caches, contexts crossing
//! key-slot boundaries, second prefill chunks, the split-K path, both lane-sum paths
//! (subgroup and workgroup memory), multi-slot batches with a position per row, the f16
//! cache against the f32 one, and clear errors.

use kiln_kernels::attention::{attend_with, attention, attention_decode, AttendOptions, LanePath};
use kiln_kernels::kv_cache::Rows;
use kiln_kernels::reference::attention as twin;
use kiln_kernels::reference::kv_cache::round_f16;
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{tolerance, DType, Device, Recorder, Tensor};

struct Case {
    n_q: usize,
    n_heads: usize,
    n_kv: usize,
    hd: usize,
    pos_offset: usize,
    max_ctx: usize,
}

/// Random q and caches; runs `attention` (or `attention_decode`) and compares with the twin.
fn check(dev: &Device, rng: &mut Rng, c: &Case, decode: bool) {
    let row = c.n_kv * c.hd;
    let q = rng.vec(c.n_q * c.n_heads * c.hd, 2.0);
    let k = rng.vec(c.max_ctx * row, 2.0);
    let v = rng.vec(c.max_ctx * row, 1.0);
    let tq = Tensor::from_slice(dev, &q, &[c.n_q, c.n_heads, c.hd]).unwrap();
    let tk = Tensor::from_slice(dev, &k, &[c.max_ctx, c.n_kv, c.hd]).unwrap();
    let tv = Tensor::from_slice(dev, &v, &[c.max_ctx, c.n_kv, c.hd]).unwrap();
    let out = Tensor::empty(dev, &[c.n_q, c.n_heads, c.hd], DType::F32).unwrap();
    let mut rec = Recorder::new(dev);
    if decode {
        attention_decode(&mut rec, &tq, &tk, &tv, c.pos_offset, &out).unwrap();
    } else {
        attention(&mut rec, &tq, &tk, &tv, c.pos_offset, &out).unwrap();
    }
    rec.submit().unwrap();
    let want = twin::attention(&q, &k, &v, c.n_q, c.n_heads, c.n_kv, c.hd, c.pos_offset);
    let what = format!(
        "attention{} n_q={} heads={}/{} head_dim={} pos_offset={} max_ctx={}",
        if decode { "_decode" } else { "" },
        c.n_q,
        c.n_heads,
        c.n_kv,
        c.hd,
        c.pos_offset,
        c.max_ctx
    );
    if let Err(msg) = tolerance::compare(&what, &out.to_vec_f32().unwrap(), &want, tolerance::ATTENTION) {
        panic!("{msg}");
    }
}

const HEADS: &[(usize, usize)] = &[(4, 4), (14, 2), (7, 1)];

#[test]
fn prefill_matches_twin_across_tile_boundaries() {
    let dev = test_device();
    let mut rng = Rng::new(31);
    for &(n_heads, n_kv) in HEADS {
        for &hd in &[64usize, 40] {
            for &n_q in &[1usize, 3, 17, 70, 130] {
                // Skip the slowest combinations on the software rasteriser; every context
                // length still meets every GQA ratio at head_dim 40.
                if n_q == 130 && hd == 64 && n_heads != 7 {
                    continue;
                }
                let c = Case { n_q, n_heads, n_kv, hd, pos_offset: 0, max_ctx: n_q + 2 };
                check(&dev, &mut rng, &c, false);
            }
        }
    }
}

#[test]
fn second_prefill_chunk_attends_the_earlier_one() {
    let dev = test_device();
    let mut rng = Rng::new(32);
    for &(n_heads, n_kv) in HEADS {
        for &(pos_offset, n_q) in &[(5usize, 3usize), (60, 17), (64, 1), (100, 40)] {
            let c = Case { n_q, n_heads, n_kv, hd: 8, pos_offset, max_ctx: pos_offset + n_q };
            check(&dev, &mut rng, &c, false);
        }
    }
}

#[test]
fn decode_matches_twin_short_and_split() {
    let dev = test_device();
    let mut rng = Rng::new(33);
    for &(n_heads, n_kv) in HEADS {
        for &hd in &[64usize, 40] {
            // 1..127 keys take the single-pass kernel; 129+ split the keys (flash-decoding),
            // including a split of one key (129) and many splits (700).
            for &n_keys in &[1usize, 3, 17, 70, 128, 129, 130, 700] {
                let c = Case { n_q: 1, n_heads, n_kv, hd, pos_offset: n_keys - 1, max_ctx: n_keys + 5 };
                check(&dev, &mut rng, &c, true);
            }
        }
    }
}

#[test]
fn large_scores_stay_finite() {
    // Scores with a spread of hundreds (exp of them overflows f32) over two key tiles:
    // the running max must keep every exp() in range and rescale across tiles.
    let dev = test_device();
    let (n_q, n_heads, hd) = (90usize, 2usize, 64usize);
    let mut rng = Rng::new(34);
    let q = rng.vec(n_q * n_heads * hd, 100.0);
    let k = rng.vec(n_q * n_heads * hd, 3.0);
    let v = rng.vec(n_q * n_heads * hd, 1.0);
    let tq = Tensor::from_slice(&dev, &q, &[n_q, n_heads, hd]).unwrap();
    let tk = Tensor::from_slice(&dev, &k, &[n_q, n_heads, hd]).unwrap();
    let tv = Tensor::from_slice(&dev, &v, &[n_q, n_heads, hd]).unwrap();
    let out = Tensor::empty(&dev, &[n_q, n_heads, hd], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    attention(&mut rec, &tq, &tk, &tv, 0, &out).unwrap();
    rec.submit().unwrap();
    let want = twin::attention(&q, &k, &v, n_q, n_heads, n_heads, hd, 0);
    if let Err(msg) =
        tolerance::compare("attention large scores", &out.to_vec_f32().unwrap(), &want, tolerance::ATTENTION)
    {
        panic!("{msg}");
    }
}

#[test]
fn bad_shapes_are_clear_errors() {
    let dev = test_device();
    let t = |shape: &[usize]| Tensor::zeros(&dev, shape, DType::F32).unwrap();
    let (q, k, v, out) = (t(&[3, 6, 8]), t(&[10, 4, 8]), t(&[10, 4, 8]), t(&[3, 6, 8]));
    let mut rec = Recorder::new(&dev);
    let err = attention(&mut rec, &q, &k, &v, 0, &out).unwrap_err().to_string();
    assert!(err.contains("n_heads 6") && err.contains("multiple of n_kv_heads 4"), "{err}");

    let (k2, v2) = (t(&[10, 2, 8]), t(&[10, 2, 8]));
    let err = attention(&mut rec, &q, &k2, &v2, 8, &out).unwrap_err().to_string();
    assert!(err.contains("positions 8..11") && err.contains("holds 10"), "{err}");
    attention(&mut rec, &q, &k2, &v2, 7, &out).unwrap(); // exactly fills the cache

    let (k3, v3) = (t(&[10, 2, 16]), t(&[10, 2, 16]));
    let err = attention(&mut rec, &q, &k3, &v3, 0, &out).unwrap_err().to_string();
    assert!(err.contains("head_dim mismatch"), "{err}");

    let err = attention(&mut rec, &q, &k2, &v3, 0, &out).unwrap_err().to_string();
    assert!(err.contains("v_cache must have shape [10, 2, 8]"), "{err}");

    let (qb, kb, vb, ob) = (t(&[1, 2, 264]), t(&[4, 2, 264]), t(&[4, 2, 264]), t(&[1, 2, 264]));
    let err = attention(&mut rec, &qb, &kb, &vb, 0, &ob).unwrap_err().to_string();
    assert!(err.contains("head_dim 264 exceeds"), "{err}");

    let err = attention(&mut rec, &q, &k2, &v2, 0, &t(&[3, 6, 4])).unwrap_err().to_string();
    assert!(err.contains("out must have shape [3, 6, 8]"), "{err}");
    let err = attention(&mut rec, &q, &k2, &v2, 0, &q).unwrap_err().to_string();
    assert!(err.contains("different buffer"), "{err}");
    let err = attention(&mut rec, &q.reshape(&[18, 8]).unwrap(), &k2, &v2, 0, &out).unwrap_err().to_string();
    assert!(err.contains("q must be [n_q, n_heads, head_dim]"), "{err}");

    let err = attention_decode(&mut rec, &q, &k2, &v2, 0, &out).unwrap_err().to_string();
    assert!(err.contains("decode takes one query"), "{err}");
    let (q1, o1) = (t(&[1, 6, 8]), t(&[1, 6, 8]));
    let err = attention_decode(&mut rec, &q1, &k2, &v2, 10, &o1).unwrap_err().to_string();
    assert!(err.contains("context full"), "{err}");
    rec.submit().unwrap();
}

/// Random host caches `[slots, capacity, n_kv, hd]` (f16-rounded when `f16`) and their
/// GPU tensors in that dtype.
struct Caches {
    k: Vec<f32>,
    v: Vec<f32>,
    tk: Tensor,
    tv: Tensor,
}

fn upload_cache(dev: &Device, data: &[f32], shape: &[usize], f16: bool) -> Tensor {
    if f16 {
        let h: Vec<half::f16> = data.iter().map(|&x| half::f16::from_f32(x)).collect();
        Tensor::from_slice(dev, &h, shape).unwrap()
    } else {
        Tensor::from_slice(dev, data, shape).unwrap()
    }
}

fn caches(dev: &Device, rng: &mut Rng, shape: [usize; 4], f16: bool) -> Caches {
    let n: usize = shape.iter().product();
    let store = |x: f32| if f16 { round_f16(x) } else { x };
    let k: Vec<f32> = rng.vec(n, 2.0).into_iter().map(store).collect();
    let v: Vec<f32> = rng.vec(n, 1.0).into_iter().map(store).collect();
    let (tk, tv) = (upload_cache(dev, &k, &shape, f16), upload_cache(dev, &v, &shape, f16));
    Caches { k, v, tk, tv }
}

/// The paths this adapter can run for this head_dim and dtype: always the
/// workgroup-memory one, the subgroup one where it fits (checked with a tiny dry run).
fn paths(dev: &Device, hd: usize, f16: bool) -> Vec<LanePath> {
    let mut rng = Rng::new(1);
    let c = caches(dev, &mut rng, [1, 1, 1, hd], f16);
    let q = Tensor::from_slice(dev, &rng.vec(hd, 1.0), &[1, 1, hd]).unwrap();
    let out = Tensor::empty(dev, &[1, 1, hd], DType::F32).unwrap();
    let mut rec = Recorder::new(dev);
    let opts = AttendOptions { path: LanePath::Subgroup, ..Default::default() };
    let subgroup = attend_with(&mut rec, &q, &c.tk, &c.tv, Rows::Run { slot: 0, start: 0 }, &out, &opts).is_ok();
    rec.submit().unwrap();
    if subgroup {
        vec![LanePath::Shared, LanePath::Subgroup]
    } else {
        vec![LanePath::Shared]
    }
}

struct RowsCase<'a> {
    n_heads: usize,
    n_kv: usize,
    hd: usize,
    slots: usize,
    capacity: usize,
    /// (slot, position) per query row.
    rows: &'a [(usize, usize)],
    /// As one sequence run (`Rows::Run`) rather than a table.
    run: bool,
    f16: bool,
    chunk: Option<usize>,
}

/// Run `attend_with` on random data over every available path and compare with the twin;
/// returns how many key splits the last run used.
fn check_rows(dev: &Device, rng: &mut Rng, c: &RowsCase) -> usize {
    check_rows_with(dev, rng, c, None, None)
}

/// [`check_rows`] with a sliding window and a score scale (`None`: 1/sqrt(head_dim)).
fn check_rows_with(dev: &Device, rng: &mut Rng, c: &RowsCase, window: Option<usize>, scale: Option<f32>) -> usize {
    let cs = caches(dev, rng, [c.slots, c.capacity, c.n_kv, c.hd], c.f16);
    let n_rows = c.rows.len();
    let q = rng.vec(n_rows * c.n_heads * c.hd, 2.0);
    let tq = Tensor::from_slice(dev, &q, &[n_rows, c.n_heads, c.hd]).unwrap();
    let host: Vec<[u32; 2]> = c.rows.iter().map(|&(s, p)| [s as u32, p as u32]).collect();
    let flat: Vec<u32> = host.iter().flatten().copied().collect();
    let table = Tensor::from_slice(dev, &flat, &[n_rows, 2]).unwrap();
    let rows = if c.run {
        Rows::Run { slot: c.rows[0].0, start: c.rows[0].1 }
    } else {
        Rows::Table { table: &table, host: &host }
    };
    let twin_scale = scale.map_or(1.0 / (c.hd as f64).sqrt(), f64::from);
    let want = twin::attention_rows_windowed(
        &q, &cs.k, &cs.v, c.rows, c.n_heads, c.n_kv, c.hd, c.capacity, window, twin_scale,
    );
    let mut splits = 0;
    for path in paths(dev, c.hd, c.f16) {
        let out = Tensor::empty(dev, &[n_rows, c.n_heads, c.hd], DType::F32).unwrap();
        let mut rec = Recorder::new(dev);
        let plan =
            attend_with(&mut rec, &tq, &cs.tk, &cs.tv, rows, &out, &AttendOptions { path, chunk: c.chunk, window, scale })
                .unwrap();
        rec.submit().unwrap();
        assert_eq!(plan.subgroups, path == LanePath::Subgroup);
        splits = plan.n_splits;
        let what = format!(
            "attend {path:?} heads={}/{} hd={} {} slots={} rows={:?} splits={} window={window:?} scale={scale:?}",
            c.n_heads,
            c.n_kv,
            c.hd,
            if c.f16 { "f16" } else { "f32" },
            c.slots,
            c.rows,
            plan.n_splits
        );
        if let Err(msg) = tolerance::compare(&what, &out.to_vec_f32().unwrap(), &want, tolerance::ATTENTION) {
            panic!("{msg}");
        }
    }
    splits
}

#[test]
fn f16_and_f32_decode_match_twin_for_every_gqa_ratio_and_path() {
    let dev = test_device();
    let mut rng = Rng::new(35);
    // Where the adapter has subgroups of 8+ lanes (lavapipe: 8), the subgroup path must be
    // among those tested: head_dim 64 in f16 is 32 words, 8 lanes of 4.
    let sg = dev.features().contains(wgpu::Features::SUBGROUP) && dev.info().subgroup_min_size >= 8;
    assert_eq!(paths(&dev, 64, true).contains(&LanePath::Subgroup), sg && std::env::var("KILN_NO_SUBGROUPS").is_err());
    // GQA ratios 1, 2, 3, 7 and 9 (> 8 heads: two head chunks per kv head).
    let heads: &[(usize, usize)] = &[(2, 2), (4, 2), (6, 2), (7, 1), (14, 2), (9, 1)];
    for &(n_heads, n_kv) in heads {
        for &hd in &[64usize, 40, 72] {
            for f16 in [true, false] {
                // 1 key, 37 keys (several passes of the key slots), 300 keys over 3 splits.
                for &(pos, chunk) in &[(0usize, None), (36, None), (299, Some(128usize))] {
                    let rows = [(1usize, pos)];
                    let c = RowsCase { n_heads, n_kv, hd, slots: 2, capacity: 310, rows: &rows, run: true, f16, chunk };
                    let splits = check_rows(&dev, &mut rng, &c);
                    assert_eq!(splits, if chunk.is_some() { 3 } else { 1 });
                }
            }
        }
    }
}

#[test]
fn long_context_takes_several_splits_on_its_own() {
    let dev = test_device();
    let mut rng = Rng::new(36);
    for f16 in [true, false] {
        for &hd in &[128usize, 8] {
            let rows = [(0usize, 1499usize)];
            let c = RowsCase {
                n_heads: 14,
                n_kv: 2,
                hd,
                slots: 1,
                capacity: 1500,
                rows: &rows,
                run: true,
                f16,
                chunk: None,
            };
            let splits = check_rows(&dev, &mut rng, &c);
            assert!(splits > 1, "1500 keys over 2 kv heads should split, got {splits}");
        }
    }
}

#[test]
fn sliding_window_and_scale_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(41);
    // Batched rows at different positions, and one sequence's prefill rows (each row its
    // own window start); windows shorter than, equal to and longer than the histories.
    let batch = [(3usize, 0usize), (0, 5), (4, 130), (1, 260)];
    let prefill: Vec<(usize, usize)> = (0..9).map(|i| (0, 3 + i)).collect();
    for f16 in [true, false] {
        for &(n_heads, n_kv, hd) in &[(4usize, 1usize, 256usize), (3, 1, 40)] {
            for window in [1usize, 4, 100, 600] {
                for chunk in [None, Some(64)] {
                    let c = RowsCase { n_heads, n_kv, hd, slots: 5, capacity: 261, rows: &batch, run: false, f16, chunk };
                    check_rows_with(&dev, &mut rng, &c, Some(window), Some(0.3));
                    let c = RowsCase { n_heads, n_kv, hd, slots: 1, capacity: 12, rows: &prefill, run: true, f16, chunk };
                    check_rows_with(&dev, &mut rng, &c, Some(window), None);
                }
            }
        }
    }
    // A long history split over several workgroups: the splits before the window are empty.
    let rows = [(0usize, 1499usize)];
    let c = RowsCase { n_heads: 4, n_kv: 1, hd: 64, slots: 1, capacity: 1500, rows: &rows, run: true, f16: true, chunk: None };
    let splits = check_rows_with(&dev, &mut rng, &c, Some(512), Some(0.0625));
    assert!(splits > 1, "1500 keys should split, got {splits}");
}

#[test]
fn zero_window_and_non_finite_scale_are_clear_errors() {
    let dev = test_device();
    let q = Tensor::from_slice(&dev, &[0.5f32; 8], &[1, 1, 8]).unwrap();
    let k = Tensor::from_slice(&dev, &[0.5f32; 16], &[2, 1, 8]).unwrap();
    let v = Tensor::from_slice(&dev, &[0.5f32; 16], &[2, 1, 8]).unwrap();
    let out = Tensor::empty(&dev, &[1, 1, 8], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    let rows = Rows::Run { slot: 0, start: 0 };
    let opts = AttendOptions { window: Some(0), ..Default::default() };
    let err = attend_with(&mut rec, &q, &k, &v, rows, &out, &opts).unwrap_err().to_string();
    assert!(err.contains("window"), "{err}");
    let opts = AttendOptions { scale: Some(f32::NAN), ..Default::default() };
    let err = attend_with(&mut rec, &q, &k, &v, rows, &out, &opts).unwrap_err().to_string();
    assert!(err.contains("scale"), "{err}");
}

#[test]
fn batched_rows_each_attend_their_own_slot_and_position() {
    let dev = test_device();
    let mut rng = Rng::new(37);
    // Four sequences in a 5-slot cache, out of slot order, at very different positions;
    // with and without splits (the short rows leave later splits empty); splits as
    // small as a GPU's (32 keys) and smaller than a pass of key slots (5).
    let rows = [(3usize, 0usize), (0, 5), (4, 130), (1, 260)];
    for f16 in [true, false] {
        for &(n_heads, n_kv, hd) in &[(14usize, 2usize, 64usize), (3, 1, 40), (8, 8, 72)] {
            for chunk in [None, Some(64), Some(32), Some(5)] {
                let c = RowsCase { n_heads, n_kv, hd, slots: 5, capacity: 261, rows: &rows, run: false, f16, chunk };
                check_rows(&dev, &mut rng, &c);
            }
        }
    }
}

#[test]
fn prefill_rows_of_one_slot_match_twin_with_an_f16_cache() {
    let dev = test_device();
    let mut rng = Rng::new(38);
    // A second prefill chunk (positions 40..73) written in slot 2 of 3.
    let rows: Vec<(usize, usize)> = (40..73).map(|p| (2, p)).collect();
    for &(n_heads, n_kv, hd) in &[(14usize, 2usize, 64usize), (6, 2, 40)] {
        let c = RowsCase { n_heads, n_kv, hd, slots: 3, capacity: 80, rows: &rows, run: true, f16: true, chunk: None };
        check_rows(&dev, &mut rng, &c);
    }
}

#[test]
fn f16_cache_stays_close_to_the_f32_path() {
    // The same unrounded K/V in an f32 cache (the old path) and an f16 cache.
    let dev = test_device();
    let mut rng = Rng::new(39);
    let mut worst = 0.0f32;
    for &(n_heads, n_kv, hd, n_keys) in &[(14usize, 2usize, 64usize, 500usize), (7, 1, 128, 90), (4, 4, 40, 33)] {
        let shape = [1, n_keys, n_kv, hd];
        let n: usize = shape.iter().product();
        let (k, v) = (rng.vec(n, 2.0), rng.vec(n, 1.0));
        let q = rng.vec(n_heads * hd, 2.0);
        let tq = Tensor::from_slice(&dev, &q, &[1, n_heads, hd]).unwrap();
        let run = |f16: bool| {
            let (tk, tv) = (upload_cache(&dev, &k, &shape, f16), upload_cache(&dev, &v, &shape, f16));
            let out = Tensor::empty(&dev, &[1, n_heads, hd], DType::F32).unwrap();
            let mut rec = Recorder::new(&dev);
            attention_decode(&mut rec, &tq, &tk, &tv, n_keys - 1, &out).unwrap();
            rec.submit().unwrap();
            out.to_vec_f32().unwrap()
        };
        let (f32_out, f16_out) = (run(false), run(true));
        let what = format!("f16 vs f32 cache heads={n_heads}/{n_kv} hd={hd} keys={n_keys}");
        match tolerance::compare(&what, &f16_out, &f32_out, tolerance::KV_F16_VS_F32) {
            Ok(r) => worst = worst.max(r.max_abs),
            Err(msg) => panic!("{msg}"),
        }
    }
    println!("f16 vs f32 KV cache: max abs error {worst:.3e}");
}

#[test]
fn unavailable_paths_and_bad_rows_are_clear_errors() {
    let dev = test_device();
    let t = |shape: &[usize], dt: DType| Tensor::zeros(&dev, shape, dt).unwrap();
    let (k, v) = (t(&[2, 10, 2, 8], DType::F16), t(&[2, 10, 2, 8], DType::F16));
    let (q, out) = (t(&[2, 4, 8], DType::F32), t(&[2, 4, 8], DType::F32));
    let table = t(&[2, 2], DType::U32);
    let opts = AttendOptions::default();
    let mut rec = Recorder::new(&dev);
    let host = [[0u32, 3], [2, 1]];
    let err = attend_with(&mut rec, &q, &k, &v, Rows::Table { table: &table, host: &host }, &out, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 1 names slot 2") && err.contains("2 slots"), "{err}");
    let host = [[0u32, 3], [1, 10]];
    let err = attend_with(&mut rec, &q, &k, &v, Rows::Table { table: &table, host: &host }, &out, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("context full") && err.contains("position 10"), "{err}");
    let host = [[0u32, 3]];
    let err = attend_with(&mut rec, &q, &k, &v, Rows::Table { table: &table, host: &host }, &out, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 (slot, position) pairs for 2 rows"), "{err}");
    let err = attend_with(&mut rec, &q, &k, &v, Rows::Run { slot: 2, start: 0 }, &out, &opts).unwrap_err().to_string();
    assert!(err.contains("slot 2 of a cache with 2 slots"), "{err}");
    let err = attend_with(&mut rec, &q, &k, &v, Rows::Run { slot: 1, start: 9 }, &out, &opts).unwrap_err().to_string();
    assert!(err.contains("context full") && err.contains("9..11"), "{err}");
    let short = t(&[3], DType::U32);
    let host = [[0u32, 3], [1, 1]];
    let err = attend_with(&mut rec, &q, &k, &v, Rows::Table { table: &short, host: &host }, &out, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("fewer than 2"), "{err}");
    let zero = AttendOptions { path: LanePath::Auto, chunk: Some(0), ..Default::default() };
    let err = attend_with(&mut rec, &q, &k, &v, Rows::Run { slot: 0, start: 0 }, &out, &zero).unwrap_err().to_string();
    assert!(err.contains("keys per split"), "{err}");
    let (k_odd, v_odd) = (t(&[10, 2, 7], DType::F16), t(&[10, 2, 7], DType::F16));
    let (q7, o7) = (t(&[1, 4, 7], DType::F32), t(&[1, 4, 7], DType::F32));
    let err = attention(&mut rec, &q7, &k_odd, &v_odd, 0, &o7).unwrap_err().to_string();
    assert!(err.contains("even head_dim"), "{err}");
    let (k_bf, v_bf) = (t(&[10, 2, 8], DType::BF16), t(&[10, 2, 8], DType::BF16));
    let err = attention(&mut rec, &t(&[1, 4, 8], DType::F32), &k_bf, &v_bf, 0, &t(&[1, 4, 8], DType::F32))
        .unwrap_err()
        .to_string();
    assert!(err.contains("k_cache must be f16 or f32, got bf16"), "{err}");
    let err = attention(
        &mut rec,
        &t(&[1, 4, 8], DType::F32),
        &k,
        &t(&[2, 10, 2, 8], DType::F32),
        0,
        &t(&[1, 4, 8], DType::F32),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("v_cache must be f16"), "{err}");
    // The subgroup path is refused where it cannot run: here, a row of 64 lanes (f32,
    // head_dim 256) exceeds every subgroup of 32 or fewer lanes, or the adapter lacks SUBGROUP.
    let (k256, v256) = (t(&[4, 1, 256], DType::F32), t(&[4, 1, 256], DType::F32));
    let (q256, o256) = (t(&[1, 1, 256], DType::F32), t(&[1, 1, 256], DType::F32));
    let sub = AttendOptions { path: LanePath::Subgroup, ..Default::default() };
    let res = attend_with(&mut rec, &q256, &k256, &v256, Rows::Run { slot: 0, start: 0 }, &o256, &sub);
    if dev.info().subgroup_min_size < 64 || !dev.features().contains(wgpu::Features::SUBGROUP) {
        let err = res.unwrap_err().to_string();
        assert!(err.contains("subgroup attention needs"), "{err}");
    }
    rec.submit().unwrap();
}
