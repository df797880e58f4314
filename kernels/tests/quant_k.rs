//! K-quant weights (Q4_K, Q5_K, Q6_K): the CPU dequantizer bit for bit against gguf-py's
//! fixtures, the repacked layout against the GGUF one, and the GPU decoders
//! (`wgsl/quant_k.wgsl`) inside matvec, matmul and embedding against CPU dequant + the
//! f32 CPU twins; plus clear errors for truncated data and rows of partial blocks.

use half::f16;
use kiln_kernels::matmul::WeightTile;
use kiln_kernels::quant::{self, kquants};
use kiln_kernels::reference;
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{embedding, matmul, matvec, tolerance, DType, Device, Recorder, Tensor};

const KQUANTS: [DType; 3] = [DType::Q4_K, DType::Q5_K, DType::Q6_K];
/// Row lengths: one, two and three blocks.
const KS: [usize; 3] = [256, 512, 768];
/// Odd row counts.
const NS: [usize; 3] = [1, 3, 17];

use kiln_kernels::testing::quant_fixture as fixture_pair;

fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    kiln_kernels::testing::assert_bits_eq(what, got, want, 256);
}

/// `n_blocks` random GGUF blocks of `dtype`: random quant and sub-scale bytes, with the
/// f16 super-scales set so the values are of order 1 (d ≈ 1 / max |sc · q|).
fn random_blocks(rng: &mut Rng, dtype: DType, n_blocks: usize) -> Vec<u8> {
    let bb = dtype.gguf_block_bytes();
    let mut out = Vec::with_capacity(n_blocks * bb);
    for _ in 0..n_blocks {
        let mut b: Vec<u8> = (0..bb).map(|_| rng.below(256) as u8).collect();
        let sane = |rng: &mut Rng, mag: f32| f16::from_f32(mag * (0.5 + rng.unit())).to_le_bytes();
        match dtype {
            DType::Q4_K | DType::Q5_K => {
                let qmax = if dtype == DType::Q4_K { 15.0 } else { 31.0 };
                let d = sane(rng, 1.0 / (63.0 * qmax));
                let sign = if rng.below(4) == 0 { -1.0 } else { 1.0 };
                let dmin = sane(rng, sign / 63.0);
                b[0..2].copy_from_slice(&d);
                b[2..4].copy_from_slice(&dmin);
            }
            DType::Q6_K => {
                let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
                b[208..210].copy_from_slice(&sane(rng, sign / (128.0 * 32.0)));
            }
            other => unreachable!("{other}"),
        }
        out.extend_from_slice(&b);
    }
    out
}

/// A random `[n, k]` weight of `dtype`: (repacked bytes to upload, CPU dequantisation).
fn random_weight(rng: &mut Rng, dtype: DType, n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    let raw = random_blocks(rng, dtype, n * k / 256);
    (kquants::repack(dtype, &raw).unwrap(), kquants::dequantize(dtype, &raw).unwrap())
}

fn upload(dev: &Device, repacked: &[u8], n: usize, k: usize, dtype: DType) -> Tensor {
    Tensor::from_bytes(dev, repacked, &[n, k], dtype).unwrap()
}

// ---------------------------------------------------------------- CPU

#[test]
fn cpu_dequantize_matches_gguf_py_bit_exact() {
    for dtype in KQUANTS {
        let (raw, want) = fixture_pair(dtype);
        assert_eq!(raw.len() % dtype.gguf_block_bytes(), 0, "{dtype} fixture is whole blocks");
        assert!(raw.len() / dtype.gguf_block_bytes() >= 6, "{dtype} fixture has its 6 cases");
        let got = kquants::dequantize(dtype, &raw).unwrap();
        assert_bits_eq(&format!("kquants::dequantize {dtype}"), &got, &want);
        // The dispatch in quant/mod.rs reaches the same code.
        let got = quant::dequantize(dtype, &raw).unwrap();
        assert_bits_eq(&format!("quant::dequantize {dtype}"), &got, &want);
    }
}

#[test]
fn repacked_layout_dequantizes_to_the_same_values() {
    let mut rng = Rng::new(601);
    for dtype in KQUANTS {
        let (fixture_raw, _) = fixture_pair(dtype);
        for raw in [fixture_raw, random_blocks(&mut rng, dtype, 5), Vec::new()] {
            let n_blocks = raw.len() / dtype.gguf_block_bytes();
            let packed = kquants::repack(dtype, &raw).unwrap();
            assert_eq!(packed.len(), n_blocks * dtype.block_bytes(), "{dtype} repacked size");
            assert_eq!(packed.len() % 4, 0);
            assert_eq!(quant::repack(dtype, &raw).unwrap(), packed, "{dtype} dispatch");
            let want = kquants::dequantize(dtype, &raw).unwrap();
            let got = kquants::dequantize_repacked(dtype, &packed).unwrap();
            assert_bits_eq(&format!("dequantize_repacked {dtype}"), &got, &want);
        }
    }
}

#[test]
fn repacked_field_offsets() {
    let mut rng = Rng::new(602);
    // Q4_K and Q5_K keep GGUF's layout (already 4-byte multiples, d | dmin in word 0).
    for dtype in [DType::Q4_K, DType::Q5_K] {
        let raw = random_blocks(&mut rng, dtype, 2);
        assert_eq!(kquants::repack(dtype, &raw).unwrap(), raw, "{dtype} repack is the identity");
    }
    // Q6_K: d (+ 2 zero bytes) | ql | qh | scales.
    let raw = random_blocks(&mut rng, DType::Q6_K, 3);
    let packed = kquants::repack(DType::Q6_K, &raw).unwrap();
    for (g, p) in raw.chunks_exact(210).zip(packed.chunks_exact(212)) {
        assert_eq!(p[kquants::Q6_K_REPACKED_D..][..2], g[208..210], "d");
        assert_eq!(p[2..4], [0, 0], "pad");
        assert_eq!(p[kquants::Q6_K_REPACKED_QL..][..128], g[0..128], "ql");
        assert_eq!(p[kquants::Q6_K_REPACKED_QH..][..64], g[128..192], "qh");
        assert_eq!(p[kquants::Q6_K_REPACKED_SCALES..][..16], g[192..208], "scales");
    }
}

/// Hand-built blocks pin the element order independently of the fixtures: each quant
/// field holds a value identifying its position, so a wrong index shows as a wrong value.
#[test]
fn element_order_follows_ggml() {
    let one = f16::from_f32(1.0).to_le_bytes();
    // Q4_K with every scale 1 and min 0, so y = q: qs byte 32c + l holds sub-block 2c
    // (low nibble) and 2c + 1 (high nibble) at position l; store s + l % 8 there.
    let mut b = vec![0u8; 144];
    b[0..2].copy_from_slice(&one);
    b[4..8].fill(1); // scales 0..3 = 1, top bits 0
    b[12..16].fill(0x01); // scales 4..7 = 1 (low nibble), mins 4..7 = 0
    for (j, q) in b[16..144].iter_mut().enumerate() {
        let (c, l) = (j / 32, j % 32);
        *q = (2 * c + l % 8) as u8 | (((2 * c + 1 + l % 8) as u8) << 4);
    }
    let y = kquants::dequantize(DType::Q4_K, &b).unwrap();
    for (e, &v) in y.iter().enumerate() {
        let (s, l) = (e / 32, e % 32);
        assert_eq!(v, (s + l % 8) as f32, "q4_k element {e}");
    }
    // Q6_K with d = 1, scales[g] = g + 1 (g = e / 16), ql = 0, qh = 0: y = -32 (g + 1);
    // then ql byte j = j % 16 shows which byte and nibble each element reads.
    let mut b = vec![0u8; 210];
    b[208..210].copy_from_slice(&one);
    for g in 0..16 {
        b[192 + g] = (g + 1) as u8;
    }
    let y = kquants::dequantize(DType::Q6_K, &b).unwrap();
    for (e, &v) in y.iter().enumerate() {
        assert_eq!(v, -32.0 * (e / 16 + 1) as f32, "q6_k element {e}");
    }
    // ql: low nibble = byte index % 16, high nibble = 15 - that; qh = 0b11_10_01_00
    // (group g of each half reads bits 2g: value g).
    for (j, q) in b[0..128].iter_mut().enumerate() {
        *q = (j % 16) as u8 | ((15 - j % 16) as u8) << 4;
    }
    b[128..192].fill(0b1110_0100);
    b[192..208].fill(1);
    let y = kquants::dequantize(DType::Q6_K, &b).unwrap();
    for (e, &v) in y.iter().enumerate() {
        let (h, g, l) = (e / 128, (e % 128) / 32, e % 32);
        let byte = 64 * h + 32 * (g % 2) + l;
        let lo = if g < 2 { byte % 16 } else { 15 - byte % 16 };
        assert_eq!(v, (lo + 16 * g) as f32 - 32.0, "q6_k element {e}");
    }
}

#[test]
fn scale_min_k4_unpacks_six_bit_fields() {
    // Scales 0..7 = 1..8 and mins 0..7 = 40..47, packed as ggml's quantizer does.
    let (sc, m): (Vec<u8>, Vec<u8>) = (0..8).map(|j| (j as u8 + 1, j as u8 + 40)).unzip();
    let mut p = [0u8; 12];
    for j in 0..4 {
        p[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        p[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        p[j + 8] = (sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4);
    }
    for j in 0..8 {
        assert_eq!(kquants::scale_min_k4(j, &p), (sc[j], m[j]), "sub-block {j}");
    }
}

#[test]
fn bad_bytes_and_dtypes_are_clear_errors() {
    for dtype in KQUANTS {
        let (g, r) = (dtype.gguf_block_bytes(), dtype.block_bytes());
        let raw = vec![0u8; 2 * g - 1];
        for e in [
            kquants::dequantize(dtype, &raw).unwrap_err().to_string(),
            kquants::repack(dtype, &raw).unwrap_err().to_string(),
            quant::dequantize(dtype, &raw).unwrap_err().to_string(),
        ] {
            assert!(e.contains(&format!("{} bytes", 2 * g - 1)) && e.contains(&format!("{g} bytes")), "{e}");
            assert!(e.contains(dtype.name()) && e.contains("GGUF"), "{e}");
        }
        let e = kquants::dequantize_repacked(dtype, &vec![0u8; r + 2]).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{} bytes", r + 2)) && e.contains("repacked") && e.contains(&format!("{r} bytes")),
            "{e}"
        );
        assert!(e.contains("dequantize_repacked"), "{e}");
    }
    // Only Q6_K's repacked block differs in size: its GGUF bytes are not repacked blocks.
    assert!(kquants::dequantize_repacked(DType::Q6_K, &[0u8; 210]).is_err());
    // Not a K-quant.
    for dtype in [DType::Q8_0, DType::F32] {
        let e = kquants::dequantize(dtype, &[0u8; 34]).unwrap_err().to_string();
        assert!(e.contains(dtype.name()) && e.contains("not a K-quant"), "{e}");
        let e = kquants::repack(dtype, &[0u8; 34]).unwrap_err().to_string();
        assert!(e.contains("not a K-quant"), "{e}");
    }
}

// ---------------------------------------------------------------- GPU

#[test]
fn gpu_rows_must_be_whole_blocks() {
    let dev = test_device();
    let mut rng = Rng::new(603);
    for dtype in KQUANTS {
        // Truncated data for the shape.
        let (w, _) = random_weight(&mut rng, dtype, 2, 256);
        let e = Tensor::from_bytes(&dev, &w[..w.len() - 4], &[2, 256], dtype).unwrap_err().to_string();
        assert!(e.contains(&format!("{}", w.len())), "{e}");
        // 128-element rows: the tensor is one whole block, but each row is half of one.
        let t = Tensor::from_bytes(&dev, &w[..dtype.block_bytes()], &[2, 128], dtype).unwrap();
        let x = Tensor::zeros(&dev, &[128], DType::F32).unwrap();
        let mut rec = Recorder::new(&dev);
        let out = Tensor::zeros(&dev, &[2], DType::F32).unwrap();
        let e = matvec::matvec(&mut rec, &x, &t, &out).unwrap_err().to_string();
        assert!(e.contains("whole blocks of 256"), "{e}");
        let x = Tensor::zeros(&dev, &[3, 128], DType::F32).unwrap();
        let out = Tensor::zeros(&dev, &[3, 2], DType::F32).unwrap();
        let e = matmul::matmul(&mut rec, &x, &t, &out).unwrap_err().to_string();
        assert!(e.contains("whole blocks of 256"), "{e}");
        let ids = Tensor::from_slice(&dev, &[0u32], &[1]).unwrap();
        let out = Tensor::zeros(&dev, &[1, 128], DType::F32).unwrap();
        let e = embedding::embedding(&mut rec, &ids, &t, &out).unwrap_err().to_string();
        assert!(e.contains("whole blocks of 256"), "{e}");
    }
}

/// Each fixture block (every bit pattern, zero / subnormal / negative d) as a table row,
/// gathered on the GPU: must equal gguf-py's values exactly.
#[test]
fn gpu_decodes_fixture_blocks_exactly() {
    let dev = test_device();
    for dtype in KQUANTS {
        let (raw, want) = fixture_pair(dtype);
        let rows = raw.len() / dtype.gguf_block_bytes();
        let table = upload(&dev, &kquants::repack(dtype, &raw).unwrap(), rows, 256, dtype);
        let ids: Vec<u32> = (0..rows as u32).collect();
        let tids = Tensor::from_slice(&dev, &ids, &[rows]).unwrap();
        let out = Tensor::empty(&dev, &[rows, 256], DType::F32).unwrap();
        let mut rec = Recorder::new(&dev);
        embedding::embedding(&mut rec, &tids, &table, &out).unwrap();
        rec.submit().unwrap();
        assert_bits_eq(&format!("GPU {dtype} fixture"), &out.to_vec_f32().unwrap(), &want);
    }
}

#[test]
fn gpu_embedding_matches_cpu_dequant_exactly() {
    let dev = test_device();
    let mut rng = Rng::new(604);
    let vocab = 7;
    let mut cases = Vec::new();
    let mut rec = Recorder::new(&dev);
    for dtype in KQUANTS {
        for d in KS {
            let (w, values) = random_weight(&mut rng, dtype, vocab, d);
            let table = upload(&dev, &w, vocab, d, dtype);
            // Every row backwards, repeats, and an out-of-range id (a row of zeros).
            let mut ids: Vec<u32> = (0..vocab as u32).rev().collect();
            ids.extend([3, 3, 0, vocab as u32 + 5]);
            let tids = Tensor::from_slice(&dev, &ids, &[ids.len()]).unwrap();
            let out = Tensor::empty(&dev, &[ids.len(), d], DType::F32).unwrap();
            embedding::embedding(&mut rec, &tids, &table, &out).unwrap();
            let want = reference::embedding::embedding(&ids, &values, d);
            cases.push((format!("embedding {dtype} d={d}"), out, want));
        }
    }
    rec.submit().unwrap();
    for (what, out, want) in cases {
        assert_bits_eq(&what, &out.to_vec_f32().unwrap(), &want);
    }
}

#[test]
fn gpu_matvec_matches_cpu_dequant() {
    let dev = test_device();
    let mut rng = Rng::new(605);
    let mut rec = Recorder::new(&dev).with_trace();
    let mut cases = Vec::new();
    for dtype in KQUANTS {
        for k in KS {
            for n in NS {
                let x = rng.vec(k, 1.0);
                let (w, values) = random_weight(&mut rng, dtype, n, k);
                let tx = Tensor::from_slice(&dev, &x, &[k]).unwrap();
                let out = Tensor::empty(&dev, &[n], DType::F32).unwrap();
                matvec::matvec(&mut rec, &tx, &upload(&dev, &w, n, k, dtype), &out).unwrap();
                cases.push((format!("matvec {dtype} n={n} k={k}"), out, reference::matvec::matvec(&x, &values, n, k)));
            }
        }
    }
    let trace = rec.submit().unwrap().trace;
    assert!(trace.iter().all(|t| t.kernel == "matvec::matvec"), "block types use the scalar entry point");
    for (what, out, want) in cases {
        if let Err(msg) = tolerance::compare(&what, &out.to_vec_f32().unwrap(), &want, tolerance::MATMUL_HALF) {
            panic!("{msg}");
        }
    }
}

#[test]
fn gpu_matmul_matches_cpu_dequant() {
    let dev = test_device();
    let mut rng = Rng::new(606);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in KQUANTS {
        for k in KS {
            for n in NS {
                let (w, values) = random_weight(&mut rng, dtype, n, k);
                let tw = upload(&dev, &w, n, k, dtype);
                for m in [1usize, 3, 17] {
                    let a = rng.vec(m * k, 1.0);
                    let ta = Tensor::from_slice(&dev, &a, &[m, k]).unwrap();
                    let out = Tensor::empty(&dev, &[m, n], DType::F32).unwrap();
                    matmul::matmul(&mut rec, &ta, &tw, &out).unwrap();
                    let want = reference::matmul::matmul(&a, &values, 1, m, n, k, false);
                    cases.push((format!("matmul {dtype} m={m} n={n} k={k}"), out, want));
                }
            }
        }
    }
    rec.submit().unwrap();
    for (what, out, want) in cases {
        if let Err(msg) = tolerance::compare(&what, &out.to_vec_f32().unwrap(), &want, tolerance::MATMUL_HALF) {
            panic!("{msg}");
        }
    }
}

/// `blocks` with the f16 super-scales (d, and dmin for Q4_K / Q5_K) multiplied by
/// `factor` (rounded to f16).
fn scale_blocks(dtype: DType, blocks: &mut [u8], factor: f32) {
    let fields: &[usize] = if dtype == DType::Q6_K { &[208] } else { &[0, 2] };
    for b in blocks.chunks_exact_mut(dtype.gguf_block_bytes()) {
        for &at in fields {
            let v = f16::from_le_bytes([b[at], b[at + 1]]).to_f32() * factor;
            b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
        }
    }
}

/// The weight tiles the device can run (f16 only with SHADER_F16).
fn weight_tiles(dev: &Device) -> Vec<WeightTile> {
    if dev.features().contains(wgpu::Features::SHADER_F16) {
        vec![WeightTile::F32, WeightTile::F16]
    } else {
        eprintln!("{} has no SHADER_F16: f16 weight tiles not tested here", dev.info().name);
        vec![WeightTile::F32]
    }
}

/// One GPU result and what it must match: (what, out, want, tolerance).
type Check = (String, Tensor, Vec<f32>, tolerance::Tol);
/// GPU results to compare after the submit: (what, f16 tile's out, f32 tile's out, tolerance).
type TilePair = (String, Tensor, Tensor, tolerance::Tol);

/// Record `a[m, k] · w[n, k]ᵀ` (a random of magnitude `a_scale`) on every weight tile the
/// device has, and the checks: each tile against the twin on the exact dequantized
/// weights (the f16 tile holds the integer quants, exact in f16, and applies the
/// sub-block scales and mins in f32), and the f16 tile's result against the f32 tile's.
/// Tolerances scale with `a_scale · w_scale`.
#[allow(clippy::too_many_arguments)]
fn record_block_matmul(
    dev: &Device,
    rec: &mut Recorder,
    rng: &mut Rng,
    (m, n, k): (usize, usize, usize),
    (dtype, tw, w): (DType, &Tensor, &[f32]),
    (a_scale, w_scale): (f32, f32),
    checks: &mut Vec<Check>,
    pairs: &mut Vec<TilePair>,
) {
    let a = rng.vec(m * k, a_scale);
    let ta = Tensor::from_slice(dev, &a, &[m, k]).unwrap();
    let exact = reference::matmul::matmul(&a, w, 1, m, n, k, false);
    let shape = format!("a[{m}, {k}] w[{n}, {k}] {dtype}, |a| {a_scale}, |w| {w_scale}");
    let mut outs = Vec::new();
    for tile in weight_tiles(dev) {
        let out = Tensor::empty(dev, &[m, n], DType::F32).unwrap();
        matmul::matmul_with(rec, &ta, tw, &out, tile).unwrap();
        let tol = match tile {
            WeightTile::F16 => tolerance::MATMUL_F16_TILE,
            _ => tolerance::MATMUL_HALF,
        };
        checks.push((format!("matmul {shape} {tile:?} tile"), out.clone(), exact.clone(), tol.scaled(a_scale * w_scale)));
        outs.push(out);
    }
    if let [f32_out, f16_out] = &outs[..] {
        let tol = tolerance::MATMUL_F16_TILE.scaled(a_scale * w_scale);
        pairs.push((format!("matmul {shape}: f16 tile vs f32 tile"), f16_out.clone(), f32_out.clone(), tol));
    }
}

/// Check every result (printing its errors) and every f16-vs-f32 tile pair.
fn run_checks(checks: &[Check], pairs: &[TilePair]) {
    for (what, out, want, tol) in checks {
        match tolerance::compare(what, &out.to_vec_f32().unwrap(), want, *tol) {
            Ok(report) => eprintln!("{what}: {report}"),
            Err(msg) => panic!("{msg}"),
        }
    }
    for (what, f16_out, f32_out, tol) in pairs {
        match tolerance::compare(what, &f16_out.to_vec_f32().unwrap(), &f32_out.to_vec_f32().unwrap(), *tol) {
            Ok(report) => eprintln!("{what}: {report}"),
            Err(msg) => panic!("{msg}"),
        }
    }
}

/// Every K-quant on both weight tiles, M ∈ {1, 17, 65, 130} × N ∈ {1, 33, 127, 200}
/// (partial 64×64 tiles on both sides) with K of 1, 2 and 3 blocks (every sub-block of
/// a block is its own 32-wide slice).
#[test]
fn gpu_matmul_both_tiles_odd_shapes() {
    let dev = test_device();
    let mut rng = Rng::new(607);
    let ms = [1usize, 17, 65, 130];
    let ns = [1usize, 33, 127, 200];
    for dtype in KQUANTS {
        let mut rec = Recorder::new(&dev);
        let (mut checks, mut pairs) = (Vec::new(), Vec::new());
        for (j, &n) in ns.iter().enumerate() {
            for (i, &m) in ms.iter().enumerate() {
                let k = KS[(i + j) % KS.len()];
                let (w, values) = random_weight(&mut rng, dtype, n, k);
                let tw = upload(&dev, &w, n, k, dtype);
                let weight = (dtype, &tw, &values[..]);
                record_block_matmul(&dev, &mut rec, &mut rng, (m, n, k), weight, (1.0, 1.0), &mut checks, &mut pairs);
            }
        }
        rec.submit().unwrap();
        run_checks(&checks, &pairs);
    }
}

/// Activations of ±1e4 with super-scales ×64, and a batch of activations sharing one
/// weight, on both tiles.
#[test]
fn gpu_matmul_large_magnitudes_and_batches() {
    let dev = test_device();
    let mut rng = Rng::new(608);
    let mut rec = Recorder::new(&dev);
    let (mut checks, mut pairs) = (Vec::new(), Vec::new());
    for dtype in KQUANTS {
        let (n, k) = (127, 768);
        let mut raw = random_blocks(&mut rng, dtype, n * k / 256);
        scale_blocks(dtype, &mut raw, 64.0);
        let values = kquants::dequantize(dtype, &raw).unwrap();
        let tw = upload(&dev, &kquants::repack(dtype, &raw).unwrap(), n, k, dtype);
        let weight = (dtype, &tw, &values[..]);
        record_block_matmul(&dev, &mut rec, &mut rng, (130, n, k), weight, (1e4, 64.0), &mut checks, &mut pairs);
        // [2, 65, K] activations against the shared [N, K] weight.
        let a = rng.vec(2 * 65 * k, 1.0);
        let ta = Tensor::from_slice(&dev, &a, &[2, 65, k]).unwrap();
        let want = reference::matmul::matmul(&a, &values, 2, 65, n, k, false);
        for tile in weight_tiles(&dev) {
            let out = Tensor::empty(&dev, &[2, 65, n], DType::F32).unwrap();
            matmul::matmul_with(&mut rec, &ta, &tw, &out, tile).unwrap();
            let what = format!("matmul a[2, 65, {k}] w[{n}, {k}] {dtype} {tile:?} tile");
            checks.push((what, out, want.clone(), tolerance::MATMUL_HALF.scaled(64.0)));
        }
    }
    rec.submit().unwrap();
    run_checks(&checks, &pairs);
}
