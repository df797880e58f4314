//! The device's compiled pipelines, looked up by (module, entry point, override values)
//! without allocating: a dispatch hashes its borrowed key, and only a pipeline's first
//! use stores an owned copy (and compiles it).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// An owned key, kept beside each cached pipeline to tell hash collisions apart.
struct OwnedKey {
    module: &'static str,
    entry: String,
    overrides: Vec<(String, u64)>,
}

impl OwnedKey {
    fn matches(&self, module: &str, entry: &str, overrides: &[(&str, f64)]) -> bool {
        self.module == module
            && self.entry == entry
            && self.overrides.len() == overrides.len()
            && self.overrides.iter().zip(overrides).all(|((k, v), (k2, v2))| k == k2 && *v == v2.to_bits())
    }
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    by_hash: HashMap<u64, Vec<(OwnedKey, Arc<wgpu::ComputePipeline>)>>,
}

/// The hash of a borrowed key (override values by their bits).
pub(crate) fn key_hash(module: &str, entry: &str, overrides: &[(&str, f64)]) -> u64 {
    let mut h = DefaultHasher::new();
    module.hash(&mut h);
    entry.hash(&mut h);
    for (k, v) in overrides {
        k.hash(&mut h);
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

impl PipelineCache {
    pub(crate) fn get(
        &self,
        hash: u64,
        module: &str,
        entry: &str,
        overrides: &[(&str, f64)],
    ) -> Option<Arc<wgpu::ComputePipeline>> {
        self.by_hash.get(&hash)?.iter().find(|(k, _)| k.matches(module, entry, overrides)).map(|(_, p)| p.clone())
    }

    pub(crate) fn insert(
        &mut self,
        hash: u64,
        module: &'static str,
        entry: &str,
        overrides: &[(&str, f64)],
        pipeline: Arc<wgpu::ComputePipeline>,
    ) {
        let key = OwnedKey {
            module,
            entry: entry.to_string(),
            overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_bits())).collect(),
        };
        self.by_hash.entry(hash).or_default().push((key, pipeline));
    }
}

/// A readable name for a pipeline (labels and error messages; built only on a cache miss).
pub(crate) fn describe(module: &str, entry: &str, overrides: &[(&str, f64)]) -> String {
    let mut key = format!("{module}::{entry}");
    for (k, v) in overrides {
        key.push_str(&format!(":{k}={v}"));
    }
    key
}
