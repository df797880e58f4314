//! CPU twin for wgsl/matvec.wgsl — to be written.
