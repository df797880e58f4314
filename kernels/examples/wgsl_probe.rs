//! Throwaway probe: time a standalone WGSL kernel `main` with bindings x (f32), w (u32
//! words), out (f32), params (4 u32: n, k, 0, 0) on random Q4_0-like data.
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{DType, Recorder, Tensor};
use kiln_tensor::Dispatch;
use std::time::Instant;

fn cpu_s() -> f64 {
    let t = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = t.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let src: &'static str = Box::leak(std::fs::read_to_string(&a[1]).unwrap().into_boxed_str());
    let (n, k, words_per_row, wgs): (usize, usize, usize, u32) =
        (a[2].parse().unwrap(), a[3].parse().unwrap(), a[4].parse().unwrap(), a[5].parse().unwrap());
    let dev = test_device();
    let mut rng = Rng::new(1);
    let w: Vec<u32> = (0..n * words_per_row).map(|_| (rng.next_u64() as u32) & 0x3bff3bff).collect();
    let tw = Tensor::from_slice(&dev, &w, &[n * words_per_row]).unwrap();
    let tx = Tensor::from_slice(&dev, &rng.vec(k, 1.0), &[k]).unwrap();
    let out = Tensor::empty(&dev, &[n], DType::F32).unwrap();
    let params = [n as u32, k as u32, 0, 0];
    let pipe = dev.pipeline("probe", src, "main", &[]).unwrap();
    let run = || {
        let mut rec = Recorder::new(&dev);
        rec.dispatch(Dispatch {
            kernel: "probe",
            pipeline: &pipe,
            inputs: &[&tx, &tw],
            outputs: &[&out],
            params: bytemuck::cast_slice(&params),
            workgroups: [wgs, 1, 1],
            flops: 0,
            bytes: 0,
        })
        .unwrap();
        rec.submit().unwrap();
    };
    run();
    let reps: usize = a.get(6).map_or(7, |v| v.parse().unwrap());
    let c0 = cpu_s();
    let mut t = vec![];
    for _ in 0..reps {
        let s = Instant::now();
        run();
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let cpu = (cpu_s() - c0) / reps as f64;
    println!("{}: cpu {:.3} ms/dispatch", a[1], cpu * 1e3);
    println!(
        "{}: min {:.3} ms median {:.3} ms  {:.3} GB/s (min)",
        a[1],
        t[0] * 1e3,
        t[reps / 2] * 1e3,
        tw.byte_len() as f64 / t[0] / 1e9
    );
}
