//! Placeholder: CPU twin of `wgsl/topn.wgsl`.
