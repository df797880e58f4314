//! Every WGSL module must parse, validate without optional capabilities, and translate
//! to MSL (Metal), HLSL (DX12) and SPIR-V (Vulkan) for every entry point and every
//! weight dtype, so a kernel that would break on Metal or DX12 fails here, on a
//! machine that has neither. Modules using subgroup operations (`ALL_SUBGROUP`) are
//! checked the same way with the SUBGROUP capability (and HLSL shader model 6.0, which
//! wave intrinsics need). Every specialisation is translated: each weight dtype
//! (`W_DTYPE`) and both KV-cache storages (`KV_F16` true and false).

use kiln_kernels::shaders::{ALL, ALL_SUBGROUP};
use naga::back::{hlsl, msl, spv, PipelineConstants};
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// The override values each specialisation sets: (name, values to try).
const SPECIALISATIONS: &[(&str, &[f64])] = &[("W_DTYPE", &[0.0, 1.0, 2.0]), ("KV_F16", &[0.0, 1.0])];

/// Every combination of the specialisation values of the overrides `module` declares.
fn constant_sets(module: &naga::Module) -> Vec<PipelineConstants> {
    let mut sets = vec![PipelineConstants::default()];
    for (name, values) in SPECIALISATIONS {
        if !module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some(*name)) {
            continue;
        }
        sets = sets
            .into_iter()
            .flat_map(|set| {
                values.iter().map(move |&v| {
                    let mut c = set.clone();
                    c.insert(name.to_string(), v);
                    c
                })
            })
            .collect();
    }
    sets
}

/// Parse, validate with `caps` and translate every entry point of every module under
/// every specialisation; returns the failures.
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
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");
        for ep in &module.entry_points {
            for constants in constant_sets(&module) {
                let mut set: Vec<_> = constants.iter().map(|(k, v)| format!("{k}={v}")).collect();
                set.sort();
                let label = format!("{name}::{} ({})", ep.name, set.join(", "));
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
                let msl_pipeline = msl::PipelineOptions { entry_point: Some((ep.stage, ep.name.clone())), ..Default::default() };
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

#[test]
fn every_module_has_a_header_comment() {
    for (name, source) in ALL.iter().chain(ALL_SUBGROUP) {
        let body = source.split("// weights.wgsl").last().unwrap();
        let first_own_line = body.lines().find(|l| l.contains(&format!("{name}.wgsl")));
        assert!(first_own_line.is_some(), "{name}.wgsl must start with a `// {name}.wgsl — ...` header comment");
    }
}
