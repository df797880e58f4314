//! A strict GGUF (v2/v3) reader over a memory map.
//!
//! Layout (all little-endian): `"GGUF"`, `u32` version, `u64` tensor count, `u64`
//! metadata count; the metadata entries (`string` key, `u32` value type, value); the
//! tensor infos (`string` name, `u32` n_dims, `u64` dims\[n_dims\], `u32` ggml type,
//! `u64` offset); padding to `general.alignment` (default 32); the tensor data, each
//! tensor at its offset from the start of that data section. A `string` is a `u64`
//! byte length and UTF-8 bytes; an array a `u32` element type, a `u64` count and the
//! elements.
//!
//! Every count and length is checked against the bytes left in the file *before*
//! anything is allocated from it, all arithmetic on file numbers is checked, and every
//! tensor is checked against its type and shape and must lie inside the file; so a
//! corrupt or truncated file is an error naming the file (and the key or tensor),
//! never a panic or an allocation out of proportion to the file. No allocation is
//! larger than a small multiple (at most 3×, for an array of empty strings) of the file
//! size; tensor data is never copied.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use kiln_tensor::DType;
use memmap2::Mmap;

use super::ggml_type::GgmlType;
use super::value::{GgufArray, GgufValue, GgufValueType};
use crate::error::{ModelError, Result};

/// The first four bytes of every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The GGUF versions kiln reads.
pub const GGUF_VERSIONS: [u32; 2] = [2, 3];
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const GGUF_DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's limit on tensor dimensions.
pub const GGUF_MAX_DIMS: usize = 4;
/// Deepest nesting of arrays accepted (bounds the reader's recursion).
pub const GGUF_MAX_ARRAY_DEPTH: usize = 8;
/// Longest metadata key (the GGUF specification's limit).
pub const GGUF_MAX_KEY_BYTES: usize = 65_535;
/// Metadata key of the data alignment in bytes.
pub const KEY_ALIGNMENT: &str = "general.alignment";
/// Metadata key of the architecture name (`llama`, `qwen2`, `gpt2`, ...).
pub const KEY_ARCHITECTURE: &str = "general.architecture";

/// Magic, version, tensor count, metadata count.
const HEADER_BYTES: u64 = 4 + 4 + 8 + 8;
/// Smallest metadata entry: key length and one byte of key, value type, a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
/// Smallest tensor info: name length and one byte of name, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 4 + 8;

/// One tensor as its GGUF tensor info describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// The tensor's name as stored.
    pub name: String,
    /// Dimensions in GGUF (ggml) order: `dims[0]` is the innermost, contiguous one (the
    /// row length). [`shape`](Self::shape) gives the PyTorch order.
    pub dims: Vec<usize>,
    /// Its ggml type.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section, as stored.
    pub offset: u64,
    /// Absolute byte range in the file.
    range: Range<usize>,
}

impl GgufTensorInfo {
    /// Number of dimensions.
    pub fn n_dims(&self) -> usize {
        self.dims.len()
    }

    /// The shape in PyTorch (row-major, outermost first) order: `dims` reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// Number of elements (1 for a tensor with no dimensions).
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// Bytes of data in the file.
    pub fn byte_len(&self) -> usize {
        self.range.len()
    }

    /// Absolute byte range of the data in the file.
    pub fn file_range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// The kiln dtype, or `None` when kiln cannot load the tensor's ggml type.
    pub fn dtype(&self) -> Option<DType> {
        self.ggml_type.dtype()
    }
}

/// An open, validated GGUF file: its metadata parsed, its tensor infos checked, the
/// tensor data left in the memory map.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, GgufValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GgufFile({}, v{}, {} metadata entries, {} tensors)",
            self.path.display(),
            self.version,
            self.metadata.len(),
            self.tensors.len()
        )
    }
}

impl GgufFile {
    /// Open and validate a GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ModelError::MissingFile { path: path.to_path_buf(), what: "GGUF file".into() }
            } else {
                ModelError::io(path, e)
            }
        })?;
        let meta = file.metadata().map_err(|e| ModelError::io(path, e))?;
        if meta.is_dir() {
            return Err(gguf_err(path, "is a directory, not a GGUF file"));
        }
        if meta.len() == 0 {
            return Err(gguf_err(path, "the file is empty"));
        }
        // SAFETY: the map is read-only; like every mmap-based loader we assume the file is
        // not modified while it is open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        if mmap.len() as u64 != meta.len() {
            return Err(gguf_err(path, "the file changed size while it was being opened"));
        }
        let p = parse(path, &mmap)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            mmap,
            version: p.version,
            alignment: p.alignment,
            data_offset: p.data_offset,
            metadata: p.metadata,
            meta_index: p.meta_index,
            tensors: p.tensors,
            tensor_index: p.tensor_index,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.alignment`, or 32 when absent.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.mmap.len() as u64
    }

    // ---- metadata ----

    /// Every metadata entry, in file order.
    pub fn metadata(&self) -> &[(String, GgufValue)] {
        &self.metadata
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// Whether the metadata has `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.meta_index.contains_key(key)
    }

    fn meta_err(&self, key: &str, detail: impl Into<String>) -> ModelError {
        ModelError::GgufMetadata { path: self.path.clone(), key: key.to_string(), detail: detail.into() }
    }

    /// The value of `key`, or an error naming the key and the file.
    pub fn value(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| self.meta_err(key, "is missing"))
    }

    fn typed<'s, T>(&'s self, key: &str, expected: &str, f: impl Fn(&'s GgufValue) -> Option<T>) -> Result<T> {
        let v = self.value(key)?;
        f(v).ok_or_else(|| self.meta_err(key, format!("expected {expected}, got {}", v.describe())))
    }

    fn int<T: TryFrom<i128>>(&self, key: &str, name: &str) -> Result<T> {
        self.typed(key, &format!("an integer that fits {name}"), |v| v.as_int().and_then(|i| T::try_from(i).ok()))
    }

    /// The string value of `key`; an error naming the key and the file when it is missing or
    /// not a string (as for every `get_*`).
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.typed(key, "a string", GgufValue::as_str)
    }

    /// Any integer type whose value fits u32.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.int(key, "uint32")
    }

    /// Any integer type whose value fits u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.int(key, "uint64")
    }

    /// Any integer type whose value fits usize.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        self.int(key, "usize")
    }

    /// Any integer type whose value fits i32.
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.int(key, "int32")
    }

    /// Any integer type whose value fits i64.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.int(key, "int64")
    }

    /// A float32/float64 value (or an integer) that fits f32.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.typed(key, "a number that fits float32", |v| {
            v.as_f64().filter(|x| !(x.is_finite() && (*x as f32).is_infinite())).map(|x| x as f32)
        })
    }

    /// A float32/float64 value (or an integer).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.typed(key, "a number", GgufValue::as_f64)
    }

    /// A bool value.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.typed(key, "a bool", GgufValue::as_bool)
    }

    /// An array value of any element type, borrowed.
    pub fn get_array(&self, key: &str) -> Result<&GgufArray> {
        self.typed(key, "an array", GgufValue::as_array)
    }

    /// An array of strings, borrowed.
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        self.typed(key, "an array of strings", |v| match v {
            GgufValue::Array(GgufArray::String(s)) => Some(s.as_slice()),
            _ => None,
        })
    }

    fn int_array<T: TryFrom<i128>>(&self, key: &str, name: &str) -> Result<Vec<T>> {
        let arr = self.get_array(key)?;
        let ints = arr
            .ints()
            .ok_or_else(|| self.meta_err(key, format!("expected an array of integers, got {}", arr.describe())))?;
        let mut out = Vec::with_capacity(arr.len());
        for (i, x) in ints.enumerate() {
            let x = T::try_from(x)
                .map_err(|_| self.meta_err(key, format!("element {i} is {x}, which does not fit {name}")))?;
            out.push(x);
        }
        Ok(out)
    }

    /// An array of any integer type whose elements all fit u32.
    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>> {
        self.int_array(key, "uint32")
    }

    /// An array of any integer type whose elements all fit i32.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.int_array(key, "int32")
    }

    /// An array of any integer type whose elements all fit u64.
    pub fn get_u64_array(&self, key: &str) -> Result<Vec<u64>> {
        self.int_array(key, "uint64")
    }

    /// An array of any integer type whose elements all fit i64.
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>> {
        self.int_array(key, "int64")
    }

    /// An array of float32 (or float64, or integers) as f32.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let arr = self.get_array(key)?;
        match arr {
            GgufArray::F32(v) => Ok(v.clone()),
            GgufArray::F64(v) => Ok(v.iter().map(|&x| x as f32).collect()),
            _ => match arr.ints() {
                Some(ints) => Ok(ints.map(|x| x as f32).collect()),
                None => Err(self.meta_err(key, format!("expected an array of numbers, got {}", arr.describe()))),
            },
        }
    }

    fn opt<'s, T>(&'s self, key: &str, get: impl FnOnce(&'s Self, &str) -> Result<T>) -> Result<Option<T>> {
        if self.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `None` when `key` is absent; an error when it has the wrong type.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.opt(key, Self::get_str)
    }

    /// [`GgufFile::get_u32`], or `None` when `key` is absent.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.opt(key, Self::get_u32)
    }

    /// [`GgufFile::get_u64`], or `None` when `key` is absent.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.opt(key, Self::get_u64)
    }

    /// [`GgufFile::get_f32`], or `None` when `key` is absent.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.opt(key, Self::get_f32)
    }

    /// [`GgufFile::get_f64`], or `None` when `key` is absent.
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.opt(key, Self::get_f64)
    }

    /// [`GgufFile::get_bool`], or `None` when `key` is absent.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.opt(key, Self::get_bool)
    }

    /// `general.architecture` (e.g. `llama`, `qwen2`, `gpt2`).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str(KEY_ARCHITECTURE)
    }

    // ---- tensors ----

    /// Every tensor info, in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The tensor info named `name`, if the file has one.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Like [`tensor`](Self::tensor), with an error naming the tensor and the file.
    pub fn tensor_info(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
            tried: vec![name.to_string()],
            files: vec![self.path.clone()],
        })
    }

    /// A tensor and its bytes (ggml layout, straight from the map); an error when it is
    /// missing or its type is one kiln cannot load ([`GgmlType::dtype`]).
    pub fn tensor_data(&self, name: &str) -> Result<(&GgufTensorInfo, &[u8])> {
        let info = self.tensor_info(name)?;
        if info.dtype().is_none() {
            return Err(ModelError::GgufUnsupportedType {
                name: info.name.clone(),
                path: self.path.clone(),
                ggml_type: info.ggml_type.name().to_string(),
            });
        }
        Ok((info, &self.mmap[info.range.clone()]))
    }

    /// A tensor and its bytes whatever its type.
    pub fn raw_tensor_data(&self, name: &str) -> Result<(&GgufTensorInfo, &[u8])> {
        let info = self.tensor_info(name)?;
        Ok((info, &self.mmap[info.range.clone()]))
    }
}

fn gguf_err(path: &Path, detail: impl Into<String>) -> ModelError {
    ModelError::Gguf { path: path.to_path_buf(), detail: detail.into() }
}

/// Everything [`GgufFile`] holds but the map.
struct Parsed {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, GgufValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
}

/// A cursor over the file bytes. Messages are built lazily (`what` closures) so the
/// happy path formats nothing.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

type What<'w> = &'w dyn Fn() -> String;

impl<'a> Reader<'a> {
    fn err(&self, detail: impl Into<String>) -> ModelError {
        gguf_err(self.path, detail)
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn bytes(&mut self, n: u64, what: What) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated: {} needs {n} bytes at offset {}, but the file ends after {} more (it is {} bytes)",
                what(),
                self.pos,
                self.remaining(),
                self.buf.len()
            )));
        }
        let n = n as usize;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: What) -> Result<[u8; N]> {
        Ok(self.bytes(N as u64, what)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self, what: What) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: What) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn bool(&mut self, what: What) -> Result<bool> {
        match self.bytes(1, what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.err(format!("{} is a bool stored as {b}, not 0 or 1", what()))),
        }
    }

    fn string(&mut self, what: What) -> Result<String> {
        let at = self.pos;
        let len = self.u64(&|| format!("the length of {}", what()))?;
        if len > self.remaining() {
            return Err(self.err(format!(
                "{} has length {len} (at offset {at}), past the end of the file: only {} bytes remain",
                what(),
                self.remaining()
            )));
        }
        let bytes = self.bytes(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.err(format!("{} (at offset {at}) is not valid UTF-8: {e}", what()))),
        }
    }

    fn value(&mut self, ty: GgufValueType, what: What) -> Result<GgufValue> {
        use GgufValueType as T;
        Ok(match ty {
            T::U8 => GgufValue::U8(self.bytes(1, what)?[0]),
            T::I8 => GgufValue::I8(self.bytes(1, what)?[0] as i8),
            T::U16 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            T::I16 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            T::U32 => GgufValue::U32(u32::from_le_bytes(self.array(what)?)),
            T::I32 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            T::F32 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            T::Bool => GgufValue::Bool(self.bool(what)?),
            T::String => GgufValue::String(self.string(what)?),
            T::Array => GgufValue::Array(self.gguf_array(0, what)?),
            T::U64 => GgufValue::U64(u64::from_le_bytes(self.array(what)?)),
            T::I64 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            T::F64 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
        })
    }

    fn gguf_array(&mut self, depth: usize, what: What) -> Result<GgufArray> {
        if depth >= GGUF_MAX_ARRAY_DEPTH {
            return Err(self.err(format!("{} nests arrays more than {GGUF_MAX_ARRAY_DEPTH} deep", what())));
        }
        let at = self.pos;
        let ty_id = self.u32(&|| format!("the element type of {}", what()))?;
        let ty = GgufValueType::from_id(ty_id)
            .ok_or_else(|| self.err(format!("{} (at offset {at}) has unknown element type {ty_id}", what())))?;
        let count = self.u64(&|| format!("the length of {}", what()))?;
        let min_bytes = count.checked_mul(ty.min_size() as u64);
        if min_bytes.is_none_or(|b| b > self.remaining()) {
            return Err(self.err(format!(
                "{} (at offset {at}) claims {count} elements of type {ty}, which need at least {} bytes, but only {} \
                 bytes remain in the file",
                what(),
                min_bytes.map_or_else(|| "more than 2^64".to_string(), |b| b.to_string()),
                self.remaining()
            )));
        }
        // From here `count` elements of at least `min_size` bytes fit in the file, so
        // `count` is a safe capacity.
        let n = count as usize;
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                const W: usize = std::mem::size_of::<$t>();
                let raw = self.bytes((n * W) as u64, what)?;
                GgufArray::$variant(
                    raw.chunks_exact(W).map(|c| <$t>::from_le_bytes(c.try_into().expect("W bytes"))).collect(),
                )
            }};
        }
        use GgufValueType as T;
        Ok(match ty {
            T::U8 => GgufArray::U8(self.bytes(count, what)?.to_vec()),
            T::I8 => GgufArray::I8(self.bytes(count, what)?.iter().map(|&b| b as i8).collect()),
            T::U16 => fixed!(U16, u16),
            T::I16 => fixed!(I16, i16),
            T::U32 => fixed!(U32, u32),
            T::I32 => fixed!(I32, i32),
            T::F32 => fixed!(F32, f32),
            T::U64 => fixed!(U64, u64),
            T::I64 => fixed!(I64, i64),
            T::F64 => fixed!(F64, f64),
            T::Bool => {
                let start = self.pos;
                let raw = self.bytes(count, what)?;
                let mut out = Vec::with_capacity(n);
                for (i, &b) in raw.iter().enumerate() {
                    match b {
                        0 => out.push(false),
                        1 => out.push(true),
                        _ => {
                            return Err(self.err(format!(
                                "element {i} of {} (at offset {}) is a bool stored as {b}, not 0 or 1",
                                what(),
                                start + i
                            )))
                        }
                    }
                }
                GgufArray::Bool(out)
            }
            T::String => {
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push(self.string(&|| format!("element {i} of {}", what()))?);
                }
                GgufArray::String(out)
            }
            T::Array => {
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push(self.gguf_array(depth + 1, &|| format!("element {i} of {}", what()))?);
                }
                GgufArray::Array(out)
            }
        })
    }
}

/// A tensor info as read, before its data range is known.
struct RawInfo {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    offset: u64,
}

fn parse(path: &Path, buf: &[u8]) -> Result<Parsed> {
    let file_len = buf.len() as u64;
    let err = |detail: String| gguf_err(path, detail);
    if buf.len() >= 4 && buf[..4] != GGUF_MAGIC {
        let hint = match &buf[..4] {
            b"lmgg" | b"fmgg" | b"tjgg" => {
                " (it is a legacy GGML/GGMF/GGJT model file; convert it to GGUF with a current llama.cpp)"
            }
            _ => "",
        };
        return Err(err(format!(
            "not a GGUF file: it starts with {:02x?} ({:?}), not the magic \"GGUF\"{hint}",
            &buf[..4],
            String::from_utf8_lossy(&buf[..4])
        )));
    }
    if file_len < HEADER_BYTES {
        return Err(err(format!(
            "truncated: the file is {file_len} bytes, shorter than the {HEADER_BYTES}-byte GGUF header"
        )));
    }
    let mut r = Reader { buf, pos: 4, path };
    let version = r.u32(&|| "the version".into())?;
    if !GGUF_VERSIONS.contains(&version) {
        let detail = if version == 1 {
            "unsupported GGUF version 1 (an early-2023 format with 32-bit counts); kiln reads versions 2 and 3: \
             re-convert the model with a current llama.cpp"
                .to_string()
        } else if GGUF_VERSIONS.contains(&version.swap_bytes()) {
            format!(
                "the version reads {version} ({} byte-swapped): this is a big-endian GGUF file; kiln reads \
                 little-endian files only",
                version.swap_bytes()
            )
        } else {
            format!("unsupported GGUF version {version}; kiln reads versions 2 and 3")
        };
        return Err(err(detail));
    }
    let tensor_count = r.u64(&|| "the tensor count".into())?;
    let kv_count = r.u64(&|| "the metadata count".into())?;
    let need = kv_count
        .checked_mul(MIN_KV_BYTES)
        .and_then(|kv| tensor_count.checked_mul(MIN_TENSOR_INFO_BYTES).and_then(|t| t.checked_add(kv)));
    if need.is_none_or(|n| n > r.remaining()) {
        return Err(err(format!(
            "the header claims {tensor_count} tensors and {kv_count} metadata entries, which need at least {} bytes, \
             but only {} bytes follow the header (corrupt or truncated file)",
            need.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
            r.remaining()
        )));
    }

    // Metadata. Counts are bounded by the file size (checked above), but containers grow
    // with what is actually read rather than being sized from the header.
    let mut metadata: Vec<(String, GgufValue)> = Vec::new();
    let mut meta_index: HashMap<String, usize> = HashMap::new();
    for i in 0..kv_count {
        let key = r.string(&|| format!("the key of metadata entry {i}"))?;
        if key.is_empty() {
            return Err(err(format!("metadata entry {i} has an empty key")));
        }
        if key.len() > GGUF_MAX_KEY_BYTES {
            return Err(err(format!(
                "metadata entry {i} has a key of {} bytes, over the GGUF limit of {GGUF_MAX_KEY_BYTES}",
                key.len()
            )));
        }
        if let Some(&j) = meta_index.get(&key) {
            return Err(err(format!("duplicate metadata key `{key}` (entries {j} and {i})")));
        }
        let at = r.pos;
        let ty_id = r.u32(&|| format!("the value type of metadata `{key}`"))?;
        let ty = GgufValueType::from_id(ty_id)
            .ok_or_else(|| err(format!("metadata `{key}` has unknown value type {ty_id} (at offset {at})")))?;
        let value = r.value(ty, &|| format!("the value of metadata `{key}`"))?;
        meta_index.insert(key.clone(), metadata.len());
        metadata.push((key, value));
    }

    let alignment = match meta_index.get(KEY_ALIGNMENT) {
        None => GGUF_DEFAULT_ALIGNMENT,
        Some(&i) => {
            let v = &metadata[i].1;
            match v.as_int() {
                Some(a) if a > 0 && a <= u32::MAX as i128 && (a as u64).is_power_of_two() => a as u64,
                _ => {
                    return Err(err(format!(
                        "metadata `{KEY_ALIGNMENT}` is {}; it must be a power of two (uint32)",
                        v.describe()
                    )))
                }
            }
        }
    };

    // Tensor infos.
    let need = tensor_count.checked_mul(MIN_TENSOR_INFO_BYTES);
    if need.is_none_or(|n| n > r.remaining()) {
        return Err(err(format!(
            "the header claims {tensor_count} tensors, whose infos need at least {} bytes, but only {} bytes remain \
             after the metadata (corrupt or truncated file)",
            need.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
            r.remaining()
        )));
    }
    let mut raw: Vec<RawInfo> = Vec::new();
    let mut tensor_index: HashMap<String, usize> = HashMap::new();
    for i in 0..tensor_count {
        let name = r.string(&|| format!("the name of tensor info {i}"))?;
        if name.is_empty() {
            return Err(err(format!("tensor info {i} has an empty name")));
        }
        if let Some(&j) = tensor_index.get(&name) {
            return Err(err(format!("duplicate tensor name `{name}` (tensor infos {j} and {i})")));
        }
        let n_dims = r.u32(&|| format!("n_dims of tensor `{name}`"))?;
        if n_dims as usize > GGUF_MAX_DIMS {
            return Err(err(format!("tensor `{name}` has {n_dims} dimensions; GGUF allows at most {GGUF_MAX_DIMS}")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(r.u64(&|| format!("dims[{d}] of tensor `{name}`"))?);
        }
        let at = r.pos;
        let type_id = r.u32(&|| format!("the ggml type of tensor `{name}`"))?;
        let ggml_type = GgmlType::from_id(type_id)
            .ok_or_else(|| err(format!("tensor `{name}` has unknown ggml type id {type_id} (at offset {at})")))?;
        let offset = r.u64(&|| format!("the data offset of tensor `{name}`"))?;
        tensor_index.insert(name.clone(), raw.len());
        raw.push(RawInfo { name, dims, ggml_type, offset });
    }

    let infos_end = r.pos as u64;
    let data_offset = infos_end
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| err(format!("the data section offset overflows (alignment {alignment})")))?;
    if !raw.is_empty() && data_offset > file_len {
        return Err(err(format!(
            "truncated: the tensor infos end at byte {infos_end}, so the data section starts at byte {data_offset} \
             (alignment {alignment}), but the file is {file_len} bytes"
        )));
    }

    // Sizes, alignment and bounds of every tensor.
    let mut tensors = Vec::with_capacity(raw.len());
    for t in raw {
        let RawInfo { name, dims, ggml_type, offset } = t;
        let desc = || format!("tensor `{name}` ({ggml_type}, dims {dims:?})");
        if let Some(d) = dims.iter().position(|&d| d > i64::MAX as u64) {
            return Err(err(format!("{}: dims[{d}] = {} exceeds ggml's int64 limit", desc(), dims[d])));
        }
        let numel = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| err(format!("{}: the element count overflows", desc())))?;
        let row = dims.first().copied().unwrap_or(1);
        let block = ggml_type.block_size();
        if !row.is_multiple_of(block) {
            return Err(err(format!(
                "{}: the row length dims[0] = {row} is not a multiple of the {ggml_type} block size {block}",
                desc()
            )));
        }
        let n_bytes = ggml_type.bytes_for(numel).ok_or_else(|| err(format!("{}: the byte size overflows", desc())))?;
        if offset % alignment != 0 {
            return Err(err(format!(
                "{}: data offset {offset} is not a multiple of the alignment {alignment}",
                desc()
            )));
        }
        let start = data_offset.checked_add(offset);
        let end = start.and_then(|s| s.checked_add(n_bytes));
        let (start, end) = match (start, end) {
            (Some(s), Some(e)) if e <= file_len => (s as usize, e as usize),
            _ => {
                return Err(err(format!(
                    "{}: its {n_bytes} bytes at data offset {offset} (file offset {}) run past the end of the file, \
                     which is {file_len} bytes (truncated, or a corrupt offset)",
                    desc(),
                    start.map_or_else(|| "beyond 2^64".to_string(), |s| s.to_string()),
                )))
            }
        };
        let dims = dims.into_iter().map(|d| d as usize).collect();
        tensors.push(GgufTensorInfo { name, dims, ggml_type, offset, range: start..end });
    }

    // No two tensors may share bytes: an overlap means some size in the file does not
    // match its type and shape.
    let mut order: Vec<usize> = (0..tensors.len()).filter(|&i| !tensors[i].range.is_empty()).collect();
    order.sort_by_key(|&i| (tensors[i].range.start, tensors[i].range.end));
    let mut furthest: Option<&GgufTensorInfo> = None; // the tensor reaching furthest so far
    for &i in &order {
        let b = &tensors[i];
        if let Some(a) = furthest {
            if a.range.end > b.range.start {
                return Err(err(format!(
                    "tensor `{}` ({}, dims {:?}, {} bytes at data offset {}) overlaps tensor `{}` at data offset {}: \
                     a tensor's size does not match its type and shape",
                    a.name,
                    a.ggml_type,
                    a.dims,
                    a.byte_len(),
                    a.offset,
                    b.name,
                    b.offset
                )));
            }
        }
        if furthest.is_none_or(|a| b.range.end > a.range.end) {
            furthest = Some(b);
        }
    }

    Ok(Parsed { version, alignment, data_offset, metadata, meta_index, tensors, tensor_index })
}
