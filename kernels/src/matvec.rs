//! Launchers for wgsl/matvec.wgsl — to be written.
