//! CPU twin for wgsl/softmax.wgsl — to be written.
