//! Throwaway timing of the matvec (CPU time per dispatch, robust to other load):
//! mv_time DTYPE M N K [old|nosg]
use kiln_kernels::matvec;
use kiln_kernels::testing::{random_blocks, test_device, Rng};
use kiln_kernels::{shaders, DType, Recorder, Tensor};
use kiln_tensor::Dispatch;

fn cpu_s() -> f64 {
    let t = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = t.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dtype: DType = match args[1].as_str() {
        "q4_0" => DType::Q4_0,
        "q4_1" => DType::Q4_1,
        "q5_0" => DType::Q5_0,
        "q5_1" => DType::Q5_1,
        "q8_0" => DType::Q8_0,
        "q4_k" => DType::Q4_K,
        "q5_k" => DType::Q5_K,
        "q6_k" => DType::Q6_K,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        _ => DType::F32,
    };
    let m: usize = args[2].parse().unwrap();
    let (n, k): (usize, usize) = (args[3].parse().unwrap(), args[4].parse().unwrap());
    let mode = args.get(5).cloned().unwrap_or_default();
    let dev = test_device();
    if mode == "nosg" {
        dev.set_subgroups(false);
    }
    let mut rng = Rng::new(1);
    let bytes = if dtype.is_quantized() {
        random_blocks(&mut rng, dtype, n, k, 0.05).0
    } else {
        kiln_kernels::reference::matmul::quantize_weights(&rng.vec(n * k, 1.0), dtype).0
    };
    let w = Tensor::from_bytes(&dev, &bytes, &[n, k], dtype).unwrap();
    let x = Tensor::from_slice(&dev, &rng.vec(m * k, 1.0), &[m, k]).unwrap();
    let out = Tensor::empty(&dev, &[m, n], DType::F32).unwrap();
    let old =
        dev.pipeline("matvec", shaders::MATVEC, "matvec", &[("W_DTYPE", dtype.weight_code().unwrap() as f64)]).unwrap();
    let run = || {
        let mut rec = Recorder::new(&dev);
        if mode == "old" {
            let params = [n as u32, k as u32, (n as u32).div_ceil(8) * 8, 0];
            rec.dispatch(Dispatch {
                kernel: "old",
                pipeline: &old,
                inputs: &[&x, &w],
                outputs: &[&out],
                params: bytemuck::cast_slice(&params),
                workgroups: [(n as u32).div_ceil(8), 1, m as u32],
                flops: 0,
                bytes: 0,
            })
            .unwrap();
        } else {
            matvec::matvec(&mut rec, &x, &w, &out).unwrap();
        }
        rec.submit().unwrap();
    };
    run();
    let reps = 30;
    let c0 = cpu_s();
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        run();
    }
    let cpu = (cpu_s() - c0) / reps as f64;
    let wall = t0.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{dtype} M={m} N={n} K={k} {mode}: cpu {:.3} ms ({:.3} GB/s per cpu-s), wall {:.3} ms",
        cpu * 1e3,
        w.byte_len() as f64 / cpu / 1e9,
        wall * 1e3
    );
}
