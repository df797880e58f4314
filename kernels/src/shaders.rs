//! Every WGSL module, embedded at compile time. Modules that read weights get the
//! shared `weights.wgsl` loader prepended. `ALL` lists them for the portability test
//! (naga → MSL / HLSL / SPIR-V) and nothing else.

macro_rules! wgsl {
    ($name:literal) => {
        include_str!(concat!("../wgsl/", $name, ".wgsl"))
    };
    (weights + $name:literal) => {
        concat!(include_str!("../wgsl/weights.wgsl"), "\n", include_str!(concat!("../wgsl/", $name, ".wgsl")))
    };
}

pub const ELEMENTWISE: &str = wgsl!("elementwise");

/// (module name, source) of every kernel module.
pub const ALL: &[(&str, &str)] = &[("elementwise", ELEMENTWISE)];
