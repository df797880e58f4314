//! Every WGSL module, embedded at compile time. Modules that read weights get the
//! shared `weights.wgsl` loader (and the GGUF block decoders it calls) prepended; the
//! ones that compare or rank logits get `order.wgsl` (order keys, sanitising). `ALL` lists them for the portability test
//! (naga → MSL / HLSL / SPIR-V); `F16_ALL` the modules that need SHADER_F16.

macro_rules! wgsl {
    ($name:literal) => {
        include_str!(concat!("../wgsl/", $name, ".wgsl"))
    };
    (order + $name:literal) => {
        concat!(include_str!("../wgsl/order.wgsl"), "\n", include_str!(concat!("../wgsl/", $name, ".wgsl")))
    };
    (matvec $reduce:literal + $family:literal) => {
        concat!(
            include_str!("../wgsl/matvec_core.wgsl"),
            "\n",
            include_str!(concat!("../wgsl/matvec_reduce_", $reduce, ".wgsl")),
            "\n",
            include_str!(concat!("../wgsl/matvec_", $family, ".wgsl"))
        )
    };
    // A tiled-weight kernel: `$directives` (e.g. `enable f16;`, which must open the
    // module), the weight loaders and run decoders, the tile variant, then the kernel.
    ($directives:literal + weights + runs + $variant:literal + $name:literal) => {
        concat!(
            $directives,
            include_str!("../wgsl/weights.wgsl"),
            "\n",
            include_str!("../wgsl/quant_legacy.wgsl"),
            "\n",
            include_str!("../wgsl/quant_k.wgsl"),
            "\n",
            include_str!("../wgsl/weight_runs.wgsl"),
            "\n",
            include_str!(concat!("../wgsl/", $variant, ".wgsl")),
            "\n",
            include_str!(concat!("../wgsl/", $name, ".wgsl"))
        )
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

/// elementwise.wgsl: add, mul, silu, gelu_tanh, swiglu.
pub const ELEMENTWISE: &str = wgsl!("elementwise");
/// matmul.wgsl with f32 weight tiles (matmul_f32.wgsl): every device.
pub const MATMUL: &str = wgsl!("" + weights + runs + "matmul_f32" + "matmul");
/// matmul.wgsl with f16 weight tiles (matmul_f16.wgsl): only for devices with SHADER_F16.
pub const MATMUL_F16: &str = wgsl!("enable f16;\n" + weights + runs + "matmul_f16" + "matmul");
/// The plain matvec for shapes the block matvec does not take (K % 4 != 0, unaligned x).
pub const MATVEC: &str = wgsl!(weights + "matvec");
/// The block matvec (matvec_core.wgsl): one module per weight family × reduction.
pub const MATVEC_FLOAT: &str = wgsl!(matvec "shared" + "float");
/// The block matvec for f32/f16/bf16 weights with the subgroup reduction (SUBGROUP only).
pub const MATVEC_FLOAT_SG: &str = wgsl!(matvec "subgroup" + "float");
/// The block matvec for Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 weights with the workgroup-memory reduction.
pub const MATVEC_Q32: &str = wgsl!(matvec "shared" + "q32");
/// The block matvec for Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 weights with the subgroup reduction.
pub const MATVEC_Q32_SG: &str = wgsl!(matvec "subgroup" + "q32");
/// The block matvec for Q4_K/Q5_K weights with the workgroup-memory reduction.
pub const MATVEC_QK: &str = wgsl!(matvec "shared" + "qk");
/// The block matvec for Q4_K/Q5_K weights with the subgroup reduction.
pub const MATVEC_QK_SG: &str = wgsl!(matvec "subgroup" + "qk");
/// The block matvec for Q6_K weights with the workgroup-memory reduction.
pub const MATVEC_Q6K: &str = wgsl!(matvec "shared" + "q6k");
/// The block matvec for Q6_K weights with the subgroup reduction.
pub const MATVEC_Q6K_SG: &str = wgsl!(matvec "subgroup" + "q6k");
/// embedding.wgsl (with the weight loaders): token-embedding row lookup.
pub const EMBEDDING: &str = wgsl!(weights + "embedding");
/// position_embedding.wgsl (with the weight loaders): adds learned position embeddings in place.
pub const POSITION_EMBEDDING: &str = wgsl!(weights + "position_embedding");
/// softmax.wgsl: row softmax and log-softmax.
pub const SOFTMAX: &str = wgsl!("softmax");
/// norm.wgsl: RMSNorm and LayerNorm over the last dimension.
pub const NORM: &str = wgsl!("norm");
/// argmax.wgsl (with order.wgsl): index of the largest entry of each row.
pub const ARGMAX: &str = wgsl!(order + "argmax");
/// rope.wgsl: rotary position embedding from a precomputed (cos, sin) table.
pub const ROPE: &str = wgsl!("rope");
/// attention.wgsl with its workgroup-memory `attend` entry point (any adapter).
pub const ATTENTION: &str =
    concat!(include_str!("../wgsl/attention_shared.wgsl"), "\n", include_str!("../wgsl/attention.wgsl"));
/// attention.wgsl with its subgroup `attend` entry point (adapters with SUBGROUP only).
pub const ATTENTION_SUBGROUP: &str =
    concat!(include_str!("../wgsl/attention_subgroup.wgsl"), "\n", include_str!("../wgsl/attention.wgsl"));
/// kv_cache.wgsl: writes k/v rows into the KV cache (`rope_kv_append` also applies RoPE
/// to q and k).
pub const KV_CACHE: &str = wgsl!("kv_cache");
/// sample.wgsl (with order.wgsl): the entry points of one GPU sampling step.
pub const SAMPLE: &str = wgsl!(order + "sample");
/// topn.wgsl (with order.wgsl): the N largest logits of each row and their log-probs.
pub const TOPN: &str = wgsl!(order + "topn");
/// logprobs.wgsl (with order.wgsl): log-prob, entropy, rank and argmax of target ids.
pub const LOGPROBS: &str = wgsl!(order + "logprobs");
/// logit_edit.wgsl (with order.wgsl): set or raise chosen logits, absolute or relative
/// to the row max, in place (hooks at `logits`).
pub const LOGIT_EDIT: &str = wgsl!(order + "logit_edit");

/// (module name, source) of every kernel module.
pub const ALL: &[(&str, &str)] = &[
    ("elementwise", ELEMENTWISE),
    ("matmul", MATMUL),
    ("matvec", MATVEC),
    ("matvec_float", MATVEC_FLOAT),
    ("matvec_q32", MATVEC_Q32),
    ("matvec_qk", MATVEC_QK),
    ("matvec_q6k", MATVEC_Q6K),
    ("embedding", EMBEDDING),
    ("position_embedding", POSITION_EMBEDDING),
    ("softmax", SOFTMAX),
    ("norm", NORM),
    ("argmax", ARGMAX),
    ("rope", ROPE),
    ("attention", ATTENTION),
    ("kv_cache", KV_CACHE),
    ("sample", SAMPLE),
    ("topn", TOPN),
    ("logprobs", LOGPROBS),
    ("logit_edit", LOGIT_EDIT),
];

/// (module name, source) of the modules that use subgroup operations: they validate
/// only with the SUBGROUP capability, so the portability test checks them separately,
/// and kiln builds them only for adapters with SUBGROUP ([`kiln_tensor::Device::subgroups`]).
pub const ALL_SUBGROUP: &[(&str, &str)] = &[
    ("attention_subgroup", ATTENTION_SUBGROUP),
    ("matvec_float_sg", MATVEC_FLOAT_SG),
    ("matvec_q32_sg", MATVEC_Q32_SG),
    ("matvec_qk_sg", MATVEC_QK_SG),
    ("matvec_q6k_sg", MATVEC_Q6K_SG),
];

/// (module name, source) of the modules that need SHADER_F16 (f16 types in WGSL).
pub const F16_ALL: &[(&str, &str)] = &[("matmul_f16", MATMUL_F16)];
