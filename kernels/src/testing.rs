//! Helpers shared by the kernel tests, the benches and `kiln bench`: a device on the
//! backend under test (asserted, because wgpu silently falls back to GL when Vulkan is
//! missing) and a small seeded random generator.

use kiln_tensor::{BackendChoice, Device, DeviceOptions};

/// The device tests run on: `KILN_TEST_BACKEND` (default `vulkan`). Panics (tests only)
/// if the backend that came up is not the one asked for.
pub fn test_device() -> Device {
    let name = std::env::var("KILN_TEST_BACKEND").unwrap_or_else(|_| "vulkan".into());
    device_on(&name)
}

/// A device on the named backend, asserting that is the backend wgpu gave us.
pub fn device_on(name: &str) -> Device {
    let backend: BackendChoice = name.parse().expect("valid backend name");
    let dev = Device::new(&DeviceOptions { backend, adapter: None })
        .unwrap_or_else(|e| panic!("tests need a {name} adapter: {e}"));
    let want = match backend {
        BackendChoice::Vulkan => Some(wgpu::Backend::Vulkan),
        BackendChoice::Gl => Some(wgpu::Backend::Gl),
        BackendChoice::Metal => Some(wgpu::Backend::Metal),
        BackendChoice::Dx12 => Some(wgpu::Backend::Dx12),
        BackendChoice::Auto => None,
    };
    if let Some(want) = want {
        assert_eq!(dev.backend(), want, "asked for {name} but wgpu gave {:?} ({})", dev.backend(), dev.info().name);
    }
    dev
}

/// xorshift64* — deterministic, dependency-free, good enough for test data.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (scrambled, never zero).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next raw 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-scale, scale).
    pub fn uniform(&mut self, scale: f32) -> f32 {
        (self.unit() * 2.0 - 1.0) * scale
    }
    /// `n` values uniform in [-scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(scale)).collect()
    }
    /// A value in `0..n` (modulo reduction); `n` must not be 0.
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

/// The quantization fixture for a GGUF block `dtype`: (its GGUF blocks, gguf-py's f32
/// dequantisation of them), from `tests/fixtures/quant/` (made by
/// tests/fixtures/make_quant_fixtures.py).
pub fn quant_fixture(dtype: kiln_tensor::DType) -> (Vec<u8>, Vec<f32>) {
    let read = |suffix: &str| {
        let path = format!("{}/../tests/fixtures/quant/{}.{suffix}", env!("CARGO_MANIFEST_DIR"), dtype.name());
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run tests/fixtures/make_quant_fixtures.py)"))
    };
    let want = read("f32.bin").chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (read("gguf.bin"), want)
}

/// Assert two f32 slices are equal bit for bit; on failure name the first differing
/// element, its block of `block` elements and both bit patterns.
pub fn assert_bits_eq(what: &str, got: &[f32], want: &[f32], block: usize) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g.to_bits() != w.to_bits()) {
        panic!(
            "{what}: element {i} (block {}, in-block {}) got {} ({:#010x}) want {} ({:#010x})",
            i / block,
            i % block,
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

/// Random GGUF blocks of `dtype` for `n` rows of `k` elements (k a multiple of the block
/// size): random quant bytes with f16 scales of magnitude `scale` (mins likewise).
/// Returns (kiln's repacked bytes, ready for `Tensor::from_bytes`; ggml's f32
/// dequantisation, the CPU twin's weights).
///
/// Panics for non-block dtypes (test helper).
pub fn random_blocks(rng: &mut Rng, dtype: kiln_tensor::DType, n: usize, k: usize, scale: f32) -> (Vec<u8>, Vec<f32>) {
    use kiln_tensor::DType;
    let bb = dtype.gguf_block_bytes();
    let blocks = n * k / dtype.block_size();
    let mut gguf: Vec<u8> = (0..blocks * bb).map(|_| (rng.next_u64() >> 56) as u8).collect();
    // Byte offsets of the f16 scale fields in ggml's block layout.
    let halves: &[usize] = match dtype {
        DType::Q8_0 | DType::Q4_0 | DType::Q5_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
        DType::Q6_K => &[208],
        other => panic!("random_blocks: {other} is not a GGUF block type"),
    };
    for block in gguf.chunks_exact_mut(bb) {
        for &at in halves {
            let v = half::f16::from_f32(rng.uniform(scale));
            block[at..at + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    let values = crate::quant::dequantize(dtype, &gguf).expect("whole blocks");
    let repacked = crate::quant::repack(dtype, &gguf).expect("whole blocks");
    (repacked, values)
}
