//! Launchers for wgsl/matmul.wgsl — to be written.
