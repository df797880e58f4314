//! Safetensors loading: dtype round trips through the GPU, Conv1D transpose, sharded
//! indexes, name prefixes, row blocks, and every malformed-file error.

mod common;

use std::io::Write;

use common::*;
use kiln_kernels::testing::test_device;
use kiln_model::{weights, ModelError, WeightStore};
use kiln_tensor::DType;
use safetensors::Dtype;

fn store_with(specs: &[Spec]) -> (tempfile::TempDir, WeightStore) {
    let dir = tempdir();
    write_safetensors(&dir.path().join("model.safetensors"), specs);
    let store = WeightStore::open_dir(dir.path()).unwrap();
    (dir, store)
}

fn err_text<T: std::fmt::Debug>(r: Result<T, ModelError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn f32_f16_bf16_round_trip_keeps_dtype() {
    let dev = test_device();
    let specs = [
        spec("a.f32", Dtype::F32, &[3, 5], 1),
        spec("b.f16", Dtype::F16, &[7], 2), // odd byte count (14): padded on upload
        spec("c.bf16", Dtype::BF16, &[2, 3, 4], 3),
    ];
    let (_d, store) = store_with(&specs);
    assert_eq!(store.names(), vec!["a.f32", "b.f16", "c.bf16"]);
    assert_eq!(store.len(), 3);
    for (s, dtype) in specs.iter().zip([DType::F32, DType::F16, DType::BF16]) {
        let info = store.info(&s.name).unwrap();
        assert_eq!(info.kiln_dtype(), Some(dtype));
        assert_eq!(info.shape, s.shape);
        let expect = values(s.shape.iter().product(), [1, 2, 3][dtype as usize]);
        let t = store.load(&dev, &s.name, &s.shape).unwrap();
        assert_eq!(t.dtype(), dtype);
        assert_eq!(t.shape(), &s.shape[..]);
        assert_eq!(t.to_vec_f32().unwrap(), expect, "{}", s.name);
        // The raw bytes on the GPU are the file's bytes.
        assert_eq!(t.to_bytes().unwrap(), s.bytes);
        // As f32 on the GPU and on the host.
        let t32 = store.load_f32(&dev, &s.name, &s.shape).unwrap();
        assert_eq!(t32.dtype(), DType::F32);
        assert_eq!(t32.to_vec_f32().unwrap(), expect);
        assert_eq!(store.get_f32(&s.name, &s.shape).unwrap(), expect);
        // Converted to every other float dtype (values are exact in all three).
        for to in [DType::F32, DType::F16, DType::BF16] {
            let t = store.load_as(&dev, &s.name, &s.shape, to).unwrap();
            assert_eq!(t.dtype(), to);
            assert_eq!(t.to_vec_f32().unwrap(), expect, "{} as {to}", s.name);
        }
    }
}

#[test]
fn conv1d_transpose_in_own_dtype() {
    let dev = test_device();
    let (rows, cols) = (5, 37); // [in, out], odd sizes, more than one 32-block
    for (i, (st, dt)) in
        [(Dtype::F32, DType::F32), (Dtype::F16, DType::F16), (Dtype::BF16, DType::BF16)].into_iter().enumerate()
    {
        let (_d, store) = store_with(&[spec("h.0.attn.c_attn.weight", st, &[rows, cols], i)]);
        let src = values(rows * cols, i);
        let mut want = vec![0.0; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                want[c * rows + r] = src[r * cols + c];
            }
        }
        let t = store.load_transposed(&dev, "transformer.h.0.attn.c_attn.weight", [rows, cols]).unwrap();
        assert_eq!(t.shape(), &[cols, rows]);
        assert_eq!(t.dtype(), dt, "transpose keeps the stored dtype");
        assert_eq!(t.to_vec_f32().unwrap(), want);
        let t = store.load_transposed_as(&dev, "h.0.attn.c_attn.weight", [rows, cols], DType::F32).unwrap();
        assert_eq!((t.shape(), t.dtype()), (&[cols, rows][..], DType::F32));
        assert_eq!(t.to_vec_f32().unwrap(), want);
        // The stored shape is checked before transposing.
        let msg = err_text(store.load_transposed(&dev, "h.0.attn.c_attn.weight", [cols, rows]));
        assert_mentions(&msg, &["h.0.attn.c_attn.weight", "model.safetensors", "[5, 37]", "[37, 5]"]);
    }
    // Host helper on a known case.
    let m: Vec<u8> = (0u8..6).collect(); // [[0,1,2],[3,4,5]] of 1-byte elements
    assert_eq!(weights::transpose_bytes(&m, 2, 3, 1), vec![0, 3, 1, 4, 2, 5]);
}

#[test]
fn name_prefix_variants_resolve() {
    let dev = test_device();
    let (_d, store) = store_with(&[
        spec("wte.weight", Dtype::F32, &[4, 2], 1),
        spec("transformer.ln_f.weight", Dtype::F32, &[2], 2),
        spec("model.norm.weight", Dtype::F32, &[2], 3),
        spec("lm_head.weight", Dtype::F32, &[4, 2], 4),
    ]);
    assert_eq!(store.info("transformer.wte.weight").unwrap().name, "wte.weight");
    assert_eq!(store.info("wte.weight").unwrap().name, "wte.weight");
    assert_eq!(store.info("ln_f.weight").unwrap().name, "transformer.ln_f.weight");
    assert_eq!(store.info("norm.weight").unwrap().name, "model.norm.weight");
    assert_eq!(store.info("lm_head.weight").unwrap().name, "lm_head.weight");
    assert!(store.contains("model.norm.weight") && !store.contains("model.embed_tokens.weight"));
    let t = store.load(&dev, "transformer.wte.weight", &[4, 2]).unwrap();
    assert_eq!(t.to_vec_f32().unwrap(), values(8, 1));
}

#[test]
fn sharded_index_loads_from_every_shard() {
    let dev = test_device();
    let dir = tempdir();
    let specs: Vec<Spec> = (0..5).map(|i| spec(&format!("model.layers.{i}.w"), Dtype::BF16, &[3, 4], i)).collect();
    let shards = write_sharded(dir.path(), &specs, 2);
    std::fs::write(dir.path().join("README.md"), "extra files are ignored").unwrap();
    let store = WeightStore::open_dir(dir.path()).unwrap();
    assert!(store.source().ends_with("model.safetensors.index.json"));
    assert_eq!(store.files().len(), 2);
    assert_eq!(store.len(), 5);
    for (i, s) in specs.iter().enumerate() {
        let info = store.info(&s.name).unwrap();
        let shard = if i < 3 { &shards[0] } else { &shards[1] };
        assert!(info.path.ends_with(shard), "{} in {}", s.name, info.path.display());
        let t = store.load(&dev, &s.name, &[3, 4]).unwrap();
        assert_eq!(t.dtype(), DType::BF16);
        assert_eq!(t.to_vec_f32().unwrap(), values(12, i));
    }
}

#[test]
fn single_file_wins_over_index() {
    let dir = tempdir();
    write_sharded(dir.path(), &[spec("a", Dtype::F32, &[2], 0)], 1);
    write_safetensors(&dir.path().join("model.safetensors"), &[spec("b", Dtype::F32, &[2], 0)]);
    let store = WeightStore::open_dir(dir.path()).unwrap();
    assert_eq!(store.names(), vec!["b"]);
}

#[test]
fn row_ranges_and_blocks() {
    let dev = test_device();
    let (_d, store) = store_with(&[spec("lm_head.weight", Dtype::F16, &[10, 6], 5)]);
    let all = values(60, 5);
    let t = store.load_rows(&dev, "lm_head.weight", &[10, 6], 2..5, None).unwrap();
    assert_eq!((t.shape(), t.dtype()), (&[3, 6][..], DType::F16));
    assert_eq!(t.to_vec_f32().unwrap(), all[12..30].to_vec());
    let t = store.load_rows(&dev, "lm_head.weight", &[10, 6], 9..10, Some(DType::F32)).unwrap();
    assert_eq!(t.to_vec_f32().unwrap(), all[54..60].to_vec());
    let msg = err_text(store.load_rows(&dev, "lm_head.weight", &[10, 6], 8..11, None));
    assert_mentions(&msg, &["lm_head.weight", "8..11"]);
    // Everything fits one binding here: one block.
    let blocks = store.load_row_blocks(&dev, "lm_head.weight", &[10, 6], None).unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 0);
    assert_eq!(blocks[0].1.to_vec_f32().unwrap(), all);
}

#[test]
fn missing_tensor_names_it_and_the_files() {
    let (dir, store) = store_with(&[spec("transformer.h.0.ln_1.weight", Dtype::F32, &[4], 0)]);
    let err = store.info("transformer.h.0.ln_2.weight").unwrap_err();
    assert!(matches!(err, ModelError::MissingTensor { .. }));
    let msg = err.to_string();
    assert_mentions(
        &msg,
        &[
            "`transformer.h.0.ln_2.weight`",
            "`h.0.ln_2.weight`",
            &dir.path().join("model.safetensors").display().to_string(),
        ],
    );
    let dev = test_device();
    assert_mentions(&err_text(store.load(&dev, "model.norm.weight", &[4])), &["model.norm.weight", "`norm.weight`"]);
}

#[test]
fn wrong_shape_names_tensor_file_expected_and_got() {
    let dev = test_device();
    let (_d, store) = store_with(&[spec("model.norm.weight", Dtype::F32, &[4], 0)]);
    let err = store.load(&dev, "model.norm.weight", &[8]).unwrap_err();
    assert!(matches!(err, ModelError::Shape { .. }));
    assert_mentions(&err.to_string(), &["model.norm.weight", "model.safetensors", "expected [8]", "shape [4]"]);
    assert!(store.get_f32("model.norm.weight", &[2, 2]).is_err());
}

#[test]
fn unsupported_dtype_names_tensor_and_dtype() {
    let dev = test_device();
    let (_d, store) = store_with(&[spec("position_ids", Dtype::I64, &[4], 0), spec("w", Dtype::F32, &[4], 0)]);
    // Listing works; loading the I64 tensor as a weight does not.
    assert_eq!(store.info("position_ids").unwrap().dtype, "I64");
    let msg = err_text(store.load(&dev, "position_ids", &[4]));
    assert_mentions(&msg, &["position_ids", "model.safetensors", "I64", "F32, F16 and BF16"]);
    assert!(store.load(&dev, "w", &[4]).is_ok());
}

fn write_then_cut(specs: &[Spec], keep: impl Fn(usize) -> usize) -> (tempfile::TempDir, String) {
    let dir = tempdir();
    let path = dir.path().join("model.safetensors");
    write_safetensors(&path, specs);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..keep(bytes.len())]).unwrap();
    let msg = err_text(WeightStore::open_dir(dir.path()));
    (dir, msg)
}

#[test]
fn truncated_data_names_file_and_tensor() {
    let specs = [spec("first", Dtype::F32, &[16], 0), spec("second", Dtype::F32, &[16], 1)];
    let (_d, msg) = write_then_cut(&specs, |n| n - 10);
    assert_mentions(&msg, &["model.safetensors", "`second`", "truncated"]);
    // Cut inside the first tensor: that one is named.
    let (_d, msg) = write_then_cut(&specs, |n| n - 64 - 8);
    assert_mentions(&msg, &["model.safetensors", "`first`", "truncated"]);
}

#[test]
fn truncated_header_names_file() {
    let specs = [spec("w", Dtype::F32, &[16], 0)];
    let (_d, msg) = write_then_cut(&specs, |_| 20);
    assert_mentions(&msg, &["model.safetensors", "header length says", "truncated"]);
    let (_d, msg) = write_then_cut(&specs, |_| 5);
    assert_mentions(&msg, &["model.safetensors", "5 bytes", "truncated"]);
    let (_d, msg) = write_then_cut(&specs, |_| 0);
    assert_mentions(&msg, &["model.safetensors", "0 bytes"]);
}

#[test]
fn corrupt_headers_are_errors_not_panics_or_huge_allocations() {
    let dir = tempdir();
    let path = dir.path().join("model.safetensors");
    let open = || err_text(WeightStore::open_file(&path));
    let write = |header_len: u64, header: &[u8], data: &[u8]| {
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&header_len.to_le_bytes()).unwrap();
        f.write_all(header).unwrap();
        f.write_all(data).unwrap();
    };
    // A header length of u64::MAX must not allocate.
    write(u64::MAX, b"{}", &[]);
    assert_mentions(&open(), &["model.safetensors", "header length"]);
    // Not JSON.
    write(8, b"not json", &[]);
    assert_mentions(&open(), &["model.safetensors", "not a valid JSON object"]);
    // Offsets that disagree with dtype x shape.
    let h = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}"#;
    write(h.len() as u64, h, &[0; 12]);
    assert_mentions(&open(), &["model.safetensors", "`w`", "16 bytes", "span 12"]);
    // Offsets that end before they begin.
    let h = br#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#;
    write(h.len() as u64, h, &[0; 8]);
    assert_mentions(&open(), &["`w`", "end before"]);
    // A shape whose element count overflows.
    let h = br#"{"w":{"dtype":"F32","shape":[18446744073709551615,4],"data_offsets":[0,16]}}"#;
    write(h.len() as u64, h, &[0; 16]);
    assert_mentions(&open(), &["`w`", "overflows"]);
    // Missing fields.
    let h = br#"{"w":{"dtype":"F32","shape":[4]}}"#;
    write(h.len() as u64, h, &[0; 16]);
    assert_mentions(&open(), &["`w`", "data_offsets"]);
    // Metadata is ignored; a valid file opens.
    let h = br#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    write(h.len() as u64, h, &[0; 16]);
    assert_eq!(WeightStore::open_file(&path).unwrap().names(), vec!["w"]);
}

#[test]
fn missing_shard_names_index_and_shard() {
    let dir = tempdir();
    let specs: Vec<Spec> = (0..4).map(|i| spec(&format!("t{i}"), Dtype::F32, &[2], i)).collect();
    let shards = write_sharded(dir.path(), &specs, 2);
    std::fs::remove_file(dir.path().join(&shards[1])).unwrap();
    let err = WeightStore::open_dir(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::MissingShard { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["model.safetensors.index.json", &shards[1], "`t2`", "does not exist"]);
}

#[test]
fn index_pointing_at_the_wrong_shard_is_an_error() {
    let dir = tempdir();
    let specs: Vec<Spec> = (0..2).map(|i| spec(&format!("t{i}"), Dtype::F32, &[2], i)).collect();
    let shards = write_sharded(dir.path(), &specs, 2);
    let index = dir.path().join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index)
        .unwrap()
        .replace(&format!("\"t1\": \"{}\"", shards[1]), &format!("\"t1\": \"{}\"", shards[0]));
    std::fs::write(&index, text).unwrap();
    let msg = err_text(WeightStore::open_dir(dir.path()));
    assert_mentions(&msg, &["model.safetensors.index.json", "`t1`", &shards[0], "no such tensor"]);

    std::fs::write(&index, "{\"metadata\": {}}").unwrap();
    assert_mentions(
        &err_text(WeightStore::open_dir(dir.path())),
        &["model.safetensors.index.json", "weight_map", "missing"],
    );
    std::fs::write(&index, "{\"weight_map\": ").unwrap();
    assert_mentions(&err_text(WeightStore::open_dir(dir.path())), &["model.safetensors.index.json", "not valid JSON"]);
}

#[test]
fn no_weights_in_directory() {
    let dir = tempdir();
    std::fs::write(dir.path().join("pytorch_model.bin"), b"pickle").unwrap();
    let msg = err_text(WeightStore::open_dir(dir.path()));
    assert_mentions(&msg, &["no weights", "model.safetensors", "pytorch_model.bin", "not supported"]);
}

#[test]
fn tensor_over_the_binding_limit_is_named() {
    let dev = test_device();
    let limit = dev.max_binding_bytes();
    // One f32 row more than the limit allows, in a sparse file: no data is written or read.
    let rows = (limit / 4 / 1024 + 1) as usize;
    let n_bytes = rows as u64 * 1024 * 4;
    let dir = tempdir();
    let path = dir.path().join("model.safetensors");
    let header =
        format!(r#"{{"lm_head.weight":{{"dtype":"F32","shape":[{rows},1024],"data_offsets":[0,{n_bytes}]}}}}"#);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.set_len(8 + header.len() as u64 + n_bytes).unwrap();
    drop(f);
    let store = WeightStore::open_file(&path).unwrap();
    let msg = err_text(store.load(&dev, "lm_head.weight", &[rows, 1024]));
    assert_mentions(&msg, &["lm_head.weight", "model.safetensors", "max_storage_buffer_binding_size"]);
    // Split into row blocks, each one fits. (Only the first block is uploaded here; the
    // rest would read the sparse file's zeros.)
    let per_block = (limit / 4 / 1024) as usize;
    let t = store.load_rows(&dev, "lm_head.weight", &[rows, 1024], 0..per_block.min(16), None).unwrap();
    assert_eq!(t.shape(), &[per_block.min(16), 1024]);
}
