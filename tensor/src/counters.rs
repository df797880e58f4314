//! Counters of the work that crosses between the CPU and the GPU: submits, buffers
//! created, bind groups, bytes uploaded and read back. `kiln bench model --profile`
//! prints their per-token deltas, and tests assert them (e.g. one submit per token).

use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submits: AtomicU64,
    /// Buffers created outside the pool (uploads, staging); the pool counts its own.
    pub(crate) unpooled_buffers: AtomicU64,
    pub(crate) bind_groups: AtomicU64,
    pub(crate) upload_bytes: AtomicU64,
    pub(crate) readback_bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The counters at one moment; subtract two to get what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Command buffers submitted to the queue.
    pub submits: u64,
    /// GPU buffers created (pool misses, uploads, staging buffers).
    pub buffers_created: u64,
    /// Bind groups created (one per dispatch today).
    pub bind_groups: u64,
    /// Bytes written from the host into GPU buffers.
    pub upload_bytes: u64,
    /// Bytes copied from the GPU to the host.
    pub readback_bytes: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self, pool_allocations: u64) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            submits: get(&self.submits),
            buffers_created: get(&self.unpooled_buffers) + pool_allocations,
            bind_groups: get(&self.bind_groups),
            upload_bytes: get(&self.upload_bytes),
            readback_bytes: get(&self.readback_bytes),
        }
    }
}

impl Sub for CounterSnapshot {
    type Output = CounterSnapshot;
    fn sub(self, earlier: CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            submits: self.submits - earlier.submits,
            buffers_created: self.buffers_created - earlier.buffers_created,
            bind_groups: self.bind_groups - earlier.bind_groups,
            upload_bytes: self.upload_bytes - earlier.upload_bytes,
            readback_bytes: self.readback_bytes - earlier.readback_bytes,
        }
    }
}
