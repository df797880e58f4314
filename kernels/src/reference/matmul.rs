//! CPU twin for wgsl/matmul.wgsl — to be written.
