//! embedding.wgsl vs its CPU twin: odd widths in f32/f16/bf16 (odd widths make half
//! rows straddle u32 words), exact equality, out-of-range ids, check_ids, shape errors.

use half::{bf16, f16};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::kv_cache::Rows;
use kiln_kernels::{embedding, reference, tolerance, DType, Device, Recorder, Tensor, TensorError};

const WIDTHS: &[usize] = &[1, 3, 17, 33, 127];

/// A random `[vocab, d]` table uploaded as `dtype`, with its values as the GPU sees them.
fn table(dev: &Device, rng: &mut Rng, vocab: usize, d: usize, dtype: DType) -> (Tensor, Vec<f32>) {
    let values = rng.vec(vocab * d, 4.0);
    let shape = [vocab, d];
    match dtype {
        DType::F32 => (Tensor::from_slice(dev, &values, &shape).unwrap(), values),
        DType::F16 => {
            let h: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
            (Tensor::from_slice(dev, &h, &shape).unwrap(), h.iter().map(|v| v.to_f32()).collect())
        }
        DType::BF16 => {
            let h: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
            (Tensor::from_slice(dev, &h, &shape).unwrap(), h.iter().map(|v| v.to_f32()).collect())
        }
        other => unreachable!("dense float tables only, not {other}"),
    }
}

/// Gather `ids` (of `ids_shape`) from a fresh table and compare exactly with the twin.
fn check(
    dev: &Device,
    rng: &mut Rng,
    ids: &[u32],
    ids_shape: &[usize],
    vocab: usize,
    d: usize,
    dtype: DType,
) -> Vec<f32> {
    let (tt, values) = table(dev, rng, vocab, d, dtype);
    let tids = Tensor::from_slice(dev, ids, ids_shape).unwrap();
    let mut out_shape = ids_shape.to_vec();
    out_shape.push(d);
    let out = Tensor::empty(dev, &out_shape, DType::F32).unwrap();
    let mut rec = Recorder::new(dev);
    embedding::embedding(&mut rec, &tids, &tt, &out).unwrap();
    rec.submit().unwrap();
    let got = out.to_vec_f32().unwrap();
    let want = reference::embedding::embedding(ids, &values, d);
    let what = format!("embedding {dtype} d={d} ids {ids_shape:?}");
    if let Err(msg) = tolerance::compare(&what, &got, &want, tolerance::EXACT) {
        panic!("{msg}");
    }
    got
}

#[test]
fn odd_widths_in_every_dtype_match_twin_exactly() {
    let dev = test_device();
    let mut rng = Rng::new(41);
    let vocab = 13;
    for &d in WIDTHS {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            // Every row, including the last (whose final half may share a padded word).
            let all: Vec<u32> = (0..vocab as u32).rev().collect();
            check(&dev, &mut rng, &all, &[vocab], vocab, d, dtype);
            let repeated: Vec<u32> = (0..6).map(|_| rng.below(vocab as u32)).collect();
            check(&dev, &mut rng, &repeated, &[2, 3], vocab, d, dtype);
            check(&dev, &mut rng, &[vocab as u32 - 1], &[1], vocab, d, dtype);
        }
    }
}

#[test]
fn many_ids_match_twin() {
    let dev = test_device();
    let mut rng = Rng::new(42);
    let (vocab, d) = (1000, 96);
    let ids: Vec<u32> = (0..777).map(|_| rng.below(vocab as u32)).collect();
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        check(&dev, &mut rng, &ids, &[777], vocab, d, dtype);
    }
}

#[test]
fn out_of_range_ids_give_zero_rows() {
    let dev = test_device();
    let mut rng = Rng::new(43);
    let vocab = 7;
    for &d in WIDTHS {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let ids = [3, vocab as u32, 0, u32::MAX, 6];
            let got = check(&dev, &mut rng, &ids, &[5], vocab, d, dtype);
            assert!(got[d..2 * d].iter().chain(&got[3 * d..4 * d]).all(|&v| v == 0.0), "{dtype} d={d}");
        }
    }
}

#[test]
fn check_ids_names_the_bad_id_and_the_vocab() {
    assert!(embedding::check_ids(&[0, 5, 9], 10).is_ok());
    let err = embedding::check_ids(&[0, 5, 10, 3], 10).unwrap_err();
    assert!(matches!(&err, TensorError::Param { name, .. } if name == "ids"), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("token id 10 at position 2") && msg.contains("vocabulary of 10"), "{msg}");
    let msg = embedding::check_ids(&[u32::MAX], 151936).unwrap_err().to_string();
    assert!(msg.contains("4294967295") && msg.contains("151936"), "{msg}");
}

#[test]
fn bad_shapes_and_dtypes_are_clear_errors() {
    let dev = test_device();
    let ids = Tensor::from_slice(&dev, &[0u32, 1, 2], &[3]).unwrap();
    let table = Tensor::from_slice(&dev, &[1.0f32; 8], &[4, 2]).unwrap();
    let out = Tensor::empty(&dev, &[3, 2], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);

    let wrong_out = Tensor::empty(&dev, &[3, 3], DType::F32).unwrap();
    let err = embedding::embedding(&mut rec, &ids, &table, &wrong_out).unwrap_err().to_string();
    assert!(err.contains("embedding") && err.contains("out must have shape [3, 2], got [3, 3]"), "{err}");
    let flat_table = Tensor::from_slice(&dev, &[1.0f32; 8], &[8]).unwrap();
    let err = embedding::embedding(&mut rec, &ids, &flat_table, &out).unwrap_err().to_string();
    assert!(err.contains("table must be [vocab, d], got [8]"), "{err}");
    let float_ids = Tensor::from_slice(&dev, &[0.0f32; 3], &[3]).unwrap();
    let err = embedding::embedding(&mut rec, &float_ids, &table, &out).unwrap_err().to_string();
    assert!(err.contains("ids must be u32, got f32"), "{err}");
    let u32_table = Tensor::from_slice(&dev, &[1u32; 8], &[4, 2]).unwrap();
    let err = embedding::embedding(&mut rec, &ids, &u32_table, &out).unwrap_err().to_string();
    assert!(err.contains("table must be f32, f16, bf16 or a GGUF block type, got u32"), "{err}");
    let half_out = Tensor::empty(&dev, &[3, 2], DType::F16).unwrap();
    let err = embedding::embedding(&mut rec, &ids, &table, &half_out).unwrap_err().to_string();
    assert!(err.contains("out must be f32, got f16"), "{err}");
}

#[test]
fn gathering_from_row_blocks_equals_one_table() {
    let dev = test_device();
    let mut rng = Rng::new(77);
    let (vocab, d) = (37, 9);
    let (full, values) = table(&dev, &mut rng, vocab, d, DType::F16);
    let bytes = full.to_bytes().unwrap();
    // Split the f16 table into blocks of 16, 16 and 5 rows.
    let blocks: Vec<(usize, Tensor)> = [(0usize, 16usize), (16, 16), (32, 5)]
        .iter()
        .map(|&(start, rows)| {
            let piece = &bytes[start * d * 2..(start + rows) * d * 2];
            (start, Tensor::from_bytes(&dev, piece, &[rows, d], DType::F16).unwrap())
        })
        .collect();
    let ids_v: Vec<u32> = vec![36, 0, 15, 16, 31, 32, 5, 20];
    let ids = Tensor::from_slice(&dev, &ids_v, &[ids_v.len()]).unwrap();
    let out = Tensor::zeros(&dev, &[ids_v.len(), d], DType::F32).unwrap();
    let mut rec = Recorder::new(&dev);
    for (start, block) in &blocks {
        embedding::embedding_block(&mut rec, &ids, block, *start, &out).unwrap();
    }
    rec.submit().unwrap();
    let want = reference::embedding::embedding(&ids_v, &values, d);
    tolerance::compare("embedding from row blocks", &out.to_vec_f32().unwrap(), &want, tolerance::EXACT).unwrap();
}

/// add_positions: h += table[pos] for one sequence's run of positions and for a batch's
/// (slot, position) table, each dtype and odd widths, equal to the twin (one f32 add).
#[test]
fn add_positions_equal_the_twin() {
    let dev = test_device();
    let mut rng = Rng::new(61);
    let n_positions = 40;
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for &d in &[3usize, 17, 64] {
            let (tt, values) = table(&dev, &mut rng, n_positions, d, dtype);
            let host_pairs: Vec<[u32; 2]> = vec![[2, 39], [0, 0], [1, 7]];
            let flat: Vec<u32> = host_pairs.iter().flatten().copied().collect();
            let rows_table = Tensor::from_slice(&dev, &flat, &[3, 2]).unwrap();
            for (rows, positions) in [
                (Rows::Run { slot: 0, start: 36 }, vec![36usize, 37, 38]),
                (Rows::Table { table: &rows_table, host: &host_pairs }, vec![39, 0, 7]),
            ] {
                let h = rng.vec(3 * d, 2.0);
                let th = Tensor::from_slice(&dev, &h, &[3, d]).unwrap();
                let mut rec = Recorder::new(&dev);
                embedding::add_positions(&mut rec, &tt, rows, &th).unwrap();
                rec.submit().unwrap();
                let got = th.to_vec_f32().unwrap();
                let want = reference::embedding::add_positions(&h, &values, &positions, d);
                tolerance::compare(&format!("add_positions {dtype} d={d} {rows:?}"), &got, &want, tolerance::EXACT).unwrap();
            }
        }
    }
    // Positions past the table are refused on the host.
    let (tt, _) = table(&dev, &mut rng, n_positions, 8, DType::F32);
    let th = Tensor::zeros(&dev, &[2, 8], DType::F32).unwrap();
    let e = embedding::add_positions(&mut Recorder::new(&dev), &tt, Rows::Run { slot: 0, start: 39 }, &th).unwrap_err();
    assert!(e.to_string().contains("position 40 is past the 40 positions"), "{e}");
}
