//! Launchers for wgsl/argmax.wgsl — to be written.
