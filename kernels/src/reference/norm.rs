//! CPU twin for wgsl/norm.wgsl — to be written.
