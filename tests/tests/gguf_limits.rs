//! GGUF header fields that must not size what the run does not need, or divide by zero:
//! a tiny Qwen2 GGUF (f32 weights, written here) whose `context_length` claims 2³²−1
//! positions still loads and decodes (the RoPE table is sized by the cache, not the
//! header), and a zero, odd or too-wide `key_length` is refused naming the key.

use kiln_kernels::testing::test_device;
use kiln_model::gguf::writer::{write_gguf, TensorEntry};
use kiln_model::gguf::{GgufFile, GgufValue};
use kiln_model::Model;
use kiln_sampler::generate::{generate, Flow, GenerateOptions};

const HIDDEN: usize = 8;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const HEAD_DIM: usize = 4;
const INTER: usize = 16;
const VOCAB: usize = 32;

/// A one-layer Qwen2 GGUF with seeded f32 weights and `extra` metadata appended.
fn write_tiny(path: &std::path::Path, context: u32, extra: &[(&str, GgufValue)]) {
    let mut kvs: Vec<(String, GgufValue)> = vec![
        ("general.architecture".into(), GgufValue::String("qwen2".into())),
        ("qwen2.context_length".into(), GgufValue::U32(context)),
        ("qwen2.embedding_length".into(), GgufValue::U32(HIDDEN as u32)),
        ("qwen2.block_count".into(), GgufValue::U32(1)),
        ("qwen2.feed_forward_length".into(), GgufValue::U32(INTER as u32)),
        ("qwen2.attention.head_count".into(), GgufValue::U32(HEADS as u32)),
        ("qwen2.attention.head_count_kv".into(), GgufValue::U32(KV_HEADS as u32)),
        ("qwen2.rope.freq_base".into(), GgufValue::F32(10000.0)),
        ("qwen2.attention.layer_norm_rms_epsilon".into(), GgufValue::F32(1e-6)),
    ];
    kvs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    // (GGUF name, rows, cols); cols = 1 for vectors.
    let shapes: Vec<(&str, usize, usize)> = vec![
        ("token_embd.weight", VOCAB, HIDDEN),
        ("output_norm.weight", HIDDEN, 1),
        ("blk.0.attn_norm.weight", HIDDEN, 1),
        ("blk.0.attn_q.weight", q, HIDDEN),
        ("blk.0.attn_q.bias", q, 1),
        ("blk.0.attn_k.weight", kv, HIDDEN),
        ("blk.0.attn_k.bias", kv, 1),
        ("blk.0.attn_v.weight", kv, HIDDEN),
        ("blk.0.attn_v.bias", kv, 1),
        ("blk.0.attn_output.weight", HIDDEN, q),
        ("blk.0.ffn_norm.weight", HIDDEN, 1),
        ("blk.0.ffn_gate.weight", INTER, HIDDEN),
        ("blk.0.ffn_up.weight", INTER, HIDDEN),
        ("blk.0.ffn_down.weight", HIDDEN, INTER),
    ];
    let entries: Vec<TensorEntry> = shapes
        .iter()
        .map(|&(name, rows, cols)| TensorEntry {
            name: name.into(),
            dims: if cols == 1 { vec![rows as u64] } else { vec![cols as u64, rows as u64] },
            type_id: 0,
            bytes: (rows * cols * 4) as u64,
        })
        .collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    write_gguf(&mut file, &kvs, &entries, |i| {
        let (name, rows, cols) = shapes[i];
        let norm = name.ends_with("norm.weight");
        Ok((0..rows * cols)
            .flat_map(|j| {
                let v = if norm { 1.0 } else { ((j * 7 + i * 13) % 17) as f32 / 17.0 - 0.5 };
                v.to_le_bytes()
            })
            .collect())
    })
    .unwrap();
}

#[test]
fn a_huge_context_length_sizes_nothing() {
    let dev = test_device();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge-context.gguf");
    write_tiny(&path, u32::MAX, &[]);
    let file = GgufFile::open(&path).unwrap();
    // Before: the RoPE table was built for all 2³²−1 positions (32 GiB) at load.
    let model = Model::load_gguf(&dev, &file).expect("a model with a huge declared context loads");
    assert_eq!(model.config().max_position_embeddings, u32::MAX as usize);
    let opts = GenerateOptions::greedy(4, vec![]);
    let (tokens, _) = generate(&dev, &model, &[1, 2, 3], &opts, |_| Ok(Flow::Continue)).unwrap();
    assert_eq!(tokens.len(), 4);
    assert!(tokens.iter().all(|t| (t.id as usize) < VOCAB));
}

#[test]
fn a_bad_key_length_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [0u32, 3, 512] {
        let path = dir.path().join(format!("key-length-{bad}.gguf"));
        write_tiny(&path, 64, &[("qwen2.attention.key_length", GgufValue::U32(bad))]);
        let file = GgufFile::open(&path).unwrap();
        let err = kiln_model::gguf::model::config_from_gguf(&file)
            .err()
            .unwrap_or_else(|| panic!("key_length {bad} was accepted"));
        let msg = err.to_string();
        assert!(msg.contains("qwen2.attention.key_length") && msg.contains(&format!("head_dim {bad}")), "{msg}");
        assert!(msg.contains("key-length-"), "the error names the file: {msg}");
    }
    let path = dir.path().join("value-length.gguf");
    write_tiny(
        &path,
        64,
        &[
            ("qwen2.attention.key_length", GgufValue::U32(HEAD_DIM as u32)),
            ("qwen2.attention.value_length", GgufValue::U32(8)),
        ],
    );
    let err = kiln_model::gguf::model::config_from_gguf(&GgufFile::open(&path).unwrap())
        .err()
        .expect("value_length 8 != key_length 4");
    assert!(err.to_string().contains("qwen2.attention.value_length"), "{err}");
}
