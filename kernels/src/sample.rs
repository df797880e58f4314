//! Placeholder: launchers for `wgsl/sample.wgsl`.
