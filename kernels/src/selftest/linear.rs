//! Cases for the kernels that read weights: matvec (M = 1..16 rows), the fused matvec of
//! the decode step (norm folded in; bias, SwiGLU / GELU, residual, q/k/v segments),
//! matmul (tiles of 64 crossed, batched weights), the embedding gather and GPT-2's
//! position add, for every weight dtype including the GGUF block types.

use kiln_tensor::{DType, Device, Recorder, Tensor};

use super::weights::{random_weight, upload_weight, WEIGHT_DTYPES};
use super::{Case, CaseResult, Checks};
use crate::kv_cache::Rows;
use crate::matvec::{Activation, FoldedNorm, Fusion};
use crate::reference::matvec::{self as twin, Norm};
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

/// The fusions the models run: (name, folded norm 0/1 RMS/2 Layer, bias, activation,
/// residual, q/k/v segments).
const FUSIONS: [(&str, u8, bool, Activation, bool, bool); 4] = [
    ("qkv", 1, true, Activation::None, false, true),
    ("swiglu", 1, false, Activation::SwiGlu, false, false),
    ("residual", 0, true, Activation::None, true, false),
    ("gelu", 2, true, Activation::GeluTanh, false, false),
];

/// `matvec_fused` against the composed ops' twins.
fn fused_case(name: String, dtype: DType, m: usize, fusion: (&'static str, u8, bool, Activation, bool, bool)) -> Case {
    let (_, norm, with_bias, act, with_residual, segmented) = fusion;
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let k = dtype.block_size().max(8) * 2;
        let n = 24;
        let (w, wv) = upload_weight(dev, &mut rng, dtype, n, k, 1.0)?;
        let n_out = if act == Activation::SwiGlu { n / 2 } else { n };
        let x: Vec<f32> = rng.vec(m * k, 3.0).iter().map(|v| v + 2.0).collect();
        let gamma = rng.vec(k, 2.0);
        let beta = rng.vec(k, 1.0);
        let bias = rng.vec(n, 1.0);
        let resid = rng.vec(m * n_out, 2.0);
        let (tx, tg, tb, tbias, tres) = (
            Tensor::from_slice(dev, &x, &[m, k])?,
            Tensor::from_slice(dev, &gamma, &[k])?,
            Tensor::from_slice(dev, &beta, &[k])?,
            Tensor::from_slice(dev, &bias, &[n])?,
            Tensor::from_slice(dev, &resid, &[m, n_out])?,
        );
        let out = Tensor::empty(dev, &[m, n_out], DType::F32)?;
        let (gpu_norm, cpu_norm) = match norm {
            0 => (None, None),
            1 => (Some(FoldedNorm::Rms { weight: &tg, eps: 1e-6 }), Some(Norm::Rms { weight: &gamma, eps: 1e-6 })),
            _ => (
                Some(FoldedNorm::Layer { weight: &tg, bias: &tb, eps: 1e-5 }),
                Some(Norm::Layer { weight: &gamma, bias: &beta, eps: 1e-5 }),
            ),
        };
        let cuts = [16, 20];
        let f = Fusion {
            norm: gpu_norm,
            bias: with_bias.then_some(&tbias),
            act,
            residual: with_residual.then_some(&tres),
            segments: segmented.then_some(cuts),
        };
        let mut rec = Recorder::new(dev);
        matvec::matvec_fused(&mut rec, &tx, &w, &f, &out)?;
        rec.submit()?;
        let y = twin::fused(&x, &wv, n, k, cpu_norm, with_bias.then_some(bias.as_slice()), act, with_residual.then_some(resid.as_slice()));
        let want = if segmented { twin::segmented(&y, m, n, cuts) } else { y };
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::MATVEC_FUSED);
        Ok(())
    })
}

/// GPT-2's position add `h += table[pos]`, positions from a run or a batch's rows table.
fn positions_case(name: String, dtype: DType, batch: bool) -> Case {
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let (n_pos, d, rows) = (37usize, 33usize, 3usize);
        let (bytes, values) = random_weight(&mut rng, dtype, n_pos, d, 2.0)?;
        let table = Tensor::from_bytes(dev, &bytes, &[n_pos, d], dtype)?;
        let h = rng.vec(rows * d, 2.0);
        let th = Tensor::from_slice(dev, &h, &[rows, d])?;
        let pairs: Vec<[u32; 2]> = vec![[1, 36], [0, 0], [2, 9]];
        let flat: Vec<u32> = pairs.iter().flatten().copied().collect();
        let rows_table = Tensor::from_slice(dev, &flat, &[rows, 2])?;
        let (r, positions) = if batch {
            (Rows::Table { table: &rows_table, host: &pairs }, vec![36, 0, 9])
        } else {
            (Rows::Run { slot: 0, start: 30 }, vec![30, 31, 32])
        };
        let mut rec = Recorder::new(dev);
        embedding::add_positions(&mut rec, &table, r, &th)?;
        rec.submit()?;
        let want = reference::embedding::add_positions(&h, &values, &positions, d);
        checks.close(&name, &th.to_vec_f32()?, &want, tolerance::EXACT);
        Ok(())
    })
}

pub(super) fn cases(out: &mut Vec<Case>) {
    for dtype in WEIGHT_DTYPES {
        for fusion in FUSIONS {
            for m in [1, 16] {
                out.push(fused_case(format!("matvec_fused/{}/{dtype}/m{m}", fusion.0), dtype, m, fusion));
            }
        }
    }
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        out.push(positions_case(format!("add_positions/{dtype}/run"), dtype, false));
        out.push(positions_case(format!("add_positions/{dtype}/batch"), dtype, true));
    }
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
