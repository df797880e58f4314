//! Every WGSL module must parse, validate without optional capabilities, and translate
//! to MSL (Metal), HLSL (DX12) and SPIR-V (Vulkan) for every entry point and every
//! weight dtype, so a kernel that would break on Metal or DX12 fails here, on a
//! machine that has neither. The SHADER_F16-only modules (`F16_ALL`) are checked with the
//! f16 capability.

use kiln_kernels::shaders::{ALL, F16_ALL};
use naga::back::{hlsl, msl, spv, PipelineConstants};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn constants_for(module: &naga::Module, w_dtype: f64) -> PipelineConstants {
    let mut c = PipelineConstants::default();
    for (_, o) in module.overrides.iter() {
        if o.name.as_deref() == Some("W_DTYPE") {
            c.insert("W_DTYPE".to_string(), w_dtype);
        }
    }
    c
}

/// Modules whose weight staging (weight_runs.wgsl) has a code path per block type: every
/// W_DTYPE code is translated, not only the dense ones.
const ALL_WEIGHT_CODES: &[&str] = &["matmul", "matmul_f16"];

/// Parse, validate with `caps`, and translate every entry point of `source` for every
/// W_DTYPE code it is built with; returns one message per failure.
fn translate_module(name: &str, source: &str, caps: Capabilities, hlsl_model: hlsl::ShaderModel) -> Vec<String> {
    let mut failures = Vec::new();
    let module = match naga::front::wgsl::parse_str(source) {
        Ok(m) => m,
        Err(e) => return vec![format!("{name}: WGSL parse error:\n{}", e.emit_to_string(source))],
    };
    let info = match Validator::new(ValidationFlags::all(), caps).validate(&module) {
        Ok(i) => i,
        Err(e) => return vec![format!("{name}: validation error:\n{}", e.emit_to_string(source))],
    };
    let has_weights = module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some("W_DTYPE"));
    let dtypes: Vec<f64> = if !has_weights {
        vec![0.0]
    } else if ALL_WEIGHT_CODES.contains(&name) {
        (0..=10).map(f64::from).collect()
    } else {
        vec![0.0, 1.0, 2.0]
    };
    assert!(!module.entry_points.is_empty(), "{name} has no entry point");
    for ep in &module.entry_points {
        for &w in &dtypes {
            let label = format!("{name}::{} (W_DTYPE={w})", ep.name);
            let constants = constants_for(&module, w);
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
            let hlsl_options = hlsl::Options { shader_model: hlsl_model, ..Default::default() };
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
    failures
}

#[test]
fn every_module_translates_to_msl_hlsl_and_spirv() {
    let mut failures = Vec::new();
    for (name, source) in ALL {
        // Only the capability every WebGPU implementation has (`unpack2x16float`, which
        // naga gates behind SHADER_FLOAT16_IN_FLOAT32): no f16 arithmetic, no subgroups.
        let caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        failures.extend(translate_module(name, source, caps, hlsl::Options::default().shader_model));
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n\n"));
}

/// The modules built only on SHADER_F16 devices, with the capability that feature gives
/// (f16 types) and HLSL shader model 6.2, the first with 16-bit types (as wgpu's DX12
/// backend compiles them).
#[test]
fn f16_modules_translate_to_msl_hlsl_and_spirv() {
    let mut failures = Vec::new();
    assert!(!F16_ALL.is_empty());
    for (name, source) in F16_ALL {
        assert!(source.trim_start().starts_with("enable f16;"), "{name} must open with `enable f16;`");
        let caps = Capabilities::SHADER_FLOAT16 | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        failures.extend(translate_module(name, source, caps, hlsl::ShaderModel::V6_2));
    }
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
    for (name, source) in ALL.iter().chain(F16_ALL) {
        let body = source.split("// weights.wgsl").last().unwrap();
        let first_own_line = body.lines().find(|l| l.contains(&format!("{name}.wgsl")));
        assert!(first_own_line.is_some(), "{name}.wgsl must start with a `// {name}.wgsl — ...` header comment");
    }
}
