//! Launchers for wgsl/rope.wgsl — to be written.
