//! The device's bind groups, reused across steps: a decode step records the same
//! dispatches over the same buffers every token (weights, the KV cache, and pooled
//! temporaries that the pool hands out in the same order each step), so after the first
//! step every bind group is found here instead of created.
//!
//! A bind group is identified by its pipeline and, for each binding, (buffer, byte offset,
//! byte size). A lookup hashes the borrowed bindings and allocates nothing; only a miss
//! stores an owned key.
//!
//! A cached bind group keeps its buffers alive, so entries not used for [`MAX_IDLE_SUBMITS`]
//! submits are dropped (a dropped model's weights are freed a few steps later), and
//! [`BindGroupCache::clear`] drops everything (the pool calls it when it trims).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Submits an entry may go unused before it is dropped.
pub(crate) const MAX_IDLE_SUBMITS: u64 = 8;

/// One binding: (buffer, offset, size) in bytes. Lookups take `Option`s so a dispatch can
/// keep its bindings in a fixed array on the stack; every one passed is `Some`.
pub(crate) type Binding<'a> = (&'a wgpu::Buffer, u64, u64);
type Bindings<'a, 'b> = &'b [Option<Binding<'a>>];

struct Entry {
    pipeline: wgpu::ComputePipeline,
    bindings: Vec<(wgpu::Buffer, u64, u64)>,
    bind_group: wgpu::BindGroup,
    last_used: u64,
}

impl Entry {
    fn matches(&self, pipeline: &wgpu::ComputePipeline, bindings: Bindings<'_, '_>) -> bool {
        self.pipeline == *pipeline
            && self.bindings.len() == bindings.len()
            && self.bindings.iter().zip(bindings).all(|((b, o, s), other)| other.is_some_and(|(b2, o2, s2)| b == b2 && *o == o2 && *s == s2))
    }
}

#[derive(Default)]
pub(crate) struct BindGroupCache {
    by_hash: HashMap<u64, Vec<Entry>>,
    /// Submits seen so far (the clock for `last_used`).
    submits: u64,
    len: usize,
}

pub(crate) fn key_hash(pipeline: &wgpu::ComputePipeline, bindings: Bindings<'_, '_>) -> u64 {
    let mut h = DefaultHasher::new();
    pipeline.hash(&mut h);
    for (b, o, s) in bindings.iter().flatten() {
        b.hash(&mut h);
        o.hash(&mut h);
        s.hash(&mut h);
    }
    h.finish()
}

impl BindGroupCache {
    /// The cached bind group for these bindings, marked as used now.
    pub(crate) fn get(
        &mut self,
        hash: u64,
        pipeline: &wgpu::ComputePipeline,
        bindings: Bindings<'_, '_>,
    ) -> Option<wgpu::BindGroup> {
        let now = self.submits;
        let entry = self.by_hash.get_mut(&hash)?.iter_mut().find(|e| e.matches(pipeline, bindings))?;
        entry.last_used = now;
        Some(entry.bind_group.clone())
    }

    pub(crate) fn insert(
        &mut self,
        hash: u64,
        pipeline: &wgpu::ComputePipeline,
        bindings: Bindings<'_, '_>,
        bind_group: wgpu::BindGroup,
    ) {
        let entry = Entry {
            pipeline: pipeline.clone(),
            bindings: bindings.iter().flatten().map(|(b, o, s)| ((*b).clone(), *o, *s)).collect(),
            bind_group,
            last_used: self.submits,
        };
        self.by_hash.entry(hash).or_default().push(entry);
        self.len += 1;
    }

    /// Count a submit, and drop the entries idle for more than [`MAX_IDLE_SUBMITS`].
    pub(crate) fn on_submit(&mut self) {
        self.submits += 1;
        let oldest = self.submits.saturating_sub(MAX_IDLE_SUBMITS);
        if self.submits.is_multiple_of(MAX_IDLE_SUBMITS) {
            self.by_hash.retain(|_, v| {
                v.retain(|e| e.last_used >= oldest);
                !v.is_empty()
            });
            self.len = self.by_hash.values().map(Vec::len).sum();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.by_hash.clear();
        self.len = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}
