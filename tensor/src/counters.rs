//! Counters of the work that crosses between the CPU and the GPU: submits, buffers
//! created, bind groups, bytes uploaded and read back, dispatches, and the CPU time spent
//! recording. `kiln bench model --profile`
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
    pub(crate) dispatches: AtomicU64,
    /// Nanoseconds from each `Recorder::new` to its submit: the CPU cost of recording.
    pub(crate) record_ns: AtomicU64,
    pub(crate) layers: AtomicU64,
    pub(crate) layer_dispatches: AtomicU64,
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
    /// Bind groups created (dispatches whose bind group was not in the device's cache).
    pub bind_groups: u64,
    /// Bytes written from the host into GPU buffers.
    pub upload_bytes: u64,
    /// Bytes copied from the GPU to the host.
    pub readback_bytes: u64,
    /// Kernel dispatches recorded.
    pub dispatches: u64,
    /// CPU nanoseconds spent recording (from each `Recorder::new` to its submit).
    pub record_ns: u64,
    /// Transformer layers recorded, as models report them (`Recorder::count_layers`).
    pub layers: u64,
    /// Dispatches recorded inside those layers.
    pub layer_dispatches: u64,
}

impl CounterSnapshot {
    /// Dispatches per transformer layer (0 when no layer was counted).
    pub fn dispatches_per_layer(&self) -> f64 {
        if self.layers == 0 {
            0.0
        } else {
            self.layer_dispatches as f64 / self.layers as f64
        }
    }
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
            dispatches: get(&self.dispatches),
            record_ns: get(&self.record_ns),
            layers: get(&self.layers),
            layer_dispatches: get(&self.layer_dispatches),
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
            dispatches: self.dispatches - earlier.dispatches,
            record_ns: self.record_ns - earlier.record_ns,
            layers: self.layers - earlier.layers,
            layer_dispatches: self.layer_dispatches - earlier.layer_dispatches,
        }
    }
}
