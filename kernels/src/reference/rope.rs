//! CPU twin for wgsl/rope.wgsl — to be written.
