//! The KV cache: for every layer a K and a V tensor `[capacity, n_kv_heads, head_dim]`,
//! allocated once for the whole context. `len` positions are filled.

use kiln_tensor::{DType, Device, Tensor};

use crate::{ModelError, Result};

pub struct KvCache {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub capacity: usize,
    pub len: usize,
}

impl KvCache {
    pub fn new(device: &Device, n_layers: usize, capacity: usize, n_kv_heads: usize, head_dim: usize) -> Result<KvCache> {
        let alloc = || Tensor::zeros(device, &[capacity, n_kv_heads, head_dim], DType::F32);
        let mut k = Vec::with_capacity(n_layers);
        let mut v = Vec::with_capacity(n_layers);
        for _ in 0..n_layers {
            k.push(alloc()?);
            v.push(alloc()?);
        }
        Ok(KvCache { k, v, capacity, len: 0 })
    }

    /// Bytes the cache holds on the GPU.
    pub fn bytes(&self) -> u64 {
        self.k.iter().chain(&self.v).map(|t| t.byte_len()).sum()
    }

    /// Refuse `n` more positions when they do not fit.
    pub fn check_room(&self, n: usize) -> Result<()> {
        if self.len + n > self.capacity {
            return Err(ModelError::Context {
                detail: format!(
                    "{} cached + {n} new positions exceed the KV cache of {} positions",
                    self.len, self.capacity
                ),
            });
        }
        Ok(())
    }
}
