//! Cases for the kernels that work element by element or row by row: add, mul (full
//! and broadcast), SiLU, GELU, SwiGLU, RMSNorm, LayerNorm, softmax and log-softmax
//! (masked entries, large magnitudes), RoPE (both pairings, positions > 0) and the
//! KV-cache append.

use kiln_tensor::{DType, Device, Recorder, Tensor};

use super::{Case, CaseResult, Checks};
use crate::rope::{RopeMode, RopeTable};
use crate::{elementwise, kv_cache, norm, reference, rope, softmax, tolerance};

/// Sizes: one element, odd, just past one 256-wide workgroup, a few workgroups and odd.
const SIZES: [usize; 4] = [1, 3, 257, 4099];
/// (rows, row length) for the row kernels.
const ROWS: [(usize, usize); 5] = [(1, 1), (3, 17), (2, 896), (4, 1000), (2, 4099)];

fn unary_case(op: &'static str, n: usize, scale: f32) -> Case {
    let name = format!("{op}/n{n}/scale{scale}");
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let a = Case::rng(&name).vec(n, scale);
        let ta = Tensor::from_slice(dev, &a, &[n])?;
        let out = Tensor::empty(dev, &[n], DType::F32)?;
        let mut rec = Recorder::new(dev);
        let want = match op {
            "silu" => {
                elementwise::silu(&mut rec, &ta, &out)?;
                reference::silu(&a)
            }
            _ => {
                elementwise::gelu_tanh(&mut rec, &ta, &out)?;
                reference::gelu_tanh(&a)
            }
        };
        rec.submit()?;
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::ELEMENTWISE);
        Ok(())
    })
}

/// add, mul or swiglu of `a` `[rows, d]` with `b` of the same shape or `[d]` (broadcast).
fn binary_case(op: &'static str, rows: usize, d: usize, broadcast: bool) -> Case {
    let name = format!("{op}/{}/rows{rows}/d{d}", if broadcast { "broadcast" } else { "full" });
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let a = rng.vec(rows * d, 8.0);
        let b = rng.vec(if broadcast { d } else { rows * d }, 8.0);
        let ta = Tensor::from_slice(dev, &a, &[rows, d])?;
        let tb = if broadcast { Tensor::from_slice(dev, &b, &[d])? } else { Tensor::from_slice(dev, &b, &[rows, d])? };
        let out = Tensor::empty(dev, &[rows, d], DType::F32)?;
        let mut rec = Recorder::new(dev);
        let want = match op {
            "add" => {
                elementwise::add(&mut rec, &ta, &tb, &out)?;
                reference::add(&a, &b)
            }
            "mul" => {
                elementwise::mul(&mut rec, &ta, &tb, &out)?;
                reference::mul(&a, &b)
            }
            _ => {
                elementwise::swiglu(&mut rec, &ta, &tb, &out)?;
                reference::swiglu(&a, &b)
            }
        };
        rec.submit()?;
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::ELEMENTWISE);
        Ok(())
    })
}

fn norm_case(op: &'static str, rows: usize, d: usize, scale: f32) -> Case {
    let name = format!("{op}/rows{rows}/d{d}/scale{scale}");
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let x = rng.vec(rows * d, scale);
        let w: Vec<f32> = (0..d).map(|_| 1.0 + rng.uniform(0.5)).collect();
        let b = rng.vec(d, 0.5);
        let tx = Tensor::from_slice(dev, &x, &[rows, d])?;
        let tw = Tensor::from_slice(dev, &w, &[d])?;
        let out = Tensor::empty(dev, &[rows, d], DType::F32)?;
        let mut rec = Recorder::new(dev);
        let want = if op == "rms_norm" {
            norm::rms_norm(&mut rec, &tx, &tw, 1e-6, &out)?;
            reference::norm::rms_norm(&x, &w, 1e-6)
        } else {
            let tb = Tensor::from_slice(dev, &b, &[d])?;
            norm::layer_norm(&mut rec, &tx, &tw, &tb, 1e-5, &out)?;
            reference::norm::layer_norm(&x, &w, &b, 1e-5)
        };
        rec.submit()?;
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::REDUCTION);
        Ok(())
    })
}

/// softmax / log_softmax; `masked` sets about one entry in 5 to −inf and the last row
/// entirely to −inf.
fn softmax_case(op: &'static str, rows: usize, n: usize, scale: f32, masked: bool) -> Case {
    let name = format!("{op}/rows{rows}/n{n}/scale{scale}{}", if masked { "/masked" } else { "" });
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let mut x = rng.vec(rows * n, scale);
        if masked {
            for v in x.iter_mut() {
                if rng.below(5) == 0 {
                    *v = f32::NEG_INFINITY;
                }
            }
            x[(rows - 1) * n..].fill(f32::NEG_INFINITY);
        }
        let tx = Tensor::from_slice(dev, &x, &[rows, n])?;
        let out = Tensor::empty(dev, &[rows, n], DType::F32)?;
        let mut rec = Recorder::new(dev);
        let want = if op == "softmax" {
            softmax::softmax(&mut rec, &tx, &out)?;
            reference::softmax::softmax(&x, n)
        } else {
            softmax::log_softmax(&mut rec, &tx, &out)?;
            reference::softmax::log_softmax(&x, n)
        };
        rec.submit()?;
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::REDUCTION);
        Ok(())
    })
}

fn rope_case(mode: RopeMode, head_dim: usize, seq: usize, heads: usize, pos: usize) -> Case {
    let tag = if mode == RopeMode::Interleaved { "interleaved" } else { "half-split" };
    let name = format!("rope/{tag}/hd{head_dim}/seq{seq}/heads{heads}/pos{pos}");
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let theta = 10000.0;
        let table = RopeTable::new(dev, head_dim, theta, pos + seq)?;
        let x = Case::rng(&name).vec(seq * heads * head_dim, 3.0);
        let tx = Tensor::from_slice(dev, &x, &[seq, heads, head_dim])?;
        let out = Tensor::empty(dev, &[seq, heads, head_dim], DType::F32)?;
        let mut rec = Recorder::new(dev);
        rope::rope(&mut rec, &tx, &table, pos, mode, &out)?;
        rec.submit()?;
        let cpu = reference::rope::cpu_table(head_dim, theta, pos + seq);
        let want = reference::rope::rope(&x, seq, heads, head_dim, &cpu, pos, mode == RopeMode::Interleaved);
        checks.close(&name, &out.to_vec_f32()?, &want, tolerance::ROPE);
        Ok(())
    })
}

fn kv_append_case(kv_heads: usize, head_dim: usize, rows: usize, pos: usize, max_ctx: usize) -> Case {
    let name = format!("kv_append/kv{kv_heads}/hd{head_dim}/rows{rows}/pos{pos}/ctx{max_ctx}");
    Case::new(name.clone(), move |dev: &Device, checks: &mut Checks| -> CaseResult {
        let mut rng = Case::rng(&name);
        let row = kv_heads * head_dim;
        let cache = rng.vec(max_ctx * row, 1.0);
        let new = rng.vec(rows * row, 1.0);
        let tcache = Tensor::from_slice(dev, &cache, &[max_ctx, kv_heads, head_dim])?;
        let tnew = Tensor::from_slice(dev, &new, &[rows, kv_heads, head_dim])?;
        let mut rec = Recorder::new(dev);
        kv_cache::kv_append(&mut rec, &tnew, &tcache, pos)?;
        rec.submit()?;
        let want = reference::kv_cache::kv_append(&cache, &new, row, pos);
        checks.close(&name, &tcache.to_vec_f32()?, &want, tolerance::EXACT);
        Ok(())
    })
}

pub(super) fn cases(out: &mut Vec<Case>) {
    for op in ["silu", "gelu_tanh"] {
        for n in SIZES {
            out.push(unary_case(op, n, 8.0));
        }
        out.push(unary_case(op, 1000, 100.0));
    }
    for op in ["add", "mul", "swiglu"] {
        for (rows, d) in [(1, 1), (1, 3), (1, 257), (3, 4099)] {
            out.push(binary_case(op, rows, d, false));
        }
        if op != "swiglu" {
            out.push(binary_case(op, 5, 17, true));
            out.push(binary_case(op, 3, 896, true));
        }
    }
    for op in ["rms_norm", "layer_norm"] {
        for (rows, d) in ROWS {
            out.push(norm_case(op, rows, d, 4.0));
        }
        out.push(norm_case(op, 2, 896, 1000.0));
    }
    for op in ["softmax", "log_softmax"] {
        for (rows, n) in ROWS {
            out.push(softmax_case(op, rows, n, 8.0, false));
        }
        out.push(softmax_case(op, 3, 1025, 8.0, true));
        out.push(softmax_case(op, 2, 4099, 1000.0, false));
        out.push(softmax_case(op, 1, 151936, 20.0, false));
    }
    for mode in [RopeMode::HalfSplit, RopeMode::Interleaved] {
        for hd in [2, 64, 128] {
            for (seq, heads, pos) in [(1, 1, 0), (3, 7, 5), (17, 2, 100)] {
                out.push(rope_case(mode, hd, seq, heads, pos));
            }
        }
    }
    for (kv_heads, head_dim, rows, pos, max_ctx) in
        [(1, 1, 1, 0, 1), (2, 17, 1, 6, 9), (2, 64, 5, 0, 16), (3, 64, 5, 11, 16)]
    {
        out.push(kv_append_case(kv_heads, head_dim, rows, pos, max_ctx));
    }
}
