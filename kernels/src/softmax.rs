//! Launchers for wgsl/softmax.wgsl — to be written.
