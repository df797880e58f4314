//! `Tensor` = a GPU buffer (shared, reference counted) + byte offset + shape + dtype.
//!
//! Views (`reshape`, `narrow_rows`) share the buffer. All tensors are contiguous,
//! row-major. Kernels read every dtype through 32-bit words, so buffers are rounded
//! up to a multiple of 4 bytes.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::counters::Counters;
use crate::device::Device;
use crate::dtype::{DType, HostElem};
use crate::error::{Result, TensorError};
use crate::pool::{PooledBuffer, STORAGE_USAGE};

/// A contiguous row-major tensor in a GPU buffer: shape, dtype and byte offset into a shared
/// buffer. Cloning shares the buffer.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<PooledBuffer>,
    offset: u64,
    shape: Vec<usize>,
    dtype: DType,
    device: Device,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {})", self.shape, self.dtype)
    }
}

/// Number of elements of `shape`, refusing zero-size and overflowing shapes.
pub fn checked_numel(op: &str, shape: &[usize]) -> Result<usize> {
    if shape.is_empty() {
        return Err(TensorError::shape(op, "a tensor needs at least one dimension"));
    }
    let mut n: usize = 1;
    for &d in shape {
        n = n.checked_mul(d).ok_or_else(|| TensorError::shape(op, format!("shape {shape:?} overflows")))?;
    }
    if n == 0 {
        return Err(TensorError::Empty { op: op.to_string(), shape: shape.to_vec() });
    }
    Ok(n)
}

/// Bytes of `numel` elements of `dtype`, refusing a partial block of a quantized type.
fn block_bytes(op: &str, shape: &[usize], numel: usize, dtype: DType) -> Result<u64> {
    dtype.checked_storage_bytes(numel).ok_or_else(|| {
        TensorError::shape(
            op,
            format!("{dtype} stores blocks of {} elements; shape {shape:?} has {numel}", dtype.block_size()),
        )
    })
}

fn padded4(bytes: u64) -> u64 {
    bytes.div_ceil(4) * 4
}

impl Tensor {
    /// An uninitialised tensor from the device's buffer pool.
    pub fn empty(device: &Device, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let numel = checked_numel("Tensor::empty", shape)?;
        let bytes = block_bytes("Tensor::empty", shape, numel, dtype)?;
        device.check_binding_size(&format!("of shape {shape:?} ({dtype})"), bytes)?;
        let storage = device.pool().take(padded4(bytes));
        Ok(Tensor { storage: Arc::new(storage), offset: 0, shape: shape.to_vec(), dtype, device: device.clone() })
    }

    /// An uninitialised tensor in a buffer of its own, outside the pool: for long-lived
    /// tensors built on the GPU (weights stacked at load), whose memory should be freed
    /// when they are dropped rather than kept in the pool.
    pub fn empty_unpooled(device: &Device, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let numel = checked_numel("Tensor::empty_unpooled", shape)?;
        let bytes = block_bytes("Tensor::empty_unpooled", shape, numel, dtype)?;
        device.check_binding_size(&format!("of shape {shape:?} ({dtype})"), bytes)?;
        Counters::add(&device.count().unpooled_buffers, 1);
        let buffer = device.wgpu().create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln unpooled"),
            size: padded4(bytes),
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        Ok(Tensor {
            storage: Arc::new(PooledBuffer::unpooled(buffer)),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
            device: device.clone(),
        })
    }

    /// A zero-filled tensor (cleared by its own submit: while recording a forward pass use
    /// `Tensor::empty` + `Recorder::clear` instead).
    pub fn zeros(device: &Device, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = Tensor::empty(device, shape, dtype)?;
        let mut enc = device.wgpu().create_command_encoder(&Default::default());
        enc.clear_buffer(t.buffer(), t.offset, Some(padded4(t.byte_len())));
        Counters::add(&device.count().submits, 1);
        device.queue().submit([enc.finish()]);
        Ok(t)
    }

    /// Upload host elements (f32, f16, bf16 or u32).
    pub fn from_slice<T: HostElem>(device: &Device, data: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_bytes(device, bytemuck::cast_slice(data), shape, T::DTYPE)
    }

    /// Upload raw little-endian bytes holding `shape` elements of `dtype`.
    pub fn from_bytes(device: &Device, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Tensor> {
        let numel = checked_numel("Tensor::from_bytes", shape)?;
        let expected = block_bytes("Tensor::from_bytes", shape, numel, dtype)?;
        if bytes.len() as u64 != expected {
            return Err(TensorError::HostData {
                shape: shape.to_vec(),
                dtype: dtype.to_string(),
                expected,
                got: bytes.len() as u64,
            });
        }
        device.check_binding_size(&format!("of shape {shape:?} ({dtype})"), expected)?;
        Counters::add(&device.count().unpooled_buffers, 1);
        Counters::add(&device.count().upload_bytes, expected);
        let buffer = if expected % 4 == 0 {
            device.wgpu().create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("kiln upload"),
                contents: bytes,
                usage: STORAGE_USAGE,
            })
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(padded4(expected) as usize, 0);
            device.wgpu().create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("kiln upload"),
                contents: &padded,
                usage: STORAGE_USAGE,
            })
        };
        Ok(Tensor {
            storage: Arc::new(PooledBuffer::unpooled(buffer)),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
            device: device.clone(),
        })
    }

    /// Overwrite the tensor's contents from the host (queued before the next submit).
    pub fn write<T: HostElem>(&self, data: &[T]) -> Result<()> {
        if T::DTYPE != self.dtype {
            return Err(TensorError::dtype("Tensor::write", format!("tensor is {}, data is {}", self.dtype, T::DTYPE)));
        }
        if data.len() != self.numel() {
            return Err(TensorError::shape(
                "Tensor::write",
                format!("tensor {:?} has {} elements, data has {}", self.shape, self.numel(), data.len()),
            ));
        }
        let bytes: &[u8] = bytemuck::cast_slice(data);
        Counters::add(&self.device.count().upload_bytes, bytes.len() as u64);
        if bytes.len() % 4 == 0 {
            self.device.queue().write_buffer(self.buffer(), self.offset, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(padded4(bytes.len() as u64) as usize, 0);
            self.device.queue().write_buffer(self.buffer(), self.offset, &padded);
        }
        Ok(())
    }

    /// Overwrite elements `at..at + data.len()` from the host (queued before the next
    /// submit); the range must be whole 4-byte words.
    pub fn write_at<T: HostElem>(&self, at: usize, data: &[T]) -> Result<()> {
        let op = "Tensor::write_at";
        if T::DTYPE != self.dtype {
            return Err(TensorError::dtype(op, format!("tensor is {}, data is {}", self.dtype, T::DTYPE)));
        }
        if at.checked_add(data.len()).is_none_or(|end| end > self.numel()) {
            return Err(TensorError::shape(
                op,
                format!("{} elements at {at} overflow the tensor's {} ({:?})", data.len(), self.numel(), self.shape),
            ));
        }
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let start = self.dtype.storage_bytes(at);
        if !start.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
            return Err(TensorError::shape(op, "writes must start and end on whole 4-byte words"));
        }
        Counters::add(&self.device.count().upload_bytes, bytes.len() as u64);
        self.device.queue().write_buffer(self.buffer(), self.offset + start, bytes);
        Ok(())
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Size of dimension `i` counted from the end when negative (-1 = last).
    pub fn dim(&self, i: isize) -> usize {
        let idx = if i < 0 { self.shape.len() as isize + i } else { i };
        self.shape[idx as usize]
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of elements (product of the shape).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Bytes the elements take ([`DType::storage_bytes`]), before rounding up to 4.
    pub fn byte_len(&self) -> u64 {
        self.dtype.storage_bytes(self.numel())
    }
    /// The device the buffer lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// The whole GPU buffer this tensor views (it may be larger and shared with other views).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.storage.buffer()
    }
    /// Where this tensor's bytes start in [`Tensor::buffer`].
    pub fn byte_offset(&self) -> u64 {
        self.offset
    }

    /// The binding a kernel sees: this tensor's bytes, rounded up to 4.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer(),
            offset: self.offset,
            size: wgpu::BufferSize::new(self.binding_bytes()),
        })
    }

    /// The size of [`Tensor::binding`] in bytes.
    pub fn binding_bytes(&self) -> u64 {
        padded4(self.byte_len())
    }

    /// True if both tensors view the same bytes of the same buffer.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// The same data seen with another shape of the same element count (no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n = checked_numel("reshape", shape)?;
        if n != self.numel() {
            return Err(TensorError::shape(
                "reshape",
                format!("cannot view {:?} ({} elements) as {:?} ({} elements)", self.shape, self.numel(), shape, n),
            ));
        }
        Ok(Tensor { shape: shape.to_vec(), ..self.clone() })
    }

    /// Rows `start..start+len` along the first dimension, as a view when the byte offset
    /// meets the adapter's storage-offset alignment, otherwise an error saying so.
    pub fn narrow_rows(&self, start: usize, len: usize) -> Result<Tensor> {
        let rows = self.shape[0];
        if len == 0 || start.checked_add(len).is_none_or(|end| end > rows) {
            return Err(TensorError::shape(
                "narrow_rows",
                format!("rows {start}..{} out of range for shape {:?}", start.saturating_add(len), self.shape),
            ));
        }
        let row_elems: usize = self.shape[1..].iter().product();
        let byte_start = self.dtype.storage_bytes(start * row_elems);
        let align = self.device.limits().min_storage_buffer_offset_alignment as u64;
        if (self.offset + byte_start) % align != 0 {
            return Err(TensorError::shape(
                "narrow_rows",
                format!(
                    "row {start} starts at byte {}, not a multiple of the adapter's storage offset alignment {align}",
                    self.offset + byte_start
                ),
            ));
        }
        let mut shape = self.shape.clone();
        shape[0] = len;
        Ok(Tensor { offset: self.offset + byte_start, shape, ..self.clone() })
    }

    /// Read the raw bytes back to the host (waits for all submitted work).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let len = padded4(self.byte_len());
        let dev = &self.device;
        let c = dev.count();
        Counters::add(&c.submits, 1);
        Counters::add(&c.unpooled_buffers, 1);
        Counters::add(&c.readback_bytes, len);
        let staging = dev.wgpu().create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln readback"),
            size: len,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = dev.wgpu().create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(self.buffer(), self.offset, &staging, 0, len);
        dev.queue().submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        dev.sync()?;
        rx.recv()
            .map_err(|e| TensorError::Gpu { context: "readback".into(), detail: e.to_string() })?
            .map_err(|e| TensorError::Gpu { context: "readback".into(), detail: e.to_string() })?;
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| TensorError::Gpu { context: "readback".into(), detail: e.to_string() })?;
        let mut out = view.to_vec();
        drop(view);
        staging.unmap();
        out.truncate(self.byte_len() as usize);
        Ok(out)
    }

    /// Read back as f32, converting f16/bf16.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let bytes = self.to_bytes()?;
        Ok(match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            DType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::U32 => return Err(TensorError::dtype("to_vec_f32", "tensor holds u32; use to_vec_u32")),
            q => {
                return Err(TensorError::dtype(
                    "to_vec_f32",
                    format!("tensor holds {q} blocks; dequantize them with kiln_kernels::quant"),
                ))
            }
        })
    }

    /// Read back a `U32` tensor; any other dtype is a [`crate::TensorError::DType`].
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        if self.dtype != DType::U32 {
            return Err(TensorError::dtype("to_vec_u32", format!("tensor holds {}", self.dtype)));
        }
        Ok(bytemuck::pod_collect_to_vec(&self.to_bytes()?))
    }
}
