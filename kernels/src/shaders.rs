//! Every WGSL module, embedded at compile time. Modules that read weights get the
//! shared `weights.wgsl` loader (and the GGUF block decoders it calls) prepended; the
//! ones that compare or rank logits get `order.wgsl` (order keys, sanitising). `ALL` lists them for the portability test
//! (naga → MSL / HLSL / SPIR-V).

macro_rules! wgsl {
    ($name:literal) => {
        include_str!(concat!("../wgsl/", $name, ".wgsl"))
    };
    (order + $name:literal) => {
        concat!(include_str!("../wgsl/order.wgsl"), "\n", include_str!(concat!("../wgsl/", $name, ".wgsl")))
    };
    (weights + $name:literal) => {
        concat!(
            include_str!("../wgsl/weights.wgsl"),
            "\n",
            include_str!("../wgsl/quant_legacy.wgsl"),
            "\n",
            include_str!("../wgsl/quant_k.wgsl"),
            "\n",
            include_str!(concat!("../wgsl/", $name, ".wgsl"))
        )
    };
}

pub const ELEMENTWISE: &str = wgsl!("elementwise");
pub const MATMUL: &str = wgsl!(weights + "matmul");
pub const MATVEC: &str = wgsl!(weights + "matvec");
pub const EMBEDDING: &str = wgsl!(weights + "embedding");
pub const SOFTMAX: &str = wgsl!("softmax");
pub const NORM: &str = wgsl!("norm");
pub const ARGMAX: &str = wgsl!(order + "argmax");
pub const ROPE: &str = wgsl!("rope");
/// attention.wgsl with its workgroup-memory `attend` entry point (any adapter).
pub const ATTENTION: &str =
    concat!(include_str!("../wgsl/attention_shared.wgsl"), "\n", include_str!("../wgsl/attention.wgsl"));
/// attention.wgsl with its subgroup `attend` entry point (adapters with SUBGROUP only).
pub const ATTENTION_SUBGROUP: &str =
    concat!(include_str!("../wgsl/attention_subgroup.wgsl"), "\n", include_str!("../wgsl/attention.wgsl"));
pub const KV_CACHE: &str = wgsl!("kv_cache");
pub const SAMPLE: &str = wgsl!(order + "sample");
pub const TOPN: &str = wgsl!(order + "topn");
pub const LOGPROBS: &str = wgsl!(order + "logprobs");

/// (module name, source) of every kernel module.
pub const ALL: &[(&str, &str)] = &[
    ("elementwise", ELEMENTWISE),
    ("matmul", MATMUL),
    ("matvec", MATVEC),
    ("embedding", EMBEDDING),
    ("softmax", SOFTMAX),
    ("norm", NORM),
    ("argmax", ARGMAX),
    ("rope", ROPE),
    ("attention", ATTENTION),
    ("kv_cache", KV_CACHE),
    ("sample", SAMPLE),
    ("topn", TOPN),
    ("logprobs", LOGPROBS),
];

/// (module name, source) of the modules that use subgroup operations: they validate
/// only with the SUBGROUP capability, so the portability test checks them separately.
pub const ALL_SUBGROUP: &[(&str, &str)] = &[("attention_subgroup", ATTENTION_SUBGROUP)];
