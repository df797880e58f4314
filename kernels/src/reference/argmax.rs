//! CPU twin for wgsl/argmax.wgsl — to be written.
