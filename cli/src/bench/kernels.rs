//! `kiln bench kernels`: a device line (copy bandwidth, best matmul GFLOP/s), then every
//! kernel case with its median time, throughput, share of those two peaks, and whether
//! its output matched the CPU twin.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::cases::{self, Case, Spec};
use super::measure::{copy_bandwidth, time_case, Clock};
use crate::DeviceArgs;

#[derive(Serialize)]
struct Row {
    kernel: &'static str,
    model: &'static str,
    shape: String,
    /// Weight dtype (f32 for kernels without weights).
    dtype: &'static str,
    /// Activation rows (tokens; queries for attention).
    m: usize,
    median_us: f64,
    gflops: f64,
    gbps: f64,
    /// Achieved GB/s as a percentage of the measured copy bandwidth.
    pct_copy_bandwidth: f64,
    /// Achieved GFLOP/s as a percentage of the best matmul.
    pct_best_matmul: f64,
    correct: bool,
    clock: &'static str,
    iterations: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What a row says about its case (kept when the spec is consumed by building it).
struct SpecLabel {
    kernel: &'static str,
    model: &'static str,
    shape: String,
    dtype: kiln_kernels::DType,
    m: usize,
}

impl SpecLabel {
    fn of(s: &Spec) -> SpecLabel {
        SpecLabel { kernel: s.kernel, model: s.model, shape: s.shape.clone(), dtype: s.dtype, m: s.m }
    }
}

fn measure(dev: &kiln_tensor::Device, case: &Case, budget: Duration) -> Result<(super::measure::Timing, Result<()>)> {
    let timing = time_case(dev, budget, &*case.record)?;
    Ok((timing, (case.check)()))
}

fn row(spec: &SpecLabel, t: &super::measure::Timing, check: &Result<()>, copy_gbps: f64, peak_gflops: f64) -> Row {
    let secs = t.median_us / 1e6;
    let gflops = t.flops as f64 / secs / 1e9;
    let gbps = t.bytes as f64 / secs / 1e9;
    Row {
        kernel: spec.kernel,
        model: spec.model,
        shape: spec.shape.clone(),
        dtype: spec.dtype.name(),
        m: spec.m,
        median_us: t.median_us,
        gflops,
        gbps,
        pct_copy_bandwidth: 100.0 * gbps / copy_gbps,
        pct_best_matmul: if peak_gflops > 0.0 { 100.0 * gflops / peak_gflops } else { 0.0 },
        correct: check.is_ok(),
        clock: t.clock.name(),
        iterations: t.iterations,
        error: check.as_ref().err().map(|e| e.to_string()),
    }
}

pub fn run(args: &DeviceArgs, json: bool, filter: Option<&str>, budget_ms: u64) -> Result<()> {
    let dev = args.open()?;
    let budget = Duration::from_millis(budget_ms);
    let info = dev.info().clone();

    let copy_gbps = copy_bandwidth(&dev)?;
    let peak_size = if info.device_type == wgpu::DeviceType::Cpu { 512 } else { 2048 };
    let peak_spec = cases::peak_matmul(peak_size);
    let peak_label = SpecLabel::of(&peak_spec);
    let peak = peak_spec.build(&dev)?;
    let (pt, pcheck) = measure(&dev, &peak, budget)?;
    let peak_gflops = pt.flops as f64 / (pt.median_us / 1e6) / 1e9;
    let clock = if pt.clock == Clock::GpuTimestamps { "GPU timestamps" } else { "wall time (no timestamp queries)" };
    let device_line = format!(
        "device: {} ({:?}, {:?}, driver {} {}) | copy bandwidth {:.1} GB/s | best matmul {:.1} GFLOP/s ({}) | timing: {}",
        info.name, info.backend, info.device_type, info.driver, info.driver_info, copy_gbps, peak_gflops, peak_label.shape, clock
    );
    if json {
        eprintln!("{device_line}");
    } else {
        println!("{device_line}");
        println!(
            "{:<16} {:<13} {:<58} {:>11} {:>9} {:>8} {:>6} {:>6}  correct",
            "kernel", "model", "shape", "median µs", "GFLOP/s", "GB/s", "%copy", "%mm"
        );
    }

    let mut rows = vec![row(&peak_label, &pt, &pcheck, copy_gbps, peak_gflops)];
    let print_row = |r: &Row| {
        if !json {
            println!(
                "{:<16} {:<13} {:<58} {:>11.1} {:>9.2} {:>8.2} {:>5.1}% {:>5.1}%  {}",
                r.kernel,
                r.model,
                r.shape,
                r.median_us,
                r.gflops,
                r.gbps,
                r.pct_copy_bandwidth,
                r.pct_best_matmul,
                if r.correct { "yes".to_string() } else { format!("NO: {}", r.error.as_deref().unwrap_or("")) }
            );
        }
    };
    print_row(&rows[0]);
    for spec in cases::all() {
        if filter.is_some_and(|f| !spec.matches(f)) {
            continue;
        }
        let label = SpecLabel::of(&spec);
        let case = match spec.build(&dev) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipped {e:#}");
                continue;
            }
        };
        let (t, check) = measure(&dev, &case, budget)?;
        let r = row(&label, &t, &check, copy_gbps, peak_gflops);
        print_row(&r);
        rows.push(r);
        // Free this case's tensors before the next one is built.
        drop(case);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    let wrong = rows.iter().filter(|r| !r.correct).count();
    if wrong > 0 {
        anyhow::bail!("{wrong} kernel case(s) did not match their CPU twin");
    }
    Ok(())
}
