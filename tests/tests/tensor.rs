//! The tensor crate as a user meets it: device selection errors, upload/readback of
//! every dtype, views, the buffer pool, and clear errors for bad input.

use half::{bf16, f16};
use kiln_kernels::testing::test_device;
use kiln_tensor::{BackendChoice, DType, Recorder, Tensor, TensorError};

#[test]
fn unknown_backend_name_is_a_clear_error() {
    let err = "vulkann".parse::<BackendChoice>().unwrap_err().to_string();
    assert!(err.contains("unknown backend \"vulkann\""), "{err}");
    assert!(err.contains("auto, vulkan, metal, dx12, gl"), "{err}");
    for (name, want) in [("auto", BackendChoice::Auto), ("Vulkan", BackendChoice::Vulkan), ("gl", BackendChoice::Gl), ("dx12", BackendChoice::Dx12), ("metal", BackendChoice::Metal)] {
        assert_eq!(name.parse::<BackendChoice>().unwrap(), want);
    }
}

#[test]
fn adapter_index_out_of_range_is_a_clear_error() {
    let opts = kiln_tensor::DeviceOptions { backend: BackendChoice::Vulkan, adapter: Some(99) };
    let err = kiln_tensor::Device::new(&opts).unwrap_err().to_string();
    assert!(err.contains("adapter index 99 is out of range"), "{err}");
}

#[test]
fn upload_and_readback_every_dtype() {
    let dev = test_device();
    let f: Vec<f32> = (0..7).map(|i| i as f32 * 0.5 - 1.0).collect();
    assert_eq!(Tensor::from_slice(&dev, &f, &[7]).unwrap().to_vec_f32().unwrap(), f);
    // Odd element counts of 2-byte types need the buffer padded to 4 bytes.
    let h: Vec<f16> = f.iter().map(|&x| f16::from_f32(x)).collect();
    assert_eq!(Tensor::from_slice(&dev, &h, &[7]).unwrap().to_vec_f32().unwrap(), f);
    let b: Vec<bf16> = f.iter().map(|&x| bf16::from_f32(x)).collect();
    assert_eq!(Tensor::from_slice(&dev, &b, &[7]).unwrap().to_vec_f32().unwrap(), f);
    let u: Vec<u32> = (0..5).collect();
    let t = Tensor::from_slice(&dev, &u, &[5]).unwrap();
    assert_eq!(t.to_vec_u32().unwrap(), u);
    assert!(t.to_vec_f32().unwrap_err().to_string().contains("use to_vec_u32"));
}

#[test]
fn zeros_write_and_views() {
    let dev = test_device();
    let t = Tensor::zeros(&dev, &[4, 64], DType::F32).unwrap();
    assert!(t.to_vec_f32().unwrap().iter().all(|&x| x == 0.0));
    let data: Vec<f32> = (0..256).map(|i| i as f32).collect();
    t.write(&data).unwrap();
    assert_eq!(t.to_vec_f32().unwrap(), data);
    let v = t.reshape(&[2, 2, 64]).unwrap();
    assert_eq!(v.shape(), &[2, 2, 64]);
    assert!(v.same_storage(&t));
    // Row 2 starts at byte 512: aligned on every adapter (alignment <= 256).
    let rows = t.narrow_rows(2, 2).unwrap();
    assert_eq!(rows.to_vec_f32().unwrap(), data[128..].to_vec());
    let err = t.reshape(&[3, 64]).unwrap_err().to_string();
    assert!(err.contains("cannot view [4, 64] (256 elements) as [3, 64] (192 elements)"), "{err}");
    let err = t.narrow_rows(3, 2).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
    let err = t.write(&[1.0f32; 3]).unwrap_err().to_string();
    assert!(err.contains("has 256 elements, data has 3"), "{err}");
}

#[test]
fn zero_size_and_bad_host_data_are_clear_errors() {
    let dev = test_device();
    let err = Tensor::empty(&dev, &[3, 0], DType::F32).unwrap_err();
    assert!(matches!(err, TensorError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("shape [3, 0] has no elements"), "{err}");
    let err = Tensor::from_slice::<f32>(&dev, &[], &[0]).unwrap_err().to_string();
    assert!(err.contains("no elements"), "{err}");
    let err = Tensor::from_slice(&dev, &[1.0f32, 2.0], &[3]).unwrap_err().to_string();
    assert!(err.contains("must be 12 bytes, got 8"), "{err}");
    let err = Tensor::empty(&dev, &[usize::MAX, 4], DType::F32).unwrap_err().to_string();
    assert!(err.contains("overflows"), "{err}");
}

#[test]
fn tensor_over_the_binding_limit_is_refused_with_the_limit_named() {
    let dev = test_device();
    let limit = dev.max_binding_bytes();
    let elems = (limit / 4 + 1) as usize;
    let err = Tensor::empty(&dev, &[elems], DType::F32).unwrap_err();
    assert!(matches!(err, TensorError::TooLarge { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("max_storage_buffer_binding_size"), "{msg}");
    assert!(msg.contains(&limit.to_string()), "{msg}");
}

#[test]
fn buffer_pool_reuses_buffers_across_passes() {
    let dev = test_device();
    let x = Tensor::from_slice(&dev, &[1.0f32; 1000], &[1000]).unwrap();
    let pass = || {
        let a = Tensor::empty(&dev, &[1000], DType::F32).unwrap();
        let b = Tensor::empty(&dev, &[1000], DType::F32).unwrap();
        let mut rec = Recorder::new(&dev);
        kiln_kernels::elementwise::silu(&mut rec, &x, &a).unwrap();
        kiln_kernels::elementwise::add(&mut rec, &a, &x, &b).unwrap();
        rec.submit().unwrap();
        b.to_vec_f32().unwrap()
    };
    let first = pass();
    let allocated = dev.pool().stats().allocations;
    for _ in 0..3 {
        assert_eq!(pass(), first);
    }
    let stats = dev.pool().stats();
    assert_eq!(stats.allocations, allocated, "repeated passes of the same shapes must not allocate: {stats:?}");
    assert!(stats.reuses >= 6, "{stats:?}");
}

#[test]
fn recorder_trace_and_params_arena_handle_many_dispatches() {
    let dev = test_device();
    let x = Tensor::from_slice(&dev, &[0.5f32; 64], &[64]).unwrap();
    // 600 dispatches need several 64 KiB params arenas.
    let outs: Vec<Tensor> = (0..600).map(|_| Tensor::empty(&dev, &[64], DType::F32).unwrap()).collect();
    let mut rec = Recorder::new(&dev).with_trace();
    for o in &outs {
        kiln_kernels::elementwise::silu(&mut rec, &x, o).unwrap();
    }
    let done = rec.submit().unwrap();
    assert_eq!(done.trace.len(), 600);
    assert_eq!(done.trace[0].kernel, "elementwise::silu");
    assert_eq!(done.trace[0].outputs[0].0, vec![64]);
    let want = kiln_kernels::reference::silu(&[0.5]);
    for o in [&outs[0], &outs[299], &outs[599]] {
        assert!(o.to_vec_f32().unwrap().iter().all(|&v| (v - want[0]).abs() < 1e-6));
    }
}

/// Pipelines are cached by (module, entry point, override values): the same key gives the
/// same compiled pipeline, another override value another one, and a failed compile
/// names the pipeline.
#[test]
fn pipelines_are_cached_by_module_entry_and_overrides() {
    use kiln_kernels::shaders::MATVEC;
    use std::sync::Arc;
    let dev = test_device();
    let get = |w: f64| dev.pipeline("matvec", MATVEC, "matvec", &[("W_DTYPE", w)]).unwrap();
    let a = get(1.0);
    assert!(Arc::ptr_eq(&a, &get(1.0)), "the same key must hit the cache");
    assert!(!Arc::ptr_eq(&a, &get(2.0)), "another override value is another pipeline");
    let err = dev.pipeline("matvec", MATVEC, "no_such_entry", &[("W_DTYPE", 1.0)]).unwrap_err().to_string();
    assert!(err.contains("matvec::no_such_entry:W_DTYPE=1"), "{err}");
}

/// A lost device says so (`kiln serve` stops on it rather than failing request after
/// request): `destroy` loses it on purpose.
#[test]
fn a_lost_device_reports_why() {
    let dev = kiln_kernels::testing::test_device();
    assert_eq!(dev.lost(), None);
    dev.wgpu().destroy();
    // wgpu loses a destroyed device once its queue is idle, when next polled.
    let _ = dev.sync();
    let why = dev.lost().expect("the device-lost callback ran");
    assert!(why.contains("Destroyed"), "{why}");
}
