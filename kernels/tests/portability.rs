//! Every WGSL module must parse, validate without optional capabilities, and translate
//! to MSL (Metal), HLSL (DX12) and SPIR-V (Vulkan) for every entry point and every
//! weight dtype, so a kernel that would break on Metal or DX12 fails here, on a
//! machine that has neither. The SHADER_F16-only modules (`F16_ALL`) are checked with the
//! f16 capability.

use kiln_kernels::shaders::{ALL, F16_ALL};
use naga::back::{hlsl, msl, spv, PipelineConstants};
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// Every GGUF/float weight code `load_w` (weights.wgsl) reads.
const ALL_WEIGHT_CODES: [f64; 11] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];

/// The override sets a module is built with at run time, each as (name, value) pairs.
/// Modules without overrides get one empty set.
fn specialisations(name: &str, module: &naga::Module) -> Vec<Vec<(&'static str, f64)>> {
    let has = |o: &str| module.overrides.iter().any(|(_, x)| x.name.as_deref() == Some(o));
    if name.starts_with("matvec_") {
        return block_matvec_specialisations(name);
    }
    if has("W_DTYPE") {
        return ALL_WEIGHT_CODES.iter().map(|&w| vec![("W_DTYPE", w)]).collect();
    }
    vec![Vec::new()]
}

/// The block matvec (kernels/src/matvec.rs): each weight code of its family, every row
/// count M = 1..=16 with the weight rows per workgroup a GPU (2) and a CPU adapter
/// (min(16, 32 / M)) get, and every fusion (norm × bias × residual × activation) at
/// M = 1 and M = 16.
fn block_matvec_specialisations(name: &str) -> Vec<Vec<(&'static str, f64)>> {
    let family = name.trim_end_matches("_sg");
    let codes: &[f64] = match family {
        "matvec_float" => &[0.0, 1.0, 2.0],
        "matvec_q32" => &[3.0, 4.0, 5.0, 6.0, 7.0],
        "matvec_qk" => &[8.0, 9.0, 10.0],
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
                out.push(vec![("W_DTYPE", w), ("M", m as f64), ("ROWS", rows)]);
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
            }
        }
    }
    out
}

/// Parse, validate with `caps`, and translate every entry point of `source` in every
/// specialisation it is built with; returns one message per failure.
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
        // naga gates behind SHADER_FLOAT16_IN_FLOAT32): no f16 arithmetic, and subgroups
        // only in the `_sg` modules kiln builds just for adapters with SUBGROUP.
        let mut caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        if name.ends_with("_sg") {
            caps |= Capabilities::SUBGROUP;
        }
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
        // A `_sg` module is its family's file built with the subgroup reduction.
        let file = name.strip_suffix("_sg").unwrap_or(name);
        let body = source.split("// weights.wgsl").last().unwrap();
        let first_own_line = body.lines().find(|l| l.contains(&format!("// {file}.wgsl")));
        assert!(first_own_line.is_some(), "{file}.wgsl must start with a `// {file}.wgsl — ...` header comment");
    }
}
