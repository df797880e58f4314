//! Timing: GPU timestamps per dispatch where the adapter has them, wall time otherwise.

use std::time::{Duration, Instant};

use anyhow::Result;
use kiln_tensor::{Device, Recorder, Tensor};

/// How a case was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    GpuTimestamps,
    WallTime,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Clock::GpuTimestamps => "gpu-timestamps",
            Clock::WallTime => "wall",
        }
    }
}

pub struct Timing {
    pub median_us: f64,
    pub iterations: usize,
    pub clock: Clock,
    pub flops: u64,
    pub bytes: u64,
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// Run `record` (which records one or more dispatches) repeatedly: one warm-up, then
/// at least 3 and at most 50 timed iterations within `budget`.
pub fn time_case(dev: &Device, budget: Duration, record: &dyn Fn(&mut Recorder) -> Result<()>) -> Result<Timing> {
    // Warm-up: compiles pipelines, faults in memory; the trace gives FLOPs and bytes.
    let mut rec = Recorder::new(dev).with_trace();
    record(&mut rec)?;
    let trace = rec.submit()?.trace;
    let flops = trace.iter().map(|t| t.flops).sum();
    let bytes = trace.iter().map(|t| t.bytes).sum();
    let dispatches = trace.len() as u32;

    let mut samples = Vec::new();
    let mut clock = Clock::WallTime;
    let start = Instant::now();
    while samples.len() < 3 || (start.elapsed() < budget && samples.len() < 50) {
        let mut rec = Recorder::new(dev).with_timing(dispatches);
        let t0 = Instant::now();
        record(&mut rec)?;
        let done = rec.submit()?;
        let wall = t0.elapsed().as_secs_f64() * 1e6;
        match done.gpu_ns {
            Some(ns) if ns.iter().sum::<f64>() > 0.0 => {
                clock = Clock::GpuTimestamps;
                samples.push(ns.iter().sum::<f64>() / 1e3);
            }
            _ => samples.push(wall),
        }
    }
    Ok(Timing { median_us: median(samples.clone()), iterations: samples.len(), clock, flops, bytes })
}

/// Device-to-device copy bandwidth in GB/s (bytes read + bytes written per second).
pub fn copy_bandwidth(dev: &Device) -> Result<f64> {
    let bytes: u64 = (64 << 20).min(dev.max_binding_bytes() / 2);
    let n = (bytes / 4) as usize;
    let src = Tensor::zeros(dev, &[n], kiln_tensor::DType::F32)?;
    let dst = Tensor::zeros(dev, &[n], kiln_tensor::DType::F32)?;
    let reps = 8;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let mut rec = Recorder::new(dev);
        let t0 = Instant::now();
        for _ in 0..reps {
            rec.copy_into(&src, &dst, 0)?;
        }
        rec.submit()?;
        samples.push(t0.elapsed().as_secs_f64());
    }
    Ok(2.0 * bytes as f64 * reps as f64 / median(samples) / 1e9)
}
