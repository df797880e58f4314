//! Launchers for wgsl/embedding.wgsl — to be written.
