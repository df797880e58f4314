//! CPU twin for wgsl/kv_cache.wgsl — to be written.
