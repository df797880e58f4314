//! A bounded, seeded fuzz harness for every loader, run as a normal `cargo test`.
//!
//! Each target starts from small valid files (a GGUF from the test writer; a safetensors
//! file; Hugging Face directories with config.json, generation_config.json and one or
//! two safetensors shards plus the index) and applies seeded mutations: truncation,
//! bit flips, byte runs, deleted or duplicated ranges, and overwrites of the u32/u64
//! fields (counts, string/array lengths, type ids, dims, offsets, the safetensors header
//! length) and of JSON numbers/strings with boundary values. For every mutated input
//! the loader must return `Ok` or an `Err` whose message names the file — never panic,
//! never hang, and never make a single allocation larger than the input's size plus
//! [`SLACK`] (a counting `#[global_allocator]` tracks the largest allocation made by the
//! opening thread).
//!
//! Each target stops after `KILN_FUZZ_CASES` cases (default 1500) or `KILN_FUZZ_SECS`
//! seconds (default 20), whichever comes first, and prints its count. `KILN_FUZZ_SEED`
//! changes the base seed. A failure prints the case seed and mutation, keeps the
//! mutated files in a directory it names, and `KILN_FUZZ_CASE_SEED=<seed>` replays one
//! case.

mod common;
#[path = "common/fuzz_harness.rs"]
mod fuzz_harness;
#[path = "common/gguf_writer.rs"]
mod gguf_writer;

use std::cell::Cell;
use std::path::Path;
use std::sync::mpsc;

use common::*;
use fuzz_harness::*;
use gguf_writer::{tensor, ty, GgufBuilder};
use kiln_model::gguf::{GgufArray, GgufFile, GgufValue};
use kiln_model::{ModelDir, WeightStore};
use safetensors::Dtype;
use serde_json::json;
// ------------------------------------------------------------------ targets

/// `GgufFile::open`, then every metadata value as every type and every tensor's bytes.
fn open_gguf(target: &Path) -> Result<(), String> {
    let f = GgufFile::open(target).map_err(|e| e.to_string())?;
    let _ = f.architecture();
    for (k, _) in f.metadata() {
        let _ = (f.get_str(k), f.get_u32(k), f.get_f32(k), f.get_bool(k));
        let _ = (f.get_str_array(k), f.get_u32_array(k), f.get_i32_array(k), f.get_f32_array(k));
    }
    for t in f.tensors() {
        let (_, bytes) = f.raw_tensor_data(&t.name).map_err(|e| e.to_string())?;
        assert_eq!(bytes.len(), t.byte_len());
        let _ = (f.tensor_data(&t.name), t.shape(), t.numel(), t.dtype());
    }
    Ok(())
}

/// `WeightStore::open_file`, then every tensor's bytes (and f32 values where typed).
fn open_safetensors(target: &Path) -> Result<(), String> {
    let ws = WeightStore::open_file(target).map_err(|e| e.to_string())?;
    for name in ws.names() {
        let (info, bytes) = ws.bytes(name).map_err(|e| e.to_string())?;
        assert_eq!(bytes.len(), info.byte_len());
        if info.kiln_dtype().is_some() {
            let _ = ws.get_f32(name, &info.shape.clone());
        }
    }
    Ok(())
}

/// `ModelDir::open` on the directory.
fn open_model_dir(target: &Path) -> Result<(), String> {
    let m = ModelDir::open(target).map_err(|e| e.to_string())?;
    let _ = (m.eos_token_ids(), m.lm_head_tied());
    Ok(())
}


fn gguf_bases() -> Vec<Base> {
    let rich = |version: u32, alignment: Option<u32>| {
        let mut b = GgufBuilder::new(version)
            .kv("general.architecture", GgufValue::String("llama".into()))
            .kv("general.name", GgufValue::String("fuzz".into()))
            .kv("llama.block_count", GgufValue::U32(2))
            .kv("llama.context_length", GgufValue::U64(2048))
            .kv("llama.rope.freq_base", GgufValue::F32(10000.0))
            .kv("llama.attention.layer_norm_rms_epsilon", GgufValue::F64(1e-6))
            .kv("tokenizer.ggml.add_bos_token", GgufValue::Bool(true))
            .kv(
                "tokenizer.ggml.tokens",
                GgufValue::Array(GgufArray::String(["<s>", "</s>", "a", "b", "ab"].map(String::from).to_vec())),
            )
            .kv("tokenizer.ggml.scores", GgufValue::Array(GgufArray::F32(vec![0.0, 0.0, -1.0, -2.0, -3.0])))
            .kv("tokenizer.ggml.token_type", GgufValue::Array(GgufArray::I32(vec![3, 3, 1, 1, 1])))
            .kv(
                "x.nested",
                GgufValue::Array(GgufArray::Array(vec![
                    GgufArray::U16(vec![1, 2]),
                    GgufArray::String(vec!["q".into()]),
                    GgufArray::Array(vec![GgufArray::I64(vec![-1])]),
                ])),
            )
            .kv("x.i8", GgufValue::I8(-3))
            .kv("x.i16", GgufValue::I16(-300))
            .kv("x.u8", GgufValue::U8(3))
            .kv("x.i64", GgufValue::I64(-5))
            .kv("x.bools", GgufValue::Array(GgufArray::Bool(vec![true, false])));
        if let Some(a) = alignment {
            b = b.kv("general.alignment", GgufValue::U32(a));
        }
        b.tensor(tensor("token_embd.weight", &[8, 5], ty::F32, gguf_writer::f32_bytes(&values(40, 1))))
            .tensor(tensor("output_norm.weight", &[8], ty::F16, gguf_writer::f16_bytes(&values(8, 2))))
            .tensor(tensor("blk.0.attn_q.weight", &[64, 2], ty::Q8_0, gguf_writer::pattern(34 * 4, 3)))
            .tensor(tensor("blk.0.ffn_down.weight", &[256], ty::Q4_K, gguf_writer::pattern(144, 4)))
            .tensor(tensor("blk.0.ffn_up.weight", &[256], ty::Q6_K, gguf_writer::pattern(210, 5)))
            .tensor(tensor("blk.0.other", &[256], ty::Q2_K, gguf_writer::pattern(84, 6)))
            .build()
    };
    [rich(3, None), rich(2, None), rich(3, Some(64)), rich(3, Some(8))]
        .into_iter()
        .map(|w| Base { files: vec![("model.gguf".into(), w.bytes)], fields: vec![w.fields] })
        .collect()
}

fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read fixture")
}

fn safetensors_base() -> Base {
    let dir = tempdir();
    let path = dir.path().join("w.safetensors");
    let specs = vec![
        spec("a.weight", Dtype::F32, &[4, 3], 1),
        spec("b.bias", Dtype::F16, &[5], 2),
        spec("c", Dtype::BF16, &[2, 2, 2], 3),
        spec("ids", Dtype::I64, &[3], 4),
    ];
    write_safetensors(&path, &specs);
    Base { files: vec![("w.safetensors".into(), read_file(&path))], fields: vec![] }
}

fn generation_config() -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "bos_token_id": 256, "eos_token_id": [256, 257], "do_sample": true, "temperature": 0.7,
        "top_k": 20, "top_p": 0.8, "max_new_tokens": 64
    }))
    .unwrap()
}

fn model_dir_base() -> Base {
    let dir = tempdir();
    let mut cfg = gpt2_config();
    cfg["n_inner"] = json!(32); // explicit, so mutations reach the layout's own arithmetic
    let specs = model_specs(&cfg, Dtype::F32, false, Some("transformer."));
    write_safetensors(&dir.path().join("model.safetensors"), &specs);
    Base {
        files: vec![
            ("config.json".into(), serde_json::to_vec_pretty(&cfg).unwrap()),
            ("generation_config.json".into(), generation_config()),
            ("model.safetensors".into(), read_file(&dir.path().join("model.safetensors"))),
        ],
        fields: vec![],
    }
}

fn sharded_dir_base() -> Base {
    let dir = tempdir();
    let mut cfg = qwen2_config();
    cfg["head_dim"] = json!(2); // explicit (= hidden / heads), so mutations reach q_dim/kv_dim
    let specs = model_specs(&cfg, Dtype::BF16, false, None);
    let shards = write_sharded(dir.path(), &specs, 2);
    let mut files: Files = vec![
        ("config.json".into(), serde_json::to_vec_pretty(&cfg).unwrap()),
        ("model.safetensors.index.json".into(), read_file(&dir.path().join("model.safetensors.index.json"))),
    ];
    for s in shards {
        files.push((s.clone(), read_file(&dir.path().join(&s))));
    }
    Base { files, fields: vec![] }
}


#[test]
fn fuzz_gguf_reader() {
    fuzz("gguf", open_gguf, "model.gguf", gguf_bases(), SLACK);
}

#[test]
fn fuzz_safetensors_file() {
    fuzz("safetensors", open_safetensors, "w.safetensors", vec![safetensors_base()], SLACK);
}

#[test]
fn fuzz_model_dir() {
    fuzz("model_dir", open_model_dir, "", vec![model_dir_base()], SLACK);
}

#[test]
fn fuzz_sharded_model_dir() {
    fuzz("sharded_dir", open_model_dir, "", vec![sharded_dir_base()], SLACK);
}

/// The harness itself: the allocator sees allocations on the tracked thread only, and
/// mutations are reproducible from the seed.
#[test]
fn harness_self_check() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        LARGEST.with(|m| m.set(0));
        TRACKING.with(|t| t.set(true));
        let v: Vec<u8> = Vec::with_capacity(12345);
        TRACKING.with(|t| t.set(false));
        drop(v);
        tx.send(LARGEST.with(Cell::get)).unwrap();
    });
    assert_eq!(rx.recv().unwrap(), 12345);

    let bases = gguf_bases();
    let a = mutate_files(&mut Rng(7), &bases[0]);
    let b = mutate_files(&mut Rng(7), &bases[0]);
    assert_eq!((a.0, a.1.clone()), (b.0, b.1));
    assert!(!a.1.is_empty());
}
