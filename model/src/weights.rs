//! Safetensors weights: one `model.safetensors` or the shards of a
//! `model.safetensors.index.json`, memory-mapped and uploaded tensor by tensor.
//!
//! The header of every file is parsed and checked against the file size when the store
//! is opened (before anything is allocated from the header's numbers), so a truncated or
//! corrupt file fails early with the file and the tensor named. Tensor bytes are sliced
//! straight out of the mmap and handed to the GPU upload: no second copy in RAM unless a
//! dtype conversion or a transpose is asked for.
//!
//! Safetensors format: `u64` little-endian header length N, N bytes of JSON
//! `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}`, then the
//! data section; offsets are relative to the start of the data section.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use kiln_tensor::{DType, Device, Tensor, TensorError};
use memmap2::Mmap;
use serde_json::Value;

use crate::config::read_json_object;
use crate::error::{ModelError, Result};

/// The single-file weights' name in a Hugging Face directory.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
/// The index of sharded weights in a Hugging Face directory.
pub const SAFETENSORS_INDEX_FILE: &str = "model.safetensors.index.json";

/// Largest JSON header accepted (the reference implementation's limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Prefixes a checkpoint may or may not carry in front of the names the model asks for
/// (`transformer.h.0…` vs `h.0…` for GPT-2, `model.layers.0…` vs `layers.0…`).
const OPTIONAL_PREFIXES: [&str; 2] = ["transformer.", "model."];

/// One tensor as the safetensors header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name as stored in the file.
    pub name: String,
    /// The safetensors dtype string (`F32`, `F16`, `BF16`, `I64`, …).
    pub dtype: String,
    /// The shape as stored (PyTorch order).
    pub shape: Vec<usize>,
    /// The file holding the tensor.
    pub path: PathBuf,
    file: usize,
    /// Absolute byte range inside the file.
    range: Range<usize>,
}

impl TensorInfo {
    /// The kiln dtype, if kiln can load this tensor as a weight.
    pub fn kiln_dtype(&self) -> Option<DType> {
        match self.dtype.as_str() {
            "F32" => Some(DType::F32),
            "F16" => Some(DType::F16),
            "BF16" => Some(DType::BF16),
            _ => None,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of data in the file.
    pub fn byte_len(&self) -> usize {
        self.range.len()
    }
}

/// Bits per element of each safetensors dtype.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ" | "F8_E5M2FNUZ" => 8,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

struct MappedFile {
    path: PathBuf,
    mmap: Mmap,
}

/// Parse and validate one safetensors file; returns the map and its tensors.
fn open_safetensors(path: &Path, file_index: usize) -> Result<(MappedFile, Vec<TensorInfo>)> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile { path: path.to_path_buf(), what: "safetensors file".into() }
        } else {
            ModelError::io(path, e)
        }
    })?;
    let file_len = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
    if file_len < 8 {
        return Err(ModelError::safetensors(
            path,
            format!("the file is {file_len} bytes, shorter than the 8-byte header length (truncated?)"),
        ));
    }
    // SAFETY: the map is read-only; like every mmap-based loader we assume the file is
    // not modified while the store is open.
    let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
    if mmap.len() as u64 != file_len {
        return Err(ModelError::safetensors(path, "the file changed size while it was being opened"));
    }
    let header_len = u64::from_le_bytes(mmap[..8].try_into().expect("8 bytes"));
    if header_len > file_len - 8 {
        return Err(ModelError::safetensors(
            path,
            format!(
                "the header length says {header_len} bytes of JSON follow, but the file has only {} bytes after it \
                 (truncated, or not a safetensors file)",
                file_len - 8
            ),
        ));
    }
    if header_len > MAX_HEADER_BYTES {
        return Err(ModelError::safetensors(
            path,
            format!("the header is {header_len} bytes, over the {MAX_HEADER_BYTES}-byte limit (corrupt file?)"),
        ));
    }
    let data_start = 8 + header_len as usize;
    let data_len = mmap.len() - data_start;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&mmap[8..data_start])
        .map_err(|e| ModelError::safetensors(path, format!("the header is not a valid JSON object: {e}")))?;

    let mut tensors = Vec::with_capacity(header.len());
    for (name, entry) in &header {
        if name == "__metadata__" {
            continue;
        }
        let bad = |detail: String| ModelError::safetensors(path, format!("tensor `{name}`: {detail}"));
        let obj = entry.as_object().ok_or_else(|| bad(format!("header entry is {entry}, not an object")))?;
        let dtype = obj
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("header entry has no string `dtype`".into()))?
            .to_string();
        let shape: Vec<usize> = obj
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|dims| dims.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok())).collect())
            .ok_or_else(|| bad("header entry has no `shape` list of non-negative integers".into()))?;
        let offsets: Vec<u64> = obj
            .get("data_offsets")
            .and_then(Value::as_array)
            .and_then(|o| o.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
            .filter(|o| o.len() == 2)
            .ok_or_else(|| bad("header entry has no `data_offsets` [begin, end]".into()))?;
        let (begin, end) = (offsets[0], offsets[1]);
        if end < begin {
            return Err(bad(format!("data_offsets [{begin}, {end}] end before they begin")));
        }
        let numel = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
        if let Some(bits) = dtype_bits(&dtype) {
            let expected = numel
                .checked_mul(bits)
                .map(|b| b.div_ceil(8))
                .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
            if end - begin != expected {
                return Err(bad(format!(
                    "{dtype} {shape:?} takes {expected} bytes but data_offsets [{begin}, {end}] span {}",
                    end - begin
                )));
            }
        }
        tensors.push((name.clone(), dtype, shape, begin, end));
    }
    // Report truncation at the first tensor (in file order) that runs past the end.
    tensors.sort_by_key(|t| t.3);
    for (name, dtype, shape, begin, end) in &tensors {
        if *end > data_len as u64 {
            return Err(ModelError::safetensors(
                path,
                format!(
                    "tensor `{name}` ({dtype} {shape:?}) needs bytes {begin}..{end} of the data section, but the file \
                     holds only {data_len} data bytes: the file is truncated (it should be at least {} bytes, it is {file_len})",
                    data_start as u64 + end
                ),
            ));
        }
    }
    let infos = tensors
        .into_iter()
        .map(|(name, dtype, shape, begin, end)| TensorInfo {
            name,
            dtype,
            shape,
            path: path.to_path_buf(),
            file: file_index,
            range: data_start + begin as usize..data_start + end as usize,
        })
        .collect();
    Ok((MappedFile { path: path.to_path_buf(), mmap }, infos))
}

/// The weights of a model: one or more memory-mapped safetensors files.
pub struct WeightStore {
    files: Vec<MappedFile>,
    tensors: HashMap<String, TensorInfo>,
    /// `model.safetensors` or the index file.
    source: PathBuf,
}

impl std::fmt::Debug for WeightStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WeightStore({}, {} tensors in {} file(s))",
            self.source.display(),
            self.tensors.len(),
            self.files.len()
        )
    }
}

impl WeightStore {
    /// Open the weights of a Hugging Face directory: `model.safetensors` if present,
    /// otherwise the shards listed by `model.safetensors.index.json`.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<WeightStore> {
        let dir = dir.as_ref();
        let single = dir.join(SAFETENSORS_FILE);
        if single.exists() {
            return WeightStore::open_file(single);
        }
        let index = dir.join(SAFETENSORS_INDEX_FILE);
        if index.exists() {
            return WeightStore::open_index(index);
        }
        let mut others: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| {
                        n.ends_with(".safetensors") || n.ends_with(".bin") || n.ends_with(".gguf") || n.ends_with(".pt")
                    })
                    .collect()
            })
            .unwrap_or_default();
        others.sort();
        let hint = if others.is_empty() {
            String::new()
        } else {
            format!(" (found {}; PyTorch .bin/.pt files are not supported, other .safetensors names must be listed in an index)", others.join(", "))
        };
        Err(ModelError::NoWeights { dir: dir.to_path_buf(), hint })
    }

    /// Open a single safetensors file.
    pub fn open_file(path: impl AsRef<Path>) -> Result<WeightStore> {
        let path = path.as_ref();
        let (file, infos) = open_safetensors(path, 0)?;
        let tensors = infos.into_iter().map(|t| (t.name.clone(), t)).collect();
        Ok(WeightStore { files: vec![file], tensors, source: path.to_path_buf() })
    }

    /// Open a sharded checkpoint from its `model.safetensors.index.json`; shard names
    /// are relative to the index's directory.
    pub fn open_index(index: impl AsRef<Path>) -> Result<WeightStore> {
        let index = index.as_ref();
        let obj = read_json_object(index, "safetensors index")?;
        let map = match obj.get("weight_map") {
            Some(Value::Object(m)) => m,
            Some(v) => {
                return Err(ModelError::config(
                    index,
                    "weight_map",
                    format!("expected an object of tensor name -> shard file, got {v}"),
                ))
            }
            None => return Err(ModelError::config(index, "weight_map", "is missing")),
        };
        let dir = index.parent().unwrap_or(Path::new("."));
        // Shards in name order, each with the first tensor the index puts in it.
        let mut weight_map: Vec<(&str, &str)> = Vec::with_capacity(map.len());
        for (name, shard) in map {
            let shard = shard.as_str().ok_or_else(|| {
                ModelError::config(
                    index,
                    format!("weight_map.{name}"),
                    format!("expected a shard file name, got {shard}"),
                )
            })?;
            weight_map.push((name.as_str(), shard));
        }
        weight_map.sort();
        let mut shards: Vec<(&str, &str)> = Vec::new();
        for &(name, shard) in &weight_map {
            if !shards.iter().any(|(s, _)| *s == shard) {
                shards.push((shard, name));
            }
        }
        shards.sort();
        let mut files = Vec::with_capacity(shards.len());
        let mut per_file: Vec<HashMap<String, TensorInfo>> = Vec::with_capacity(shards.len());
        for (i, (shard, first_tensor)) in shards.iter().enumerate() {
            let path = dir.join(shard);
            if !path.is_file() {
                return Err(ModelError::MissingShard {
                    index: index.to_path_buf(),
                    shard: shard.to_string(),
                    tensor: first_tensor.to_string(),
                    path,
                });
            }
            let (file, infos) = open_safetensors(&path, i)?;
            files.push(file);
            per_file.push(infos.into_iter().map(|t| (t.name.clone(), t)).collect());
        }
        let mut tensors = HashMap::with_capacity(weight_map.len());
        for (name, shard) in weight_map {
            let i = shards.iter().position(|(s, _)| *s == shard).expect("listed shard");
            let info = per_file[i].remove(name).ok_or_else(|| {
                ModelError::safetensors(
                    index,
                    format!(
                        "weight_map puts tensor `{name}` in {shard}, but {} has no such tensor",
                        files[i].path.display()
                    ),
                )
            })?;
            tensors.insert(name.to_string(), info);
        }
        // Tensors a shard holds that the index forgot are still usable.
        for rest in per_file {
            for (name, info) in rest {
                tensors.entry(name).or_insert(info);
            }
        }
        Ok(WeightStore { files, tensors, source: index.to_path_buf() })
    }

    /// The file the store was opened from (`model.safetensors` or the index).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Every safetensors file of the store.
    pub fn files(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.path.as_path()).collect()
    }

    /// Number of tensors in all files.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the store has no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// All tensor names as stored, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The names tried for `name`: itself, then with an optional prefix removed or added.
    pub fn candidates(name: &str) -> Vec<String> {
        let mut out = vec![name.to_string()];
        match OPTIONAL_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
            Some(stripped) => out.push(stripped.to_string()),
            None => out.extend(OPTIONAL_PREFIXES.iter().map(|p| format!("{p}{name}"))),
        }
        out
    }

    /// Look a tensor up, tolerating a `transformer.` / `model.` prefix difference.
    pub fn find(&self, name: &str) -> Option<&TensorInfo> {
        Self::candidates(name).iter().find_map(|n| self.tensors.get(n))
    }

    /// Whether [`WeightStore::find`] finds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Like [`find`](Self::find), with an error naming the tensor and the files searched.
    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.find(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
            tried: Self::candidates(name),
            files: self.files.iter().map(|f| f.path.clone()).collect(),
        })
    }

    /// The raw little-endian bytes of a tensor, straight from the mmap.
    pub fn bytes(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let info = self.info(name)?;
        Ok((info, &self.files[info.file].mmap[info.range.clone()]))
    }

    /// Look up a float tensor and check its shape: its info, dtype and stored bytes.
    pub fn checked(&self, name: &str, expected: &[usize]) -> Result<(&TensorInfo, DType, &[u8])> {
        let (info, bytes) = self.bytes(name)?;
        let dtype = info.kiln_dtype().ok_or_else(|| ModelError::UnsupportedDType {
            name: info.name.clone(),
            path: info.path.clone(),
            dtype: info.dtype.clone(),
        })?;
        if info.shape != expected {
            return Err(ModelError::Shape {
                name: info.name.clone(),
                path: info.path.clone(),
                expected: expected.to_vec(),
                got: info.shape.clone(),
            });
        }
        Ok((info, dtype, bytes))
    }

    fn tensor_err(info: &TensorInfo, source: TensorError) -> ModelError {
        ModelError::Tensor { name: info.name.clone(), path: info.path.clone(), source: Box::new(source) }
    }

    fn upload(device: &Device, info: &TensorInfo, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::from_bytes(device, bytes, shape, dtype).map_err(|e| Self::tensor_err(info, e))
    }

    fn check_fits(device: &Device, info: &TensorInfo, shape: &[usize], dtype: DType) -> Result<()> {
        let numel: usize = shape.iter().product();
        device
            .check_binding_size(&format!("of shape {shape:?} ({dtype})"), dtype.storage_bytes(numel))
            .map_err(|e| Self::tensor_err(info, e))
    }

    /// Upload a tensor in its stored dtype (f32, f16 or bf16), checking its shape.
    pub fn load(&self, device: &Device, name: &str, shape: &[usize]) -> Result<Tensor> {
        let (info, dtype, bytes) = self.checked(name, shape)?;
        Self::check_fits(device, info, shape, dtype)?;
        Self::upload(device, info, bytes, shape, dtype)
    }

    /// Upload a tensor converted to `dtype` on the CPU (no copy when it already is).
    pub fn load_as(&self, device: &Device, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let (info, from, bytes) = self.checked(name, shape)?;
        check_float_target(info, dtype)?;
        Self::check_fits(device, info, shape, dtype)?;
        if from == dtype {
            return Self::upload(device, info, bytes, shape, dtype);
        }
        Self::upload(device, info, &convert(bytes, from, dtype), shape, dtype)
    }

    /// Upload a tensor as f32 (for norms and biases).
    pub fn load_f32(&self, device: &Device, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.load_as(device, name, shape, DType::F32)
    }

    /// Read a tensor to the host as f32 values.
    pub fn get_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (_, dtype, bytes) = self.checked(name, shape)?;
        Ok(to_f32(bytes, dtype))
    }

    /// Upload a 2-D tensor stored `[rows, cols]` as its transpose `[cols, rows]`, in its own
    /// dtype (bytes are moved, never converted). GPT-2's Conv1D weights are stored
    /// `[in, out]`; this gives the `[out, in]` (nn.Linear) layout the matmul kernels want.
    /// `stored_shape` is the shape in the file.
    pub fn load_transposed(&self, device: &Device, name: &str, stored_shape: [usize; 2]) -> Result<Tensor> {
        let (info, dtype, bytes) = self.checked(name, &stored_shape)?;
        let out_shape = [stored_shape[1], stored_shape[0]];
        Self::check_fits(device, info, &out_shape, dtype)?;
        let t = transpose_bytes(bytes, stored_shape[0], stored_shape[1], dtype.elem_bytes());
        Self::upload(device, info, &t, &out_shape, dtype)
    }

    /// [`load_transposed`](Self::load_transposed), converted to `dtype`.
    pub fn load_transposed_as(
        &self,
        device: &Device,
        name: &str,
        stored_shape: [usize; 2],
        dtype: DType,
    ) -> Result<Tensor> {
        let (info, from, bytes) = self.checked(name, &stored_shape)?;
        check_float_target(info, dtype)?;
        let out_shape = [stored_shape[1], stored_shape[0]];
        Self::check_fits(device, info, &out_shape, dtype)?;
        let t = transpose_bytes(bytes, stored_shape[0], stored_shape[1], from.elem_bytes());
        let t = if from == dtype { t } else { convert(&t, from, dtype) };
        Self::upload(device, info, &t, &out_shape, dtype)
    }

    /// Upload rows `rows` (along the first dimension) of a tensor of shape `shape`,
    /// optionally converted to `dtype`: a piece of a tensor too large for one binding.
    pub fn load_rows(
        &self,
        device: &Device,
        name: &str,
        shape: &[usize],
        rows: Range<usize>,
        dtype: Option<DType>,
    ) -> Result<Tensor> {
        let (info, from, bytes) = self.checked(name, shape)?;
        let to = dtype.unwrap_or(from);
        check_float_target(info, to)?;
        let n_rows = shape.first().copied().unwrap_or(0);
        if rows.start >= rows.end || rows.end > n_rows {
            return Err(Self::tensor_err(
                info,
                TensorError::shape("load_rows", format!("rows {rows:?} out of range for shape {shape:?}")),
            ));
        }
        let row_elems: usize = shape[1..].iter().product();
        let mut piece_shape = shape.to_vec();
        piece_shape[0] = rows.len();
        Self::check_fits(device, info, &piece_shape, to)?;
        let eb = from.elem_bytes();
        let piece = &bytes[rows.start * row_elems * eb..rows.end * row_elems * eb];
        if from == to {
            Self::upload(device, info, piece, &piece_shape, to)
        } else {
            Self::upload(device, info, &convert(piece, from, to), &piece_shape, to)
        }
    }

    /// Upload a tensor as consecutive row blocks, each within the adapter's binding limit
    /// (one block when the whole tensor fits). Returns the blocks and their first rows.
    pub fn load_row_blocks(
        &self,
        device: &Device,
        name: &str,
        shape: &[usize],
        dtype: Option<DType>,
    ) -> Result<Vec<(usize, Tensor)>> {
        let (info, from, _) = self.checked(name, shape)?;
        let to = dtype.unwrap_or(from);
        if shape.is_empty() {
            return Err(Self::tensor_err(info, TensorError::shape("load_row_blocks", "a scalar has no rows")));
        }
        let n_rows = shape.first().copied().unwrap_or(0);
        let row_bytes = to.storage_bytes(shape[1..].iter().product());
        let limit = device.max_binding_bytes();
        // Keep every block's start aligned for views (narrow_rows) and bindings.
        let align = device.limits().min_storage_buffer_offset_alignment.max(4) as u64;
        let mut per_block = limit.checked_div(row_bytes).map_or(n_rows, |n| n as usize);
        if per_block == 0 {
            return Err(Self::tensor_err(
                info,
                TensorError::TooLarge {
                    what: format!("row of shape {:?} ({to})", &shape[1..]),
                    bytes: row_bytes,
                    limit,
                    limit_name: "max_storage_buffer_binding_size",
                },
            ));
        }
        if per_block < n_rows {
            // Round the block down so its byte size is a multiple of the alignment.
            let step = (align / gcd(align, row_bytes.max(1))) as usize;
            if per_block >= step {
                per_block -= per_block % step;
            }
        }
        let mut out = Vec::new();
        let mut start = 0;
        while start < n_rows {
            let end = (start + per_block).min(n_rows);
            out.push((start, self.load_rows(device, name, shape, start..end, dtype)?));
            start = end;
        }
        Ok(out)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn check_float_target(info: &TensorInfo, dtype: DType) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(ModelError::Tensor {
            name: info.name.clone(),
            path: info.path.clone(),
            source: Box::new(TensorError::dtype(
                "loading a weight",
                format!("cannot convert {} to {dtype}", info.dtype),
            )),
        })
    }
}

/// Little-endian float bytes of `dtype` to f32 values.
pub fn to_f32(bytes: &[u8], dtype: DType) -> Vec<f32> {
    match dtype {
        DType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        DType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        DType::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        DType::U32 => bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
        // Safetensors tensors are dense (`TensorInfo::kiln_dtype` never yields a block
        // type); GGUF blocks are dequantized by `kiln_kernels::quant`.
        _ => Vec::new(),
    }
}

/// Convert little-endian float bytes between f32, f16 and bf16 (round to nearest even).
pub fn convert(bytes: &[u8], from: DType, to: DType) -> Vec<u8> {
    if from == to {
        return bytes.to_vec();
    }
    let n = bytes.len() / from.elem_bytes();
    let mut out = Vec::with_capacity(to.storage_bytes(n) as usize);
    let values = bytes.chunks_exact(from.elem_bytes()).map(|c| match from {
        DType::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
        DType::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
        DType::BF16 => half::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
        DType::U32 => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32,
        _ => f32::NAN, // dense types only, as above
    });
    for v in values {
        match to {
            DType::F32 => out.extend_from_slice(&v.to_le_bytes()),
            DType::F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
            DType::U32 => out.extend_from_slice(&(v as u32).to_le_bytes()),
            _ => {} // dense types only, as above
        }
    }
    out
}

/// Transpose a row-major `[rows, cols]` matrix of `elem`-byte elements to `[cols, rows]`.
pub fn transpose_bytes(bytes: &[u8], rows: usize, cols: usize, elem: usize) -> Vec<u8> {
    assert_eq!(bytes.len(), rows * cols * elem, "transpose_bytes: size mismatch");
    let mut out = vec![0u8; bytes.len()];
    // Blocked so both sides stay in cache for large matrices.
    const B: usize = 32;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    let src = (r * cols + c) * elem;
                    let dst = (c * rows + r) * elem;
                    out[dst..dst + elem].copy_from_slice(&bytes[src..src + elem]);
                }
            }
        }
    }
    out
}
