//! A GGUF v3 writer that streams: the header (metadata and tensor infos) is written
//! first, then each tensor's bytes as a callback produces them, so a model never has to
//! be held in memory whole. Used by `kiln bench model --synthetic NAME --write-gguf`.

use std::io::{self, Seek, Write};

use super::{GgufArray, GgufValue};

/// Alignment of the data section and of each tensor (GGUF's default, 32 bytes).
const ALIGNMENT: u64 = 32;

/// A tensor's header entry: name, dims in GGUF order (`dims[0]` innermost), ggml type id
/// and its byte length.
pub struct TensorEntry {
    /// The tensor's name.
    pub name: String,
    /// Dimensions, innermost first.
    pub dims: Vec<u64>,
    /// The ggml type id ([`super::GgmlType::id`]).
    pub type_id: u32,
    /// Bytes of the tensor's data.
    pub bytes: u64,
}

fn string(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn array(w: &mut impl Write, a: &GgufArray) -> io::Result<()> {
    w.write_all(&a.element_type().id().to_le_bytes())?;
    w.write_all(&(a.len() as u64).to_le_bytes())?;
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                w.write_all(&x.to_le_bytes())?;
            }
        };
    }
    match a {
        GgufArray::U8(v) => w.write_all(v)?,
        GgufArray::I8(v) => each!(v),
        GgufArray::U16(v) => each!(v),
        GgufArray::I16(v) => each!(v),
        GgufArray::U32(v) => each!(v),
        GgufArray::I32(v) => each!(v),
        GgufArray::F32(v) => each!(v),
        GgufArray::Bool(v) => w.write_all(&v.iter().map(|&b| b as u8).collect::<Vec<u8>>())?,
        GgufArray::String(v) => {
            for s in v {
                string(w, s)?;
            }
        }
        GgufArray::Array(v) => {
            for inner in v {
                array(w, inner)?;
            }
        }
        GgufArray::U64(v) => each!(v),
        GgufArray::I64(v) => each!(v),
        GgufArray::F64(v) => each!(v),
    }
    Ok(())
}

fn value(w: &mut impl Write, v: &GgufValue) -> io::Result<()> {
    match v {
        GgufValue::U8(x) => w.write_all(&[*x]),
        GgufValue::I8(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::U16(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::I16(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::U32(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::I32(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::F32(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::Bool(b) => w.write_all(&[*b as u8]),
        GgufValue::String(s) => string(w, s),
        GgufValue::Array(a) => array(w, a),
        GgufValue::U64(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::I64(x) => w.write_all(&x.to_le_bytes()),
        GgufValue::F64(x) => w.write_all(&x.to_le_bytes()),
    }
}

fn pad_to(w: &mut (impl Write + Seek), align: u64) -> io::Result<()> {
    let at = w.stream_position()?;
    let pad = at.next_multiple_of(align) - at;
    w.write_all(&vec![0u8; pad as usize])
}

/// Write a GGUF file: `kvs` as metadata, then `tensors`, the bytes of tensor i coming from
/// `data(i)` (exactly `tensors[i].bytes` of them). Returns the bytes written.
pub fn write_gguf(
    w: &mut (impl Write + Seek),
    kvs: &[(String, GgufValue)],
    tensors: &[TensorEntry],
    mut data: impl FnMut(usize) -> io::Result<Vec<u8>>,
) -> io::Result<u64> {
    w.write_all(b"GGUF")?;
    w.write_all(&3u32.to_le_bytes())?;
    w.write_all(&(tensors.len() as u64).to_le_bytes())?;
    w.write_all(&(kvs.len() as u64).to_le_bytes())?;
    for (key, v) in kvs {
        string(w, key)?;
        w.write_all(&v.value_type().id().to_le_bytes())?;
        value(w, v)?;
    }
    let mut offset = 0u64;
    for t in tensors {
        string(w, &t.name)?;
        w.write_all(&(t.dims.len() as u32).to_le_bytes())?;
        for d in &t.dims {
            w.write_all(&d.to_le_bytes())?;
        }
        w.write_all(&t.type_id.to_le_bytes())?;
        w.write_all(&offset.to_le_bytes())?;
        offset = (offset + t.bytes).next_multiple_of(ALIGNMENT);
    }
    for (i, t) in tensors.iter().enumerate() {
        pad_to(w, ALIGNMENT)?;
        let bytes = data(i)?;
        if bytes.len() as u64 != t.bytes {
            return Err(io::Error::other(format!("tensor {} produced {} bytes, its header says {}", t.name, bytes.len(), t.bytes)));
        }
        w.write_all(&bytes)?;
    }
    w.stream_position()
}
