//! Every WGSL module must parse, validate without optional capabilities, and translate
//! to MSL (Metal), HLSL (DX12) and SPIR-V (Vulkan) for every entry point and every
//! specialisation it runs in, so a kernel that would break on Metal or DX12 fails here,
//! on a machine that has neither. Modules using subgroup operations (`ALL_SUBGROUP`) are
//! checked with the SUBGROUP capability (and HLSL shader model 6.0, which wave intrinsics
//! need), the SHADER_F16-only modules (`F16_ALL`) with the f16 capability (and 6.2).
//! Specialisations: every weight code (`W_DTYPE`), both KV-cache storages (`KV_F16`), and
//! for the block matvec every row count and fusion it is built with.

use kiln_kernels::shaders::{ALL, ALL_SUBGROUP, F16_ALL};
use naga::back::{hlsl, msl, spv, PipelineConstants};
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// Every GGUF/float weight code `load_w` (weights.wgsl) reads.
const ALL_WEIGHT_CODES: [f64; 11] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];

type Variant = Vec<(&'static str, f64)>;

/// The override sets a module is built with at run time, each as (name, value) pairs.
/// Modules without overrides get one empty set.
fn specialisations(name: &str, module: &naga::Module) -> Vec<Variant> {
    let has = |o: &str| module.overrides.iter().any(|(_, x)| x.name.as_deref() == Some(o));
    if name.starts_with("matvec_") {
        return block_matvec_specialisations(name);
    }
    let mut sets: Vec<Variant> = vec![Vec::new()];
    let axes: [(&'static str, &[f64]); 2] = [("W_DTYPE", &ALL_WEIGHT_CODES), ("KV_F16", &[0.0, 1.0])];
    for (axis, values) in axes {
        if has(axis) {
            sets = sets
                .into_iter()
                .flat_map(|set| {
                    values.iter().map(move |&v| {
                        let mut s = set.clone();
                        s.push((axis, v));
                        s
                    })
                })
                .collect();
        }
    }
    sets
}

/// The block matvec (kernels/src/matvec.rs): each weight code of its family, every row
/// count M = 1..=16 with the weight rows per workgroup and loop order a GPU (2 rows) and
/// a CPU adapter (min(16, 32 / M) rows, 32 x registers) get, and every fusion (norm × bias × residual × activation) at
/// M = 1 and M = 16; Q8_0's GPU variants also with 2, 4 and 8 lanes per block; with
/// subgroups, workgroups of 64 and 128 invocations.
fn block_matvec_specialisations(name: &str) -> Vec<Variant> {
    let family = name.trim_end_matches("_sg");
    let codes: &[f64] = match family {
        "matvec_float" => &[0.0, 1.0, 2.0],
        "matvec_q32" => &[3.0, 4.0, 5.0, 6.0, 7.0],
        "matvec_qk" => &[8.0, 9.0],
        "matvec_q6k" => &[10.0],
        other => panic!("unknown block matvec module {other}"),
    };
    let rows_for = |m: usize| {
        let cpu = (32 / m).clamp(1, 16);
        let mut v = vec![2.0, cpu as f64];
        v.dedup();
        v
    };
    let mut out = Vec::new();
    for &w in codes {
        for m in 1..=16usize {
            for rows in rows_for(m) {
                for x_regs in [16.0, 32.0] {
                    out.push(vec![("W_DTYPE", w), ("M", m as f64), ("ROWS", rows), ("X_REGS", x_regs)]);
                }
            }
        }
        for m in [1usize, 16] {
            for rows in rows_for(m) {
                for norm in [0.0, 1.0, 2.0] {
                    for bias in [0.0, 1.0] {
                        for residual in [0.0, 1.0] {
                            for act in [0.0, 1.0, 2.0] {
                                out.push(vec![
                                    ("W_DTYPE", w),
                                    ("M", m as f64),
                                    ("ROWS", rows),
                                    ("NORM", norm),
                                    ("BIAS", bias),
                                    ("RESIDUAL", residual),
                                    ("ACT", act),
                                ]);
                            }
                        }
                    }
                }
                out.push(vec![("W_DTYPE", w), ("M", m as f64), ("ROWS", rows), ("NORM", 2.0), ("BIAS", 1.0), ("SEGMENTS", 1.0)]);
            }
        }
    }
    // Q8_0 on a GPU shares a block between Q8_LANES invocations (4 by default; 2 and 8
    // through the tuning): every variant with a GPU's 2 rows, with each lane count.
    let q8_gpu: Vec<Variant> =
        out.iter().filter(|v| v.contains(&("W_DTYPE", 3.0)) && v.contains(&("ROWS", 2.0))).cloned().collect();
    for v in q8_gpu {
        for lanes in [2.0, 4.0, 8.0] {
            let mut v = v.clone();
            v.push(("Q8_LANES", lanes));
            out.push(v);
        }
    }
    // With subgroups a workgroup may have 64 or 128 invocations (the tuning's
    // `workgroup`): each code at a few row counts, plain and with the norm and SwiGLU.
    if name.ends_with("_sg") {
        for &w in codes {
            for m in [1.0, 4.0, 16.0] {
                for wg in [64.0, 128.0] {
                    out.push(vec![("W_DTYPE", w), ("M", m), ("ROWS", 2.0), ("WG", wg)]);
                    out.push(vec![("W_DTYPE", w), ("M", m), ("ROWS", 2.0), ("WG", wg), ("NORM", 1.0), ("ACT", 1.0)]);
                }
            }
        }
    }
    out
}

/// Parse, validate with `caps`, and translate every entry point of every module in every
/// specialisation it is built with; returns one message per failure.
fn translate_all(modules: &[(&str, &str)], caps: Capabilities, shader_model: hlsl::ShaderModel) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, source) in modules {
        let module = match naga::front::wgsl::parse_str(source) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: WGSL parse error:\n{}", e.emit_to_string(source)));
                continue;
            }
        };
        let info = match Validator::new(ValidationFlags::all(), caps).validate(&module) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{name}: validation error:\n{}", e.emit_to_string(source)));
                continue;
            }
        };
        let variants = specialisations(name, &module);
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");
        for ep in &module.entry_points {
            for variant in &variants {
                let label = format!("{name}::{} {variant:?}", ep.name);
                let constants: PipelineConstants = variant.iter().map(|&(k, v)| (k.to_string(), v)).collect();
                let (m, i) = match naga::back::pipeline_constants::process_overrides(
                    &module,
                    &info,
                    Some((ep.stage, &ep.name)),
                    &constants,
                ) {
                    Ok(x) => x,
                    Err(e) => {
                        failures.push(format!("{label}: overrides: {e}"));
                        continue;
                    }
                };
                let msl_pipeline =
                    msl::PipelineOptions { entry_point: Some((ep.stage, ep.name.clone())), ..Default::default() };
                if let Err(e) = msl::write_string(&m, &i, &msl::Options::default(), &msl_pipeline) {
                    failures.push(format!("{label}: MSL: {e}"));
                }
                let hlsl_options = hlsl::Options { shader_model, ..Default::default() };
                let hlsl_pipeline = hlsl::PipelineOptions { entry_point: Some((ep.stage, ep.name.clone())) };
                let mut out = String::new();
                if let Err(e) = hlsl::Writer::new(&mut out, &hlsl_options, &hlsl_pipeline).write(&m, &i, None) {
                    failures.push(format!("{label}: HLSL: {e}"));
                }
                let spv_pipeline = spv::PipelineOptions { shader_stage: ep.stage, entry_point: ep.name.clone() };
                if let Err(e) = spv::write_vec(&m, &i, &spv::Options::default(), Some(&spv_pipeline)) {
                    failures.push(format!("{label}: SPIR-V: {e}"));
                }
            }
        }
    }
    failures
}

#[test]
fn every_module_translates_to_msl_hlsl_and_spirv() {
    // Only the capability every WebGPU implementation has (`unpack2x16float`, which
    // naga gates behind SHADER_FLOAT16_IN_FLOAT32): no f16 arithmetic, no subgroups.
    let failures = translate_all(ALL, Capabilities::SHADER_FLOAT16_IN_FLOAT32, hlsl::Options::default().shader_model);
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn subgroup_modules_translate_with_the_subgroup_capability() {
    let caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32 | Capabilities::SUBGROUP;
    let failures = translate_all(ALL_SUBGROUP, caps, hlsl::ShaderModel::V6_0);
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn subgroup_modules_are_refused_without_the_capability() {
    // The reason they are kept out of `ALL`: an adapter without SUBGROUP must never get them.
    for (name, source) in ALL_SUBGROUP {
        let module = naga::front::wgsl::parse_str(source).unwrap();
        let result = Validator::new(ValidationFlags::all(), Capabilities::SHADER_FLOAT16_IN_FLOAT32).validate(&module);
        assert!(result.is_err(), "{name} validated without SUBGROUP: it belongs in ALL");
    }
}

/// The modules built only on SHADER_F16 devices, with the capability that feature gives
/// (f16 types) and HLSL shader model 6.2, the first with 16-bit types (as wgpu's DX12
/// backend compiles them).
#[test]
fn f16_modules_translate_to_msl_hlsl_and_spirv() {
    assert!(!F16_ALL.is_empty());
    for (name, source) in F16_ALL {
        assert!(source.trim_start().starts_with("enable f16;"), "{name} must open with `enable f16;`");
    }
    let caps = Capabilities::SHADER_FLOAT16 | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    let failures = translate_all(F16_ALL, caps, hlsl::ShaderModel::V6_2);
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n\n"));
}

/// The f16 modules need the f16 capability: without it validation must fail, so they
/// cannot slip into `ALL` (built on every device).
#[test]
fn f16_modules_are_rejected_without_the_f16_capability() {
    for (name, source) in F16_ALL {
        let module = naga::front::wgsl::parse_str(source).unwrap();
        let caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        assert!(Validator::new(ValidationFlags::all(), caps).validate(&module).is_err(), "{name}");
    }
}

#[test]
fn every_module_has_a_header_comment() {
    for (name, source) in ALL.iter().chain(ALL_SUBGROUP).chain(F16_ALL) {
        // A block matvec `_sg` module is its family's file built with the subgroup reduction.
        let file = if name.starts_with("matvec_") { name.strip_suffix("_sg").unwrap_or(name) } else { name };
        let body = source.split("// weights.wgsl").last().unwrap();
        let first_own_line = body.lines().find(|l| l.contains(&format!("// {file}.wgsl")));
        assert!(first_own_line.is_some(), "{file}.wgsl must start with a `// {file}.wgsl — ...` header comment");
    }
}
