//! CPU twin for wgsl/attention.wgsl — to be written.
