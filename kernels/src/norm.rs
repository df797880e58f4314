//! Launchers for wgsl/norm.wgsl — to be written.
