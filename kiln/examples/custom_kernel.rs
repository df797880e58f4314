//! Write a new GPU kernel the way kiln's own are written, and check it: the WGSL source
//! (what one invocation computes, and its PyTorch equivalent), a launcher that checks
//! shapes and dispatches it, a CPU twin that says what the kernel must compute, and a
//! comparison of the two on random inputs of odd sizes.
//!
//! The kernel: `out = x * scale + shift` with one (scale, shift) per column — a fused
//! affine, like the γ/β step of a norm.
//!
//!     cargo run --release -p kiln --example custom_kernel
use kiln::kernels::tolerance::{compare, Tol};
use kiln::tensor::{Dispatch, TensorError};
use kiln::{DType, Device, DeviceOptions, Recorder, Tensor};

/// One invocation computes one element: out[i] = x[i] * scale[i % cols] + shift[i % cols].
/// torch: out = x * scale + shift   (x [rows, cols]; scale, shift [cols])
const AFFINE_WGSL: &str = r#"
struct Params { n: u32, cols: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn affine(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.n) { return; }
    let c = i % p.cols;
    out[i] = x[i] * scale[c] + shift[c];
}
"#;

/// Mirrors `Params` in the WGSL (a uniform's members padded to 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

/// The launcher: check what the kernel assumes, then record one dispatch.
fn affine(rec: &mut Recorder, x: &Tensor, scale: &Tensor, shift: &Tensor, out: &Tensor) -> Result<(), TensorError> {
    let [_, cols] = x.shape() else { return Err(TensorError::param("x", "must be [rows, cols]")) };
    for (name, t) in [("scale", scale), ("shift", shift)] {
        if t.shape() != [*cols] {
            return Err(TensorError::param(name, format!("must be [{cols}], got {:?}", t.shape())));
        }
    }
    if out.shape() != x.shape() || [x, scale, shift, out].iter().any(|t| t.dtype() != DType::F32) {
        return Err(TensorError::param("out", "must be f32 and shaped like x"));
    }
    let n = u32::try_from(x.numel()).map_err(|_| TensorError::param("x", "has more than 2^32 elements"))?;
    let params = Params { n, cols: *cols as u32, _pad0: 0, _pad1: 0 };
    let pipeline = rec.device().pipeline("example_affine", AFFINE_WGSL, "affine", &[])?;
    rec.dispatch(Dispatch {
        kernel: "example::affine",
        pipeline: &pipeline,
        inputs: &[x, scale, shift],
        outputs: &[out],
        params: bytemuck::bytes_of(&params),
        workgroups: [n.div_ceil(256), 1, 1],
        flops: 2 * u64::from(n),
        bytes: 4 * (2 * x.numel() + 2 * *cols) as u64,
    })
}

/// The CPU twin: the plainest code that computes the same thing.
fn affine_cpu(x: &[f32], cols: usize, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    x.iter().enumerate().map(|(i, v)| v * scale[i % cols] + shift[i % cols]).collect()
}

fn main() -> anyhow::Result<()> {
    let dev = Device::new(&DeviceOptions::default())?;
    println!("device: {}", dev.info().name);
    let mut seed = 1u64;
    let mut random = |n: usize, magnitude: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * magnitude
            })
            .collect()
    };
    // Odd sizes (not multiples of the workgroup) and large magnitudes.
    for (rows, cols, magnitude) in [(1, 1, 1.0), (3, 7, 1.0), (17, 257, 1e3), (64, 1000, 1e-3)] {
        let (x, scale, shift) = (random(rows * cols, magnitude), random(cols, 2.0), random(cols, magnitude));
        let upload = |v: &[f32], shape: &[usize]| Tensor::from_slice(&dev, v, shape);
        let (xt, st, bt) = (upload(&x, &[rows, cols])?, upload(&scale, &[cols])?, upload(&shift, &[cols])?);
        let out = Tensor::empty(&dev, &[rows, cols], DType::F32)?;
        let mut rec = Recorder::new(&dev);
        affine(&mut rec, &xt, &st, &bt, &out)?;
        rec.submit()?;
        let want = affine_cpu(&x, cols, &scale, &shift);
        // One multiply and one add in f32 on both sides: a fused multiply-add on the GPU
        // differs by at most one rounding.
        let report = compare(&format!("affine [{rows}, {cols}]"), &out.to_vec_f32()?, &want, Tol { abs: 1e-6, rel: 1e-6 })
            .map_err(anyhow::Error::msg)?;
        println!("affine [{rows:>2}, {cols:>4}] × {magnitude:<6}: {report}");
    }
    // The launcher refuses what the kernel cannot do, naming the parameter.
    let x = Tensor::zeros(&dev, &[2, 3], DType::F32)?;
    let wrong = Tensor::zeros(&dev, &[4], DType::F32)?;
    let err = affine(&mut Recorder::new(&dev), &x, &wrong, &wrong, &x).unwrap_err();
    println!("a [4] scale for 3 columns is refused: {err}");
    Ok(())
}
