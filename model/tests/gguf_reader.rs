//! The GGUF reader: every metadata type round-trips (v2 and v3), tensor infos and data
//! slices, custom alignment, typed accessors, and one test per kind of corrupt file.

#[path = "common/gguf_writer.rs"]
mod gguf_writer;

use std::path::{Path, PathBuf};

use gguf_writer::*;
use kiln_model::gguf::{GgmlType, GgufArray, GgufFile, GgufValue, GgufValueType};
use kiln_model::ModelError;
use kiln_tensor::DType;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("kiln-gguf-test").tempdir().expect("temp dir")
}

fn s(x: &str) -> GgufValue {
    GgufValue::String(x.to_string())
}

fn strings(v: &[&str]) -> GgufArray {
    GgufArray::String(v.iter().map(|x| x.to_string()).collect())
}

/// One value of every type, including nested and empty arrays.
fn every_type() -> Vec<(String, GgufValue)> {
    let kvs = vec![
        ("general.architecture", s("llama")),
        ("t.u8", GgufValue::U8(200)),
        ("t.i8", GgufValue::I8(-100)),
        ("t.u16", GgufValue::U16(60_000)),
        ("t.i16", GgufValue::I16(-30_000)),
        ("t.u32", GgufValue::U32(4_000_000_000)),
        ("t.i32", GgufValue::I32(-2_000_000_000)),
        ("t.f32", GgufValue::F32(1.5e-6)),
        ("t.bool", GgufValue::Bool(true)),
        ("t.bool_false", GgufValue::Bool(false)),
        ("t.string", s("héllo wörld ✓")),
        ("t.empty_string", s("")),
        ("t.u64", GgufValue::U64(u64::MAX)),
        ("t.i64", GgufValue::I64(i64::MIN)),
        ("t.f64", GgufValue::F64(-1234.5678e100)),
        ("a.u8", GgufValue::Array(GgufArray::U8(vec![0, 1, 255]))),
        ("a.i8", GgufValue::Array(GgufArray::I8(vec![-128, 0, 127]))),
        ("a.u16", GgufValue::Array(GgufArray::U16(vec![1, 65535]))),
        ("a.i16", GgufValue::Array(GgufArray::I16(vec![-32768, 32767]))),
        ("a.u32", GgufValue::Array(GgufArray::U32(vec![7, 8, 9]))),
        ("a.i32", GgufValue::Array(GgufArray::I32(vec![-1, 0, 1, 2]))),
        ("a.f32", GgufValue::Array(GgufArray::F32(vec![0.0, -0.5, 1e10]))),
        ("a.bool", GgufValue::Array(GgufArray::Bool(vec![true, false, true]))),
        ("a.string", GgufValue::Array(strings(&["a", "", "Ġworld", "<0x0A>"]))),
        ("a.u64", GgufValue::Array(GgufArray::U64(vec![u64::MAX, 0]))),
        ("a.i64", GgufValue::Array(GgufArray::I64(vec![i64::MIN, i64::MAX]))),
        ("a.f64", GgufValue::Array(GgufArray::F64(vec![std::f64::consts::PI]))),
        ("a.empty", GgufValue::Array(GgufArray::F32(vec![]))),
        (
            "a.nested",
            GgufValue::Array(GgufArray::Array(vec![
                GgufArray::I32(vec![1, 2]),
                strings(&["x", "y"]),
                GgufArray::Array(vec![GgufArray::U8(vec![9]), GgufArray::Array(vec![])]),
                GgufArray::Bool(vec![]),
            ])),
        ),
    ];
    kvs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn write(dir: &Path, name: &str, b: &GgufBuilder) -> PathBuf {
    let path = dir.join(name);
    b.build().write(&path);
    path
}

fn open_err(path: &Path) -> String {
    match GgufFile::open(path) {
        Ok(f) => panic!("expected an error opening {}, got {f:?}", path.display()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "error should name the file:\n{msg}");
            msg
        }
    }
}

fn assert_mentions(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "error message should mention {n:?}:\n{text}");
    }
}

#[test]
fn every_metadata_type_round_trips_in_v2_and_v3() {
    let dir = tempdir();
    for version in [2, 3] {
        let mut b = GgufBuilder::new(version);
        b.kvs = every_type();
        let path = write(dir.path(), &format!("v{version}.gguf"), &b);
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.version(), version);
        assert_eq!(f.alignment(), 32);
        assert!(f.tensors().is_empty());
        assert_eq!(f.metadata(), &b.kvs[..], "metadata in file order, every value equal");
        for (k, v) in &b.kvs {
            assert_eq!(f.get(k), Some(v));
            assert_eq!(f.value(k).unwrap().value_type(), v.value_type());
        }
        assert_eq!(f.architecture().unwrap(), "llama");
    }
}

#[test]
fn typed_accessors_convert_and_name_key_and_file_on_error() {
    let dir = tempdir();
    let mut b = GgufBuilder::new(3);
    b.kvs = every_type();
    let path = write(dir.path(), "acc.gguf", &b);
    let f = GgufFile::open(&path).unwrap();

    assert_eq!(f.get_str("t.string").unwrap(), "héllo wörld ✓");
    assert_eq!(f.get_str("t.empty_string").unwrap(), "");
    // get_u32 takes any integer type that fits.
    assert_eq!(f.get_u32("t.u8").unwrap(), 200);
    assert_eq!(f.get_u32("t.u16").unwrap(), 60_000);
    assert_eq!(f.get_u32("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_u64("t.u64").unwrap(), u64::MAX);
    assert_eq!(f.get_i64("t.i64").unwrap(), i64::MIN);
    assert_eq!(f.get_i32("t.i16").unwrap(), -30_000);
    assert_eq!(f.get_f32("t.f32").unwrap(), 1.5e-6);
    assert_eq!(f.get_f64("t.f64").unwrap(), -1234.5678e100);
    assert_eq!(f.get_f64("t.u32").unwrap(), 4e9, "integers read as floats");
    assert!(f.get_bool("t.bool").unwrap());
    assert!(!f.get_bool("t.bool_false").unwrap());
    assert_eq!(f.get_str_array("a.string").unwrap(), &["a", "", "Ġworld", "<0x0A>"]);
    assert_eq!(f.get_i32_array("a.i32").unwrap(), vec![-1, 0, 1, 2]);
    assert_eq!(f.get_i32_array("a.i8").unwrap(), vec![-128, 0, 127]);
    assert_eq!(f.get_u32_array("a.u16").unwrap(), vec![1, 65535]);
    assert_eq!(f.get_u64_array("a.u64").unwrap(), vec![u64::MAX, 0]);
    assert_eq!(f.get_i64_array("a.i64").unwrap(), vec![i64::MIN, i64::MAX]);
    assert_eq!(f.get_f32_array("a.f32").unwrap(), vec![0.0, -0.5, 1e10]);
    assert_eq!(f.get_f32_array("a.f64").unwrap(), vec![std::f64::consts::PI as f32]);
    assert_eq!(f.get_f32_array("a.i32").unwrap(), vec![-1.0, 0.0, 1.0, 2.0]);
    assert!(f.get_f32_array("a.empty").unwrap().is_empty());
    assert_eq!(f.get_array("a.nested").unwrap().len(), 4);
    assert_eq!(f.get_array("a.nested").unwrap().element_type(), GgufValueType::Array);
    assert_eq!(f.opt_u32("missing.key").unwrap(), None);
    assert_eq!(f.opt_u32("t.u8").unwrap(), Some(200));
    assert_eq!(f.opt_str("t.string").unwrap(), Some("héllo wörld ✓"));
    assert_eq!(f.opt_bool("missing").unwrap(), None);

    let file = path.display().to_string();
    let check = |e: ModelError, needles: &[&str]| {
        assert!(matches!(e, ModelError::GgufMetadata { .. }), "{e:?}");
        let msg = e.to_string();
        assert_mentions(&msg, &[&file]);
        assert_mentions(&msg, needles);
    };
    check(f.get_str("nope").unwrap_err(), &["`nope`", "is missing"]);
    check(f.get_u32("t.string").unwrap_err(), &["`t.string`", "expected an integer that fits uint32", "string"]);
    check(f.get_u32("t.i8").unwrap_err(), &["`t.i8`", "int8 -100"]);
    check(f.get_u32("t.u64").unwrap_err(), &["`t.u64`", "uint64 18446744073709551615"]);
    check(f.get_i32("t.u32").unwrap_err(), &["`t.u32`", "int32"]);
    check(f.get_f32("t.f64").unwrap_err(), &["`t.f64`", "float32"]);
    check(f.get_bool("t.u8").unwrap_err(), &["`t.u8`", "expected a bool", "uint8 200"]);
    check(f.get_str("a.string").unwrap_err(), &["`a.string`", "expected a string", "array of 4 string"]);
    check(f.get_str_array("a.i32").unwrap_err(), &["`a.i32`", "expected an array of strings", "array of 4 int32"]);
    check(f.get_u32_array("a.i32").unwrap_err(), &["`a.i32`", "element 0 is -1", "uint32"]);
    check(f.get_i32_array("a.string").unwrap_err(), &["`a.string`", "expected an array of integers"]);
    check(f.get_f32_array("a.bool").unwrap_err(), &["`a.bool`", "expected an array of numbers"]);
    check(f.get_array("t.f32").unwrap_err(), &["`t.f32`", "expected an array", "float32"]);
    check(f.opt_u32("t.string").unwrap_err(), &["`t.string`"]);
}

fn tensor_file(version: u32, alignment: Option<u32>) -> (GgufBuilder, Vec<Vec<u8>>) {
    let w_f32: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
    let datas = [
        f32_bytes(&w_f32),                       // F32 dims [4, 3] -> shape [3, 4]
        f16_bytes(&[1.0, -2.0, 0.5, 8.0, 0.25]), // F16 [5]
        pattern(34 * 4, 1),                      // Q8_0 [64, 2]: 4 blocks
        pattern(144 * 2, 2),                     // Q4_K [256, 1, 2]: 2 blocks
        pattern(2 * 6, 3),                       // BF16 [2, 3]
        pattern(84, 4),                          // Q2_K [256]: known, not loadable
        pattern(210, 5),                         // Q6_K [256]
    ];
    let mut b = GgufBuilder::new(version).kv("general.architecture", s("qwen2")).kv("general.name", s("tiny"));
    if let Some(a) = alignment {
        b = b.kv("general.alignment", GgufValue::U32(a));
    }
    b = b
        .tensor(tensor("w.f32", &[4, 3], ty::F32, datas[0].clone()))
        .tensor(tensor("w.f16", &[5], ty::F16, datas[1].clone()))
        .tensor(tensor("w.q8_0", &[64, 2], ty::Q8_0, datas[2].clone()))
        .tensor(tensor("w.q4_k", &[256, 1, 2], ty::Q4_K, datas[3].clone()))
        .tensor(tensor("w.bf16", &[2, 3], ty::BF16, datas[4].clone()))
        .tensor(tensor("w.q2_k", &[256], ty::Q2_K, datas[5].clone()))
        .tensor(tensor("w.q6_k", &[256], ty::Q6_K, datas[6].clone()))
        .tensor(tensor("w.q4_0", &[32], ty::Q4_0, pattern(18, 7)))
        .tensor(tensor("w.q4_1", &[32], ty::Q4_1, pattern(20, 8)))
        .tensor(tensor("w.q5_0", &[32], ty::Q5_0, pattern(22, 9)))
        .tensor(tensor("w.q5_1", &[32], ty::Q5_1, pattern(24, 10)))
        .tensor(tensor("w.q5_k", &[256], ty::Q5_K, pattern(176, 11)))
        .tensor(tensor("w.scalar", &[], ty::F32, f32_bytes(&[42.0])))
        .tensor(tensor("w.empty", &[0, 4], ty::F32, vec![]));
    let datas = b.tensors.iter().map(|t| t.data.clone()).collect();
    (b, datas)
}

#[test]
fn tensor_infos_and_data_slices() {
    let dir = tempdir();
    for version in [2, 3] {
        let (b, datas) = tensor_file(version, None);
        let path = write(dir.path(), &format!("t{version}.gguf"), &b);
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.architecture().unwrap(), "qwen2");
        assert_eq!(f.tensors().len(), b.tensors.len());
        assert_eq!(f.data_offset() % 32, 0);
        let names: Vec<&str> = f.tensors().iter().map(|t| t.name.as_str()).collect();
        let expected: Vec<&str> = b.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, expected, "tensors() in file order");

        let t = f.tensor("w.f32").unwrap();
        assert_eq!((t.dims.clone(), t.shape(), t.numel()), (vec![4, 3], vec![3, 4], 12));
        assert_eq!((t.ggml_type, t.dtype()), (GgmlType::F32, Some(DType::F32)));
        let (info, bytes) = f.tensor_data("w.f32").unwrap();
        assert_eq!(info.name, "w.f32");
        assert_eq!(bytes, &datas[0][..]);

        let checks: [(&str, GgmlType, Option<DType>, Vec<usize>); 12] = [
            ("w.f16", GgmlType::F16, Some(DType::F16), vec![5]),
            ("w.q8_0", GgmlType::Q8_0, Some(DType::Q8_0), vec![2, 64]),
            ("w.q4_k", GgmlType::Q4_K, Some(DType::Q4_K), vec![2, 1, 256]),
            ("w.bf16", GgmlType::BF16, Some(DType::BF16), vec![3, 2]),
            ("w.q6_k", GgmlType::Q6_K, Some(DType::Q6_K), vec![256]),
            ("w.q4_0", GgmlType::Q4_0, Some(DType::Q4_0), vec![32]),
            ("w.q4_1", GgmlType::Q4_1, Some(DType::Q4_1), vec![32]),
            ("w.q5_0", GgmlType::Q5_0, Some(DType::Q5_0), vec![32]),
            ("w.q5_1", GgmlType::Q5_1, Some(DType::Q5_1), vec![32]),
            ("w.q5_k", GgmlType::Q5_K, Some(DType::Q5_K), vec![256]),
            ("w.scalar", GgmlType::F32, Some(DType::F32), vec![]),
            ("w.empty", GgmlType::F32, Some(DType::F32), vec![4, 0]),
        ];
        for (name, gt, dt, shape) in checks {
            let i = b.tensors.iter().position(|t| t.name == name).unwrap();
            let (info, bytes) = f.tensor_data(name).unwrap();
            assert_eq!((info.ggml_type, info.dtype(), info.shape()), (gt, dt, shape), "{name}");
            assert_eq!(bytes, &b.tensors[i].data[..], "{name}");
            assert_eq!(info.byte_len(), b.tensors[i].data.len());
            assert_eq!(info.offset % 32, 0, "{name}");
            assert_eq!(info.file_range().start as u64, f.data_offset() + info.offset);
            if let Some(d) = dt {
                assert!(d.checked_storage_bytes(info.numel()).is_some());
                if d.is_quantized() {
                    assert_eq!((info.numel() / d.block_size() * d.gguf_block_bytes()), bytes.len());
                }
            }
        }

        // A known type kiln cannot load: sized and checked, refused when its data is asked for.
        let q2 = f.tensor("w.q2_k").unwrap();
        assert_eq!((q2.ggml_type, q2.dtype(), q2.byte_len()), (GgmlType::Q2_K, None, 84));
        let e = f.tensor_data("w.q2_k").unwrap_err();
        assert!(matches!(e, ModelError::GgufUnsupportedType { .. }), "{e:?}");
        assert_mentions(&e.to_string(), &["`w.q2_k`", "Q2_K", &path.display().to_string()]);
        assert_eq!(f.raw_tensor_data("w.q2_k").unwrap().1, &datas[5][..]);

        // Missing tensors.
        assert!(f.tensor("nope").is_none());
        let e = f.tensor_data("nope").unwrap_err();
        assert!(matches!(e, ModelError::MissingTensor { .. }), "{e:?}");
        assert_mentions(&e.to_string(), &["`nope`", &path.display().to_string()]);
    }
}

#[test]
fn custom_alignment() {
    let dir = tempdir();
    for align in [1u32, 8, 64, 4096] {
        let (b, _) = tensor_file(3, Some(align));
        let path = write(dir.path(), &format!("a{align}.gguf"), &b);
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.alignment(), align as u64);
        assert_eq!(f.data_offset() % align as u64, 0);
        for (t, spec) in f.tensors().iter().zip(&b.tensors) {
            assert_eq!(t.offset % align as u64, 0);
            assert_eq!(f.raw_tensor_data(&t.name).unwrap().1, &spec.data[..]);
        }
    }
    // Any integer type is accepted for general.alignment.
    let (mut b, _) = tensor_file(2, None);
    b.kvs.push(("general.alignment".into(), GgufValue::U64(16)));
    let f = GgufFile::open(write(dir.path(), "a16.gguf", &b)).unwrap();
    assert_eq!(f.alignment(), 16);
}

#[test]
fn missing_empty_and_directory_paths() {
    let dir = tempdir();
    let missing = dir.path().join("missing.gguf");
    let e = GgufFile::open(&missing).unwrap_err();
    assert!(matches!(e, ModelError::MissingFile { .. }), "{e:?}");
    assert_mentions(&e.to_string(), &["missing.gguf"]);

    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert_mentions(&open_err(&empty), &["empty"]);

    let e = GgufFile::open(dir.path()).unwrap_err();
    assert_mentions(&e.to_string(), &["directory"]);
}

// ---------------------------------------------------------------- errors

fn small() -> GgufBuilder {
    GgufBuilder::new(3)
        .kv("general.architecture", s("llama"))
        .kv("tokenizer.ggml.tokens", GgufValue::Array(strings(&["a", "b", "c"])))
        .kv("llama.block_count", GgufValue::U32(2))
        .kv("x.u64", GgufValue::U64(5))
        .tensor(tensor("token_embd.weight", &[4, 3], ty::F32, f32_bytes(&[0.5; 12])))
        .tensor(tensor("blk.0.q", &[32, 2], ty::Q8_0, pattern(68, 1)))
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn bad_magic_and_versions() {
    let dir = tempdir();
    let mut w = small().build();
    w.bytes[..4].copy_from_slice(b"GGUX");
    assert_mentions(&open_err(&write_bytes(dir.path(), "magic.gguf", &w.bytes)), &["not a GGUF file", "GGUX"]);
    w.bytes[..4].copy_from_slice(b"tjgg");
    assert_mentions(&open_err(&write_bytes(dir.path(), "ggjt.bin", &w.bytes)), &["legacy GGML"]);
    // A safetensors file is not GGUF.
    assert_mentions(
        &open_err(&write_bytes(dir.path(), "st.gguf", &[8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'])),
        &["not a GGUF file"],
    );

    for (v, needles) in [
        (1u32, &["unsupported GGUF version 1", "versions 2 and 3"][..]),
        (0, &["unsupported GGUF version 0"][..]),
        (4, &["unsupported GGUF version 4"][..]),
        (0x0300_0000, &["big-endian"][..]),
    ] {
        let mut w = small().build();
        w.set_u32("version", v);
        assert_mentions(&open_err(&write_bytes(dir.path(), &format!("v{v}.gguf"), &w.bytes)), needles);
    }
}

#[test]
fn truncated_anywhere_is_a_clear_error() {
    let dir = tempdir();
    let w = small().build();
    let full = w.bytes.len();
    let infos_start = w.field("name_len[token_embd.weight]").at;
    let kv_start = w.field("key_len[general.architecture]").at;
    for (cut, needles) in [
        (2, &["truncated", "shorter than the 24-byte GGUF header"][..]),
        (10, &["truncated", "header"][..]),
        (23, &["truncated"][..]),
        // Too short for the counts the header claims: caught before any entry is read.
        (kv_start + 3, &["header claims 2 tensors and 4 metadata entries", "only 3 bytes follow"][..]),
        (kv_start + 12, &["header claims"][..]),
        (
            w.field("strlen[tokenizer.ggml.tokens[1]]").at + 8,
            &["`tokenizer.ggml.tokens`", "claims 3 elements of type string, which need at least 24 bytes"][..],
        ),
        (
            w.field("strlen[tokenizer.ggml.tokens[2]]").at + 8,
            &["element 2 of the value of metadata `tokenizer.ggml.tokens` has length 1", "past the end"][..],
        ),
        (w.field("value[x.u64]").at + 4, &["truncated", "metadata `x.u64`"][..]),
        (infos_start + 5, &["2 tensors, whose infos need at least 50 bytes", "only 5 bytes remain"][..]),
        (w.field("dim1[blk.0.q]").at + 2, &["truncated", "dims[1] of tensor `blk.0.q`"][..]),
        (w.field("offset[blk.0.q]").at + 7, &["truncated", "offset of tensor `blk.0.q`"][..]),
        (w.data_offset - 1, &["truncated", "data section starts at byte"][..]),
        (w.tensor_starts[1] + 10, &["`blk.0.q`", "past the end of the file"][..]),
        (full - 1, &["`blk.0.q`", "past the end of the file"][..]),
        (w.tensor_starts[0] + 4, &["`token_embd.weight`", "past the end of the file"][..]),
    ] {
        let path = write_bytes(dir.path(), &format!("cut{cut}.gguf"), &w.bytes[..cut]);
        assert_mentions(&open_err(&path), needles);
    }
    // Every single cut point is an error (never a panic), and the full file opens.
    for cut in 0..full {
        let path = write_bytes(dir.path(), "cut.gguf", &w.bytes[..cut]);
        open_err(&path);
    }
    GgufFile::open(write_bytes(dir.path(), "full.gguf", &w.bytes)).unwrap();
}

#[test]
fn lengths_and_counts_past_the_end() {
    let dir = tempdir();
    let cases: Vec<(&str, u64, &[&str])> = vec![
        (
            "strlen[general.architecture]",
            1 << 40,
            &["the value of metadata `general.architecture` has length 1099511627776", "past the end"],
        ),
        ("strlen[general.architecture]", u64::MAX, &["has length 18446744073709551615"]),
        ("key_len[llama.block_count]", 1 << 33, &["the key of metadata entry 2 has length"]),
        ("name_len[blk.0.q]", u64::MAX, &["the name of tensor info 1 has length"]),
        (
            "strlen[tokenizer.ggml.tokens[2]]",
            1000,
            &["element 2 of the value of metadata `tokenizer.ggml.tokens` has length 1000"],
        ),
        (
            "array_len[tokenizer.ggml.tokens]",
            u64::MAX,
            &["`tokenizer.ggml.tokens`", "claims 18446744073709551615 elements of type string", "more than 2^64"],
        ),
        (
            "array_len[tokenizer.ggml.tokens]",
            1 << 40,
            &["claims 1099511627776 elements of type string", "8796093022208 bytes"],
        ),
        ("tensor_count", u64::MAX, &["header claims 18446744073709551615 tensors"]),
        ("tensor_count", 1 << 30, &["header claims 1073741824 tensors"]),
        ("kv_count", 1 << 59, &["576460752303423488 metadata entries"]),
        ("tensor_count", 14, &["claims 14 tensors, whose infos need at least 350 bytes"]),
    ];
    for (i, (field, v, needles)) in cases.into_iter().enumerate() {
        let mut w = small().build();
        w.set_u64(field, v);
        let msg = open_err(&write_bytes(dir.path(), &format!("len{i}.gguf"), &w.bytes));
        assert_mentions(&msg, needles);
    }
    // A huge count of a fixed-size element type.
    let mut w = GgufBuilder::new(3).kv("scores", GgufValue::Array(GgufArray::F32(vec![1.0; 4]))).build();
    w.set_u64("array_len[scores]", 1 << 61);
    let msg = open_err(&write_bytes(dir.path(), "scores.gguf", &w.bytes));
    assert_mentions(&msg, &["`scores`", "claims 2305843009213693952 elements of type float32"]);
}

#[test]
fn tensors_past_the_end_or_misplaced() {
    let dir = tempdir();
    let cases: Vec<(&str, u64, &[&str])> = vec![
        ("offset[blk.0.q]", 1 << 20, &["`blk.0.q`", "1048576", "past the end of the file"]),
        ("offset[blk.0.q]", u64::MAX - 31, &["`blk.0.q`", "past the end", "beyond 2^64"]),
        ("offset[blk.0.q]", 33, &["`blk.0.q`", "data offset 33 is not a multiple of the alignment 32"]),
        ("offset[blk.0.q]", 0, &["overlaps tensor", "`token_embd.weight`"]),
        ("dim1[token_embd.weight]", 1 << 40, &["`token_embd.weight`", "past the end"]),
        ("dim0[token_embd.weight]", u64::MAX, &["`token_embd.weight`", "int64 limit"]),
        ("dim0[token_embd.weight]", 1 << 62, &["`token_embd.weight`", "element count overflows"]),
    ];
    for (i, (field, v, needles)) in cases.into_iter().enumerate() {
        let mut w = small().build();
        w.set_u64(field, v);
        assert_mentions(&open_err(&write_bytes(dir.path(), &format!("t{i}.gguf"), &w.bytes)), needles);
    }
}

#[test]
fn byte_size_must_match_type_and_shape() {
    let dir = tempdir();
    // Row length not a whole number of blocks.
    let b = GgufBuilder::new(3).tensor(tensor("w", &[33, 2], ty::Q8_0, pattern(68, 0)));
    assert_mentions(
        &open_err(&write(dir.path(), "rows.gguf", &b)),
        &["`w`", "Q8_0", "dims [33, 2]", "row length dims[0] = 33 is not a multiple of the Q8_0 block size 32"],
    );
    let b = GgufBuilder::new(3).tensor(tensor("k", &[128, 2], ty::Q4_K, pattern(144, 0)));
    assert_mentions(&open_err(&write(dir.path(), "rowsk.gguf", &b)), &["`k`", "Q4_K block size 256"]);
    // Declared type larger than the bytes written: the next tensor overlaps.
    let b = GgufBuilder::new(3)
        .tensor(tensor("a", &[16], ty::Q8_0 /* patched below */, f32_bytes(&[1.0; 16])))
        .tensor(tensor("b", &[64], ty::F32, f32_bytes(&[2.0; 64])));
    let mut b2 = b.clone();
    b2.tensors[0].dims = vec![64];
    b2.tensors[0].type_id = ty::F16; // 128 bytes, only 64 written before `b`
    assert_mentions(
        &open_err(&write(dir.path(), "overlap.gguf", &b2)),
        &["`a`", "overlaps tensor `b`", "does not match"],
    );
    // The same, last in the file: past the end.
    let b3 = GgufBuilder::new(3).tensor(tensor("last", &[64], ty::F16, f32_bytes(&[1.0; 16])));
    assert_mentions(&open_err(&write(dir.path(), "short.gguf", &b3)), &["`last`", "128 bytes", "past the end"]);
}

#[test]
fn bad_alignment_values() {
    let dir = tempdir();
    for (i, v) in [
        GgufValue::U32(48),
        GgufValue::U32(0),
        GgufValue::I32(-32),
        GgufValue::U64(1 << 33),
        s("32"),
        GgufValue::F32(32.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = small().kv("general.alignment", v);
        b.layout_alignment = Some(32);
        let msg = open_err(&write(dir.path(), &format!("al{i}.gguf"), &b));
        assert_mentions(&msg, &["general.alignment", "power of two"]);
    }
}

#[test]
fn unknown_type_ids() {
    let dir = tempdir();
    for (i, (field, v, needles)) in [
        ("ggml_type[blk.0.q]", 4u32, &["`blk.0.q`", "unknown ggml type id 4"][..]),
        ("ggml_type[blk.0.q]", 99, &["unknown ggml type id 99"][..]),
        ("ggml_type[token_embd.weight]", u32::MAX, &["`token_embd.weight`", "unknown ggml type id 4294967295"][..]),
        ("type[llama.block_count]", 13, &["metadata `llama.block_count` has unknown value type 13"][..]),
        ("array_type[tokenizer.ggml.tokens]", 77, &["`tokenizer.ggml.tokens`", "unknown element type 77"][..]),
        ("n_dims[blk.0.q]", 5, &["`blk.0.q` has 5 dimensions", "at most 4"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut w = small().build();
        w.set_u32(field, v);
        assert_mentions(&open_err(&write_bytes(dir.path(), &format!("ty{i}.gguf"), &w.bytes)), needles);
    }
    // Known but unsupported types open fine (checked sizes); only their data is refused.
    for t in GgmlType::all() {
        let n = t.block_size() * 2;
        let b = GgufBuilder::new(3).tensor(tensor("w", &[n], t.id(), pattern(t.type_size() as usize * 2, 0)));
        let f = GgufFile::open(write(dir.path(), "known.gguf", &b)).unwrap();
        assert_eq!(f.tensor("w").unwrap().ggml_type, t);
        assert_eq!(f.tensor_data("w").is_ok(), t.dtype().is_some(), "{t}");
    }
}

#[test]
fn duplicates_and_malformed_names() {
    let dir = tempdir();
    let b = small().kv("llama.block_count", GgufValue::U32(3));
    assert_mentions(
        &open_err(&write(dir.path(), "dupkey.gguf", &b)),
        &["duplicate metadata key `llama.block_count` (entries 2 and 4)"],
    );
    let b = small().tensor(tensor("blk.0.q", &[4], ty::F32, f32_bytes(&[0.0; 4])));
    assert_mentions(
        &open_err(&write(dir.path(), "dupt.gguf", &b)),
        &["duplicate tensor name `blk.0.q` (tensor infos 1 and 2)"],
    );
    let b = small().kv("", GgufValue::U8(1));
    assert_mentions(&open_err(&write(dir.path(), "emptykey.gguf", &b)), &["metadata entry 4 has an empty key"]);
    let b = small().tensor(tensor("", &[4], ty::F32, f32_bytes(&[0.0; 4])));
    assert_mentions(&open_err(&write(dir.path(), "emptyname.gguf", &b)), &["tensor info 2 has an empty name"]);

    // Invalid UTF-8 in a key and in a string value.
    let mut w = small().build();
    let at = w.field("key_len[llama.block_count]").at + 8;
    w.bytes[at] = 0xff;
    assert_mentions(
        &open_err(&write_bytes(dir.path(), "utf8k.gguf", &w.bytes)),
        &["the key of metadata entry 2", "UTF-8"],
    );
    let mut w = small().build();
    let at = w.field("strlen[tokenizer.ggml.tokens[1]]").at + 8;
    w.bytes[at] = 0xc3;
    assert_mentions(
        &open_err(&write_bytes(dir.path(), "utf8v.gguf", &w.bytes)),
        &["element 1 of the value of metadata `tokenizer.ggml.tokens`", "UTF-8"],
    );
}

#[test]
fn bools_and_nesting_depth() {
    let dir = tempdir();
    let mut w = GgufBuilder::new(3).kv("b", GgufValue::Bool(true)).build();
    let last = w.bytes.len() - 1;
    w.bytes[last] = 2;
    assert_mentions(&open_err(&write_bytes(dir.path(), "bool.gguf", &w.bytes)), &["metadata `b`", "bool stored as 2"]);
    let mut w = GgufBuilder::new(3).kv("bs", GgufValue::Array(GgufArray::Bool(vec![true, false, true]))).build();
    let last = w.bytes.len() - 1;
    w.bytes[last] = 0x80;
    assert_mentions(
        &open_err(&write_bytes(dir.path(), "bools.gguf", &w.bytes)),
        &["element 2", "`bs`", "bool stored as 128"],
    );

    let nest = |depth: usize| {
        let mut a = GgufArray::U8(vec![1]);
        for _ in 1..depth {
            a = GgufArray::Array(vec![a]);
        }
        GgufBuilder::new(3).kv("deep", GgufValue::Array(a))
    };
    let f = GgufFile::open(write(dir.path(), "deep8.gguf", &nest(8))).unwrap();
    assert_eq!(f.get_array("deep").unwrap().len(), 1);
    assert_mentions(
        &open_err(&write(dir.path(), "deep9.gguf", &nest(9))),
        &["`deep`", "nests arrays more than 8 deep"],
    );
}
