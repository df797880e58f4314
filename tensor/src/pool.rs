//! A buffer pool: tensors made with `Tensor::empty` return their buffer here when the
//! last view of them is dropped, and the next request of the same size reuses it. A
//! forward pass with the same shapes as the previous one therefore allocates nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Storage buffers are rounded up to this many bytes so near-equal sizes share a bucket.
const BUCKET_BYTES: u64 = 256;

pub(crate) const STORAGE_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// Free lists of storage buffers, bucketed by size (rounded up to 256 bytes), shared by the
/// clones of one [`crate::Device`].
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

pub(crate) struct PoolInner {
    device: wgpu::Device,
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    stats: Mutex<PoolStats>,
}

/// Counters for tests and `-v` output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers created because no free one of the size existed.
    pub allocations: u64,
    /// Requests served from the free list.
    pub reuses: u64,
    /// Bytes currently held in free lists.
    pub free_bytes: u64,
}

impl BufferPool {
    pub(crate) fn new(device: wgpu::Device) -> Self {
        BufferPool {
            inner: Arc::new(PoolInner {
                device,
                free: Mutex::new(HashMap::new()),
                stats: Mutex::new(PoolStats::default()),
            }),
        }
    }

    /// The buffer size a request for `bytes` gets: at least 4, rounded up to a multiple of 256.
    pub fn bucket_size(bytes: u64) -> u64 {
        bytes.max(4).div_ceil(BUCKET_BYTES) * BUCKET_BYTES
    }

    /// A storage buffer of at least `bytes` bytes, from the free list when possible.
    pub(crate) fn take(&self, bytes: u64) -> PooledBuffer {
        let size = Self::bucket_size(bytes);
        let reused = self.inner.free.lock().unwrap().get_mut(&size).and_then(|v| v.pop());
        let mut stats = self.inner.stats.lock().unwrap();
        let buffer = match reused {
            Some(b) => {
                stats.reuses += 1;
                stats.free_bytes -= size;
                b
            }
            None => {
                stats.allocations += 1;
                self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kiln pooled"),
                    size,
                    usage: STORAGE_USAGE,
                    mapped_at_creation: false,
                })
            }
        };
        PooledBuffer { buffer: Some(buffer), pool: Some(self.inner.clone()) }
    }

    /// Allocation, reuse and free-byte counters so far.
    pub fn stats(&self) -> PoolStats {
        *self.inner.stats.lock().unwrap()
    }

    /// Free every idle buffer (e.g. after a prompt of unusual length).
    pub fn trim(&self) {
        self.inner.free.lock().unwrap().clear();
        self.inner.stats.lock().unwrap().free_bytes = 0;
    }
}

/// A buffer owned by a tensor; pooled ones go back to their pool on drop.
pub(crate) struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    pool: Option<Arc<PoolInner>>,
}

impl PooledBuffer {
    pub(crate) fn unpooled(buffer: wgpu::Buffer) -> Self {
        PooledBuffer { buffer: Some(buffer), pool: None }
    }
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Some(pool)) = (self.buffer.take(), self.pool.take()) {
            let size = buffer.size();
            pool.free.lock().unwrap().entry(size).or_default().push(buffer);
            pool.stats.lock().unwrap().free_bytes += size;
        }
    }
}
