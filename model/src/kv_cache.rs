//! The KV cache: for every layer one K and one V tensor `[slots, capacity, n_kv_heads,
//! head_dim]`, allocated once. Each slot holds one sequence (a single sequence is slot 0
//! of a 1-slot cache; the serving engine gives each of its slots one), with its own
//! length. Storage is f16 by default (half the bytes a decode step reads; every adapter
//! reads it) or f32 ([`KvDtype`]).

use kiln_kernels::kv_cache::Rows;
use kiln_tensor::{DType, Device, Recorder, Tensor};

use crate::{ModelError, Result};

/// How the cache stores K and V.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvDtype {
    /// Two values per 32-bit word, rounded to the nearest f16.
    #[default]
    F16,
    /// Exactly the f32 the projections produced.
    F32,
}

impl KvDtype {
    /// The tensor dtype of this storage.
    pub fn dtype(self) -> DType {
        match self {
            KvDtype::F16 => DType::F16,
            KvDtype::F32 => DType::F32,
        }
    }
}

impl std::fmt::Display for KvDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KvDtype::F16 => "f16",
            KvDtype::F32 => "f32",
        })
    }
}

/// K and V tensors of every layer for a fixed number of slots, each with its own length.
pub struct KvCache {
    /// Per layer, `[slots, capacity, n_kv_heads, head_dim]`.
    pub k: Vec<Tensor>,
    /// Per layer, `[slots, capacity, n_kv_heads, head_dim]`.
    pub v: Vec<Tensor>,
    capacity: usize,
    dtype: KvDtype,
    /// Filled positions of each slot.
    lens: Vec<usize>,
    /// u32 `[slots, 2]`: the (slot, position) of each row of a batched step, written by
    /// [`KvCache::write_batch_rows`] (allocated once).
    rows_table: Tensor,
    /// The host copy of the last rows written into `rows_table`.
    rows_host: Vec<[u32; 2]>,
}

impl KvCache {
    /// A cache of `slots` sequences of `capacity` positions each, for `n_layers` layers.
    pub fn new(
        device: &Device,
        n_layers: usize,
        slots: usize,
        capacity: usize,
        n_kv_heads: usize,
        head_dim: usize,
        dtype: KvDtype,
    ) -> Result<KvCache> {
        for (name, v) in [("slots", slots), ("capacity", capacity)] {
            if v == 0 {
                return Err(ModelError::Param { name: name.into(), detail: "a KV cache needs at least 1".into() });
            }
        }
        if dtype == KvDtype::F16 && !head_dim.is_multiple_of(2) {
            return Err(ModelError::Param {
                name: "kv-cache".into(),
                detail: format!("an f16 KV cache packs two values per 32-bit word: head_dim {head_dim} is odd (use f32)"),
            });
        }
        if slots > u32::MAX as usize || capacity > u32::MAX as usize {
            return Err(ModelError::Param {
                name: "slots".into(),
                detail: format!("{slots} slots of {capacity} positions overflow"),
            });
        }
        let shape = [slots, capacity, n_kv_heads, head_dim];
        let alloc = || Tensor::zeros(device, &shape, dtype.dtype());
        let mut k = Vec::with_capacity(n_layers);
        let mut v = Vec::with_capacity(n_layers);
        for _ in 0..n_layers {
            k.push(alloc()?);
            v.push(alloc()?);
        }
        let rows_table = Tensor::zeros(device, &[slots, 2], DType::U32)?;
        Ok(KvCache { k, v, capacity, dtype, lens: vec![0; slots], rows_table, rows_host: Vec::new() })
    }

    /// Number of slots (sequences) the cache holds.
    pub fn slots(&self) -> usize {
        self.lens.len()
    }

    /// Positions each slot holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How K and V are stored.
    pub fn dtype(&self) -> KvDtype {
        self.dtype
    }

    /// Filled positions of `slot`. Panics when `slot >= slots()` (like indexing).
    pub fn len(&self, slot: usize) -> usize {
        self.lens[slot]
    }

    /// True when `slot` holds no positions. Panics when `slot >= slots()`.
    pub fn is_empty(&self, slot: usize) -> bool {
        self.lens[slot] == 0
    }

    /// Forget `slot`'s sequence (its positions are overwritten by the next one).
    pub fn reset_slot(&mut self, slot: usize) -> Result<()> {
        self.check_slot(slot)?;
        self.lens[slot] = 0;
        Ok(())
    }

    /// Bytes the cache holds on the GPU.
    pub fn bytes(&self) -> u64 {
        self.k.iter().chain(&self.v).map(|t| t.byte_len()).sum()
    }

    fn check_slot(&self, slot: usize) -> Result<()> {
        if slot >= self.slots() {
            return Err(ModelError::Param {
                name: "slot".into(),
                detail: format!("slot {slot} of a cache with {} slots", self.slots()),
            });
        }
        Ok(())
    }

    /// Refuse `n` more positions in `slot` when they do not fit.
    pub fn check_room(&self, slot: usize, n: usize) -> Result<()> {
        self.check_slot(slot)?;
        if self.lens[slot] + n > self.capacity {
            return Err(ModelError::Context {
                detail: format!(
                    "{} cached + {n} new positions exceed the KV cache of {} positions",
                    self.lens[slot], self.capacity
                ),
            });
        }
        Ok(())
    }

    /// Record a copy of `src`'s slot `from` (its filled positions, every layer) into this
    /// cache's slot `to`, which then has the same length. The caches must have the same
    /// layers, capacity, heads, head_dim and dtype (any slot counts) and be different caches
    /// (a GPU copy cannot read and write one buffer).
    pub fn copy_slot_from(&mut self, rec: &mut Recorder, src: &KvCache, from: usize, to: usize) -> Result<()> {
        src.check_slot(from)?;
        self.check_slot(to)?;
        let per_slot_shape = |c: &KvCache| c.k.first().map(|t| t.shape()[1..].to_vec());
        if src.k.len() != self.k.len() || per_slot_shape(src) != per_slot_shape(self) || src.dtype != self.dtype {
            return Err(ModelError::Param {
                name: "src".into(),
                detail: "copy_slot_from needs caches of the same layers, slot shape and dtype".into(),
            });
        }
        let len = src.lens[from];
        if let Some(t) = self.k.first() {
            let per_position = t.numel() / (self.slots() * self.capacity);
            let per_slot = per_position * self.capacity;
            if len > 0 {
                for (s, d) in src.k.iter().zip(&self.k).chain(src.v.iter().zip(&self.v)) {
                    rec.copy_region(s, from * per_slot, d, to * per_slot, len * per_position)?;
                }
            }
        }
        self.lens[to] = len;
        Ok(())
    }

    /// The rows of `n` new positions of `slot` (prefill or one decode step), after checking
    /// they fit.
    pub fn run_rows(&self, slot: usize, n: usize) -> Result<Rows<'static>> {
        self.check_room(slot, n)?;
        Ok(Rows::Run { slot, start: self.lens[slot] })
    }

    /// Write the rows of a batched decode step — one new position for each of `slots`
    /// (distinct) — into the cache's rows table (8 bytes per row uploaded; nothing
    /// allocated); [`KvCache::batch_rows`] then hands them to the kernels. One batched
    /// step per submission: the table holds one step's rows.
    pub fn write_batch_rows(&mut self, slots: &[usize]) -> Result<()> {
        if slots.is_empty() {
            return Err(ModelError::Param {
                name: "slots".into(),
                detail: "a batched step needs at least one sequence".into(),
            });
        }
        let mut seen = vec![false; self.slots()];
        for &s in slots {
            self.check_room(s, 1)?;
            if std::mem::replace(&mut seen[s], true) {
                return Err(ModelError::Param {
                    name: "slots".into(),
                    detail: format!("slot {s} appears twice in one batched step"),
                });
            }
        }
        self.rows_host = slots.iter().map(|&s| [s as u32, self.lens[s] as u32]).collect();
        let table = self.rows_table.narrow_rows(0, slots.len())?;
        table.write(&self.rows_host.iter().flatten().copied().collect::<Vec<u32>>())?;
        Ok(())
    }

    /// The rows [`KvCache::write_batch_rows`] wrote last.
    pub fn batch_rows(&self) -> Rows<'_> {
        Rows::Table { table: &self.rows_table, host: &self.rows_host }
    }

    /// Mark `n` positions of `slot` as filled (after the forward pass that wrote them).
    pub fn advance(&mut self, slot: usize, n: usize) -> Result<()> {
        self.check_room(slot, n)?;
        self.lens[slot] += n;
        Ok(())
    }
}
