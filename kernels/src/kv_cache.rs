//! Launchers for wgsl/kv_cache.wgsl — to be written.
