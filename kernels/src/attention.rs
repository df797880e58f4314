//! Launchers for wgsl/attention.wgsl — to be written.
