//! CPU twin for wgsl/embedding.wgsl — to be written.
