//! Cases for the kernels that read weights: matvec (M = 1..16 rows), matmul (tiles of 64
//! crossed, batched weights) and the embedding gather, for every weight dtype including
//! the GGUF block types.

use kiln_tensor::{DType, Device, Recorder, Tensor};

use super::weights::{random_weight, upload_weight, WEIGHT_DTYPES};
use super::{Case, CaseResult, Checks};
use crate::{embedding, matmul, matvec, reference, tolerance};

/// Row lengths K: 1, even but not a multiple of 4 or 8, a multiple of 8 (the vec4 path
/// of f32 and halves), odd, and a long odd one. Output sizes N: 1, odd, past a workgroup.
const DENSE_NK: [(usize, usize); 8] = [(1, 1), (3, 2), (17, 3), (33, 8), (127, 17), (65, 40), (257, 127), (21, 4863)];
/// Block types: (N, blocks per row); plus a long row of 4864 (Qwen2.5's intermediate size).
const BLOCK_NB: [(usize, usize); 4] = [(1, 1), (3, 2), (17, 3), (129, 7)];
const LONG_K: usize = 4864;

fn edge_shapes(dtype: DType) -> Vec<(usize, usize)> {
    if !dtype.is_quantized() {
        return DENSE_NK.to_vec();
    }
    let bs = dtype.block_size();
    let mut v: Vec<(usize, usize)> = BLOCK_NB.iter().map(|&(n, b)| (n, b * bs)).collect();
    v.push((21, LONG_K));
    v
}

/// Record `x [m, k] · w [n, k]ᵀ` with matvec (`m ≤ 16`) or matmul and check it.
fn linear_case(name: String, dtype: DType, m: usize, n: usize, k: usize, by_matvec: bool) -> Case {
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let (w, wv) = upload_weight(dev, &mut rng, dtype, n, k, 1.0)?;
        let x = rng.vec(m * k, 1.0);
        let tx = Tensor::from_slice(dev, &x, &[m, k])?;
        let out = Tensor::empty(dev, &[m, n], DType::F32)?;
        let mut rec = Recorder::new(dev);
        if by_matvec {
            matvec::matvec(&mut rec, &tx, &w, &out)?;
        } else {
            matmul::matmul(&mut rec, &tx, &w, &out)?;
        }
        rec.submit()?;
        let want = reference::matmul::matmul(&x, &wv, 1, m, n, k, false);
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::matmul_for(dtype));
        Ok(())
    })
}

/// matmul with a batch of weight matrices (attention-style products) or one shared by
/// the batch.
fn batched_case(name: String, dtype: DType, batch: usize, m: usize, n: usize, k: usize, w_batched: bool) -> Case {
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let w_mats = if w_batched { batch } else { 1 };
        let (w, wv) = upload_weight(dev, &mut rng, dtype, w_mats * n, k, 1.0)?;
        let w = if w_batched { w.reshape(&[batch, n, k])? } else { w };
        let a = rng.vec(batch * m * k, 1.0);
        let ta = Tensor::from_slice(dev, &a, &[batch, m, k])?;
        let out = Tensor::empty(dev, &[batch, m, n], DType::F32)?;
        let mut rec = Recorder::new(dev);
        matmul::matmul(&mut rec, &ta, &w, &out)?;
        rec.submit()?;
        let want = reference::matmul::matmul(&a, &wv, batch, m, n, k, w_batched);
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::matmul_for(dtype));
        Ok(())
    })
}

/// Gather rows of a `[vocab, d]` table, in one table or split into two row blocks
/// (`embedding_block`, as for vocabularies beyond the binding limit). Ids include the
/// first and last rows and one out of range (a row of zeros).
fn embedding_case(name: String, dtype: DType, vocab: usize, d: usize, split: bool) -> Case {
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let (bytes, values) = random_weight(&mut rng, dtype, vocab, d, 2.0)?;
        let mut ids: Vec<u32> = vec![0, vocab as u32 - 1, vocab as u32];
        ids.extend((0..9).map(|_| rng.below(vocab as u32)));
        let tids = Tensor::from_slice(dev, &ids, &[3, 4])?;
        let out = Tensor::zeros(dev, &[3, 4, d], DType::F32)?;
        let mut rec = Recorder::new(dev);
        if split {
            // Two tables, rows 0..first and first..vocab.
            let first = vocab / 2;
            let cut = dtype.storage_bytes(first * d) as usize;
            let low = Tensor::from_bytes(dev, &bytes[..cut], &[first, d], dtype)?;
            let high = Tensor::from_bytes(dev, &bytes[cut..], &[vocab - first, d], dtype)?;
            embedding::embedding_block(&mut rec, &tids, &low, 0, &out)?;
            embedding::embedding_block(&mut rec, &tids, &high, first, &out)?;
        } else {
            let table = Tensor::from_bytes(dev, &bytes, &[vocab, d], dtype)?;
            embedding::embedding(&mut rec, &tids, &table, &out)?;
        }
        rec.submit()?;
        let want = reference::embedding::embedding(&ids, &values, d);
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::EXACT);
        Ok(())
    })
}

pub(super) fn cases(out: &mut Vec<Case>) {
    for dtype in WEIGHT_DTYPES {
        let bs = dtype.block_size();
        for (n, k) in edge_shapes(dtype) {
            out.push(linear_case(format!("matvec/{dtype}/m1/n{n}/k{k}"), dtype, 1, n, k, true));
        }
        // Every row count matvec takes, on a small shape (K alternating odd / vec4-able
        // for the dense types).
        for m in 2..=matvec::MAX_ROWS {
            let (n, k) = if dtype.is_quantized() { (19, 2 * bs) } else { (19, if m % 2 == 1 { 33 } else { 40 }) };
            out.push(linear_case(format!("matvec/{dtype}/m{m}/n{n}/k{k}"), dtype, m, n, k, true));
        }
        let mm_shapes: Vec<(usize, usize, usize)> = if dtype.is_quantized() {
            vec![(1, 1, bs), (5, 17, 2 * bs), (70, 65, 3 * bs), (17, 21, LONG_K)]
        } else {
            vec![(1, 1, 1), (3, 17, 33), (65, 67, 40), (130, 33, 127), (17, 5, 4863)]
        };
        for (m, n, k) in mm_shapes {
            out.push(linear_case(format!("matmul/{dtype}/m{m}/n{n}/k{k}"), dtype, m, n, k, false));
        }
        let widths: Vec<usize> = if dtype.is_quantized() { vec![bs, 2 * bs] } else { vec![1, 3, 33] };
        for d in widths {
            out.push(embedding_case(format!("embedding/{dtype}/vocab37/d{d}"), dtype, 37, d, false));
        }
        out.push(embedding_case(format!("embedding/{dtype}/split/vocab37/d{}", bs.max(5)), dtype, 37, bs.max(5), true));
    }
    for dtype in [DType::F32, DType::F16] {
        out.push(batched_case(format!("matmul/{dtype}/batch3/w-batched/m17/n9/k33"), dtype, 3, 17, 9, 33, true));
        out.push(batched_case(format!("matmul/{dtype}/batch3/w-shared/m5/n70/k40"), dtype, 3, 5, 70, 40, false));
    }
}
