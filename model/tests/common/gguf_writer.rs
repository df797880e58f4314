//! A tiny GGUF writer for tests. It records where every header field it writes lives
//! (`Written::fields`), so a test or the fuzz harness can corrupt exactly one count,
//! length, type id or offset.
#![allow(dead_code)]

use kiln_model::gguf::{GgufArray, GgufValue};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    U32,
    U64,
}

/// One integer field of the written file.
#[derive(Clone, Debug)]
pub struct Field {
    /// Absolute byte offset.
    pub at: usize,
    pub width: Width,
    /// e.g. `tensor_count`, `strlen[general.name]`, `array_len[tokens]`, `offset[w]`.
    pub name: String,
}

/// A tensor to write: `dims` in GGUF order (`dims[0]` innermost), a raw ggml type id,
/// the bytes (written as given, whatever the type says) and an optional explicit offset
/// into the data section (default: packed, each at the next multiple of the alignment).
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
    pub offset: Option<u64>,
}

pub fn tensor(name: &str, dims: &[u64], type_id: u32, data: Vec<u8>) -> TensorSpec {
    TensorSpec { name: name.to_string(), dims: dims.to_vec(), type_id, data, offset: None }
}

#[derive(Clone, Debug)]
pub struct GgufBuilder {
    pub version: u32,
    pub kvs: Vec<(String, GgufValue)>,
    pub tensors: Vec<TensorSpec>,
    /// Alignment used to lay the file out; default: `general.alignment` when it is a
    /// usable integer, else 32. Set it to lay out a file that disagrees with its metadata.
    pub layout_alignment: Option<u64>,
}

impl GgufBuilder {
    pub fn new(version: u32) -> Self {
        GgufBuilder { version, kvs: Vec::new(), tensors: Vec::new(), layout_alignment: None }
    }

    pub fn kv(mut self, key: &str, value: GgufValue) -> Self {
        self.kvs.push((key.to_string(), value));
        self
    }

    pub fn tensor(mut self, t: TensorSpec) -> Self {
        self.tensors.push(t);
        self
    }

    fn alignment(&self) -> u64 {
        if let Some(a) = self.layout_alignment {
            return a;
        }
        let from_kv = self.kvs.iter().find(|(k, _)| k == "general.alignment").and_then(|(_, v)| v.as_int());
        match from_kv {
            Some(a) if a > 0 && a <= 1 << 20 => a as u64,
            _ => 32,
        }
    }

    pub fn build(&self) -> Written {
        let mut w = Written { bytes: Vec::new(), fields: Vec::new(), data_offset: 0, tensor_starts: Vec::new() };
        w.bytes.extend_from_slice(b"GGUF");
        w.u32("version", self.version);
        w.u64("tensor_count", self.tensors.len() as u64);
        w.u64("kv_count", self.kvs.len() as u64);
        for (key, value) in &self.kvs {
            w.u64(&format!("key_len[{key}]"), key.len() as u64);
            w.bytes.extend_from_slice(key.as_bytes());
            w.u32(&format!("type[{key}]"), value.value_type().id());
            w.value(key, value);
        }
        let align = self.alignment();
        let mut next = 0u64;
        let mut offsets = Vec::new();
        for t in &self.tensors {
            w.u64(&format!("name_len[{}]", t.name), t.name.len() as u64);
            w.bytes.extend_from_slice(t.name.as_bytes());
            w.u32(&format!("n_dims[{}]", t.name), t.dims.len() as u32);
            for (d, &x) in t.dims.iter().enumerate() {
                w.u64(&format!("dim{d}[{}]", t.name), x);
            }
            w.u32(&format!("ggml_type[{}]", t.name), t.type_id);
            let off = t.offset.unwrap_or(next);
            next = (off + t.data.len() as u64).next_multiple_of(align);
            w.u64(&format!("offset[{}]", t.name), off);
            offsets.push(off);
        }
        let data_offset = (w.bytes.len() as u64).next_multiple_of(align) as usize;
        w.data_offset = data_offset;
        if !self.tensors.is_empty() {
            w.bytes.resize(data_offset, 0);
        }
        for (t, off) in self.tensors.iter().zip(offsets) {
            let start = data_offset + off as usize;
            if w.bytes.len() < start + t.data.len() {
                w.bytes.resize(start + t.data.len(), 0);
            }
            w.bytes[start..start + t.data.len()].copy_from_slice(&t.data);
            w.tensor_starts.push(start);
        }
        w
    }
}

/// The bytes of a GGUF file and where its fields are.
#[derive(Clone, Debug)]
pub struct Written {
    pub bytes: Vec<u8>,
    pub fields: Vec<Field>,
    /// Absolute offset of the data section.
    pub data_offset: usize,
    /// Absolute offset of each tensor's data.
    pub tensor_starts: Vec<usize>,
}

impl Written {
    fn u32(&mut self, name: &str, v: u32) {
        self.fields.push(Field { at: self.bytes.len(), width: Width::U32, name: name.to_string() });
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, name: &str, v: u64) {
        self.fields.push(Field { at: self.bytes.len(), width: Width::U64, name: name.to_string() });
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, name: &str, s: &str) {
        self.u64(&format!("strlen[{name}]"), s.len() as u64);
        self.bytes.extend_from_slice(s.as_bytes());
    }

    fn value(&mut self, name: &str, v: &GgufValue) {
        match v {
            GgufValue::U8(x) => self.bytes.push(*x),
            GgufValue::I8(x) => self.bytes.push(*x as u8),
            GgufValue::U16(x) => self.bytes.extend_from_slice(&x.to_le_bytes()),
            GgufValue::I16(x) => self.bytes.extend_from_slice(&x.to_le_bytes()),
            GgufValue::U32(x) => self.u32(&format!("value[{name}]"), *x),
            GgufValue::I32(x) => self.bytes.extend_from_slice(&x.to_le_bytes()),
            GgufValue::F32(x) => self.bytes.extend_from_slice(&x.to_le_bytes()),
            GgufValue::Bool(b) => self.bytes.push(*b as u8),
            GgufValue::String(s) => self.string(name, s),
            GgufValue::Array(a) => self.array(name, a),
            GgufValue::U64(x) => self.u64(&format!("value[{name}]"), *x),
            GgufValue::I64(x) => self.bytes.extend_from_slice(&x.to_le_bytes()),
            GgufValue::F64(x) => self.bytes.extend_from_slice(&x.to_le_bytes()),
        }
    }

    fn array(&mut self, name: &str, a: &GgufArray) {
        self.u32(&format!("array_type[{name}]"), a.element_type().id());
        self.u64(&format!("array_len[{name}]"), a.len() as u64);
        macro_rules! each {
            ($v:expr) => {
                for x in $v {
                    self.bytes.extend_from_slice(&x.to_le_bytes());
                }
            };
        }
        match a {
            GgufArray::U8(v) => self.bytes.extend_from_slice(v),
            GgufArray::I8(v) => each!(v),
            GgufArray::U16(v) => each!(v),
            GgufArray::I16(v) => each!(v),
            GgufArray::U32(v) => each!(v),
            GgufArray::I32(v) => each!(v),
            GgufArray::F32(v) => each!(v),
            GgufArray::Bool(v) => self.bytes.extend(v.iter().map(|&b| b as u8)),
            GgufArray::String(v) => {
                for (i, s) in v.iter().enumerate() {
                    self.string(&format!("{name}[{i}]"), s);
                }
            }
            GgufArray::Array(v) => {
                for (i, inner) in v.iter().enumerate() {
                    self.array(&format!("{name}[{i}]"), inner);
                }
            }
            GgufArray::U64(v) => each!(v),
            GgufArray::I64(v) => each!(v),
            GgufArray::F64(v) => each!(v),
        }
    }

    /// The field called `name` (panics when there is none: a test bug).
    pub fn field(&self, name: &str) -> &Field {
        self.fields.iter().find(|f| f.name == name).unwrap_or_else(|| {
            let names: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
            panic!("no field {name:?}; fields: {names:?}")
        })
    }

    pub fn set_u64(&mut self, name: &str, v: u64) -> &mut Self {
        let f = self.field(name).clone();
        assert_eq!(f.width, Width::U64, "{name} is a u32 field");
        self.bytes[f.at..f.at + 8].copy_from_slice(&v.to_le_bytes());
        self
    }

    pub fn set_u32(&mut self, name: &str, v: u32) -> &mut Self {
        let f = self.field(name).clone();
        assert_eq!(f.width, Width::U32, "{name} is a u64 field");
        self.bytes[f.at..f.at + 4].copy_from_slice(&v.to_le_bytes());
        self
    }

    pub fn write(&self, path: &std::path::Path) {
        std::fs::write(path, &self.bytes).expect("write GGUF file");
    }
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
}

/// `n` bytes of a recognisable pattern (for block types, whose bytes the reader does
/// not interpret).
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// ggml type ids used by the tests.
pub mod ty {
    pub const F32: u32 = 0;
    pub const F16: u32 = 1;
    pub const Q4_0: u32 = 2;
    pub const Q4_1: u32 = 3;
    pub const Q5_0: u32 = 6;
    pub const Q5_1: u32 = 7;
    pub const Q8_0: u32 = 8;
    pub const Q2_K: u32 = 10;
    pub const Q4_K: u32 = 12;
    pub const Q5_K: u32 = 13;
    pub const Q6_K: u32 = 14;
    pub const BF16: u32 = 30;
}
