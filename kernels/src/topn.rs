//! Placeholder: launchers for `wgsl/topn.wgsl`.
