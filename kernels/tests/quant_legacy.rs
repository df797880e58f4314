//! GGUF's 32-element block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1): the CPU dequantizer
//! bit-exact against gguf-py (tests/fixtures/quant, from make_quant_fixtures.py), the
//! repacked layout, and the GPU decoders in wgsl/quant_legacy.wgsl inside matvec,
//! matmul and embedding against CPU dequantisation + the f32 twins.

use kiln_kernels::matmul::WeightTile;
use kiln_kernels::quant::{self, legacy};
use kiln_kernels::reference::matvec::matvec as matvec_ref;
use kiln_kernels::reference::{embedding::embedding as embedding_ref, matmul::matmul as matmul_ref};
use kiln_kernels::testing::{test_device, Rng};
use kiln_kernels::{embedding, matmul, matvec, tolerance, DType, Device, Recorder, Tensor};

const TYPES: [DType; 5] = [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1];
/// Row lengths: 1, 2 and 3 blocks.
const KS: [usize; 3] = [32, 64, 96];
/// Output features / vocabulary sizes (odd).
const NS: [usize; 3] = [1, 3, 17];

use kiln_kernels::testing::quant_fixture as fixture_pair;

fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    kiln_kernels::testing::assert_bits_eq(what, got, want, 32);
}

/// `n_blocks` GGUF blocks of `dtype` of random bytes with random finite f16 scales sized so
/// the values are O(1) (and mins in [-1, 1]).
fn random_blocks(rng: &mut Rng, dtype: DType, n_blocks: usize) -> Vec<u8> {
    let bb = dtype.gguf_block_bytes();
    let qmax = match dtype {
        DType::Q8_0 => 127.0,
        DType::Q4_0 | DType::Q4_1 => 15.0,
        _ => 31.0,
    };
    let mut out = Vec::with_capacity(n_blocks * bb);
    for _ in 0..n_blocks {
        let mut b: Vec<u8> = (0..bb).map(|_| rng.next_u64() as u8).collect();
        let d = rng.uniform(2.0) / qmax;
        b[0..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
        if matches!(dtype, DType::Q4_1 | DType::Q5_1) {
            b[2..4].copy_from_slice(&half::f16::from_f32(rng.uniform(1.0)).to_le_bytes());
        }
        out.extend_from_slice(&b);
    }
    out
}

/// A random `[n, k]` weight of `dtype`: (repacked bytes for the GPU, CPU dequantisation).
fn random_weight(rng: &mut Rng, dtype: DType, n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    let gguf = random_blocks(rng, dtype, n * k / 32);
    (quant::repack(dtype, &gguf).unwrap(), quant::dequantize(dtype, &gguf).unwrap())
}

#[test]
fn cpu_dequantize_is_bit_exact_with_gguf_py() {
    for dtype in TYPES {
        let (blocks, want) = fixture_pair(dtype);
        assert_eq!(blocks.len() % dtype.gguf_block_bytes(), 0, "{dtype} fixture");
        assert!(blocks.len() / dtype.gguf_block_bytes() >= 7, "{dtype} fixture has the edge-case blocks");
        let got = quant::dequantize(dtype, &blocks).unwrap();
        assert_bits_eq(&format!("{dtype} dequantize vs gguf-py"), &got, &want);
        let got = legacy::dequantize(dtype, &blocks).unwrap();
        assert_bits_eq(&format!("{dtype} legacy::dequantize vs gguf-py"), &got, &want);
    }
}

#[test]
fn dequantize_repacked_equals_dequantize() {
    let mut rng = Rng::new(51);
    for dtype in TYPES {
        let (fixture_blocks, _) = fixture_pair(dtype);
        for gguf in [fixture_blocks, random_blocks(&mut rng, dtype, 9)] {
            let n = gguf.len() / dtype.gguf_block_bytes();
            let repacked = legacy::repack(dtype, &gguf).unwrap();
            assert_eq!(repacked.len(), n * dtype.block_bytes(), "{dtype} repacked size");
            assert_eq!(repacked.len() % 4, 0);
            let want = legacy::dequantize(dtype, &gguf).unwrap();
            let got = legacy::dequantize_repacked(dtype, &repacked).unwrap();
            assert_bits_eq(&format!("{dtype} dequantize_repacked"), &got, &want);
        }
    }
}

#[test]
fn repacked_layout_puts_fields_on_word_boundaries() {
    let gguf: Vec<u8> = (0..24u8).map(|b| b + 1).collect(); // bytes 1, 2, 3, ... (one Q5_1 block)
    let pad = |v: &[u8]| v.to_vec();
    // Q8_0: d, 2 zero bytes, 32 quants.
    let q8: Vec<u8> = (1..=34).collect();
    let want: Vec<u8> = [pad(&q8[0..2]), vec![0, 0], pad(&q8[2..])].concat();
    assert_eq!(legacy::repack(DType::Q8_0, &q8).unwrap(), want);
    // Q4_0: d, 2 zero bytes, 16 quant bytes.
    let want: Vec<u8> = [pad(&gguf[0..2]), vec![0, 0], pad(&gguf[2..18])].concat();
    assert_eq!(legacy::repack(DType::Q4_0, &gguf[..18]).unwrap(), want);
    // Q4_1 and Q5_1 are already word-aligned: unchanged.
    assert_eq!(legacy::repack(DType::Q4_1, &gguf[..20]).unwrap(), gguf[..20]);
    assert_eq!(legacy::repack(DType::Q5_1, &gguf).unwrap(), gguf);
    // Q5_0: d, 2 zero bytes, qh (4 bytes), qs (16 bytes).
    let want: Vec<u8> = [pad(&gguf[0..2]), vec![0, 0], pad(&gguf[2..22])].concat();
    assert_eq!(legacy::repack(DType::Q5_0, &gguf[..22]).unwrap(), want);
}

#[test]
fn hand_decoded_elements_follow_ggml_order() {
    let one = half::f16::from_f32(1.0).to_le_bytes();
    let half_m = half::f16::from_f32(-0.5).to_le_bytes();
    // Q4_0, d = 1: qs[0] = 0x4f → element 0 = 15 - 8, element 16 = 4 - 8.
    let mut b = vec![0u8; 18];
    b[0..2].copy_from_slice(&one);
    b[2] = 0x4f;
    let v = legacy::dequantize(DType::Q4_0, &b).unwrap();
    assert_eq!((v[0], v[1], v[16], v[17]), (7.0, -8.0, -4.0, -8.0));
    // Q5_0, d = 1: qh bit 0 and bit 17 set, qs[1] = 0x21 → element 1 = 1 - 16,
    // element 17 = (2 | 16) - 16, element 0 = 16 - 16.
    let mut b = vec![0u8; 22];
    b[0..2].copy_from_slice(&one);
    b[2..6].copy_from_slice(&(1u32 | 1 << 17).to_le_bytes());
    b[7] = 0x21;
    let v = legacy::dequantize(DType::Q5_0, &b).unwrap();
    assert_eq!((v[0], v[1], v[16], v[17]), (0.0, -15.0, -16.0, 2.0));
    // Q5_1, d = 1, m = -0.5: element 31 has qh bit 31 and the high nibble of qs[15].
    let mut b = vec![0u8; 24];
    b[0..2].copy_from_slice(&one);
    b[2..4].copy_from_slice(&half_m);
    b[4..8].copy_from_slice(&(1u32 << 31).to_le_bytes());
    b[8 + 15] = 0xf0;
    let v = legacy::dequantize(DType::Q5_1, &b).unwrap();
    assert_eq!((v[15], v[31]), (-0.5, 30.5));
    // Q8_0, d = 1: signed bytes.
    let mut b = vec![0u8; 34];
    b[0..2].copy_from_slice(&one);
    b[2] = 0x80;
    b[3] = 0x7f;
    b[4] = 0xff;
    let v = legacy::dequantize(DType::Q8_0, &b).unwrap();
    assert_eq!((v[0], v[1], v[2], v[3]), (-128.0, 127.0, -1.0, 0.0));
}

/// One recorded GPU op on a repacked weight and the CPU result it must match.
struct Case {
    what: String,
    out: Tensor,
    want: Vec<f32>,
    tol: tolerance::Tol,
}

fn check_all(cases: &[Case]) {
    for c in cases {
        let got = c.out.to_vec_f32().unwrap();
        if let Err(msg) = tolerance::compare(&c.what, &got, &c.want, c.tol) {
            panic!("{msg}");
        }
    }
}

/// A CPU dequantizer (`quant::dequantize` or `legacy::dequantize`).
type Dequantize = fn(DType, &[u8]) -> kiln_kernels::Result<Vec<f32>>;

fn upload(dev: &Device, repacked: &[u8], n: usize, k: usize, dtype: DType) -> Tensor {
    Tensor::from_bytes(dev, repacked, &[n, k], dtype).unwrap()
}

#[test]
fn gpu_matvec_matches_cpu_dequant() {
    let dev = test_device();
    let mut rng = Rng::new(52);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in TYPES {
        for k in KS {
            for n in NS {
                let (bytes, w) = random_weight(&mut rng, dtype, n, k);
                let x = rng.vec(k, 1.0);
                let tx = Tensor::from_slice(&dev, &x, &[k]).unwrap();
                let out = Tensor::empty(&dev, &[n], DType::F32).unwrap();
                matvec::matvec(&mut rec, &tx, &upload(&dev, &bytes, n, k, dtype), &out).unwrap();
                let what = format!("matvec w[{n}, {k}] {dtype}");
                cases.push(Case { what, out, want: matvec_ref(&x, &w, n, k), tol: tolerance::MATMUL_HALF });
            }
        }
    }
    rec.submit().unwrap();
    check_all(&cases);
}

#[test]
fn gpu_matmul_matches_cpu_dequant() {
    let dev = test_device();
    let mut rng = Rng::new(53);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in TYPES {
        for k in KS {
            for n in NS {
                let (bytes, w) = random_weight(&mut rng, dtype, n, k);
                let tw = upload(&dev, &bytes, n, k, dtype);
                for m in [1usize, 3, 17] {
                    let a = rng.vec(m * k, 1.0);
                    let ta = Tensor::from_slice(&dev, &a, &[m, k]).unwrap();
                    let out = Tensor::empty(&dev, &[m, n], DType::F32).unwrap();
                    matmul::matmul(&mut rec, &ta, &tw, &out).unwrap();
                    let what = format!("matmul a[{m}, {k}] w[{n}, {k}] {dtype}");
                    let want = matmul_ref(&a, &w, 1, m, n, k, false);
                    cases.push(Case { what, out, want, tol: tolerance::MATMUL_HALF });
                }
            }
        }
    }
    rec.submit().unwrap();
    check_all(&cases);
}

/// `blocks` with every scale d (and min m) multiplied by `factor` (rounded to f16).
fn scale_blocks(dtype: DType, blocks: &mut [u8], factor: f32) {
    let fields: &[usize] = if matches!(dtype, DType::Q4_1 | DType::Q5_1) { &[0, 2] } else { &[0] };
    for b in blocks.chunks_exact_mut(dtype.gguf_block_bytes()) {
        for &at in fields {
            let v = half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32() * factor;
            b[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
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

/// GPU results to compare after the submit: (what, f16 tile's out, f32 tile's out, tolerance).
type TilePair = (String, Tensor, Tensor, tolerance::Tol);

/// Record `a[m, k] · w[n, k]ᵀ` (a random of magnitude `a_scale`) on every weight tile the
/// device has, and the checks: each tile against the twin on the exact dequantized
/// weights (the f16 tile holds the integer quants, exact in f16, and applies the scales
/// in f32), and the f16 tile's result against the f32 tile's. Tolerances scale with
/// `a_scale · w_scale`.
#[allow(clippy::too_many_arguments)]
fn record_block_matmul(
    dev: &Device,
    rec: &mut Recorder,
    rng: &mut Rng,
    (m, n, k): (usize, usize, usize),
    (dtype, tw, w): (DType, &Tensor, &[f32]),
    (a_scale, w_scale): (f32, f32),
    cases: &mut Vec<Case>,
    pairs: &mut Vec<TilePair>,
) {
    let a = rng.vec(m * k, a_scale);
    let ta = Tensor::from_slice(dev, &a, &[m, k]).unwrap();
    let exact = matmul_ref(&a, w, 1, m, n, k, false);
    let shape = format!("a[{m}, {k}] w[{n}, {k}] {dtype}, |a| {a_scale}, |w| {w_scale}");
    let mut outs = Vec::new();
    for tile in weight_tiles(dev) {
        let out = Tensor::empty(dev, &[m, n], DType::F32).unwrap();
        matmul::matmul_with(rec, &ta, tw, &out, tile).unwrap();
        let tol = match tile {
            WeightTile::F16 => tolerance::MATMUL_F16_TILE,
            _ => tolerance::MATMUL_HALF,
        };
        let what = format!("matmul {shape} {tile:?} tile");
        cases.push(Case { what, out: out.clone(), want: exact.clone(), tol: tol.scaled(a_scale * w_scale) });
        outs.push(out);
    }
    if let [f32_out, f16_out] = &outs[..] {
        let tol = tolerance::MATMUL_F16_TILE.scaled(a_scale * w_scale);
        pairs.push((format!("matmul {shape}: f16 tile vs f32 tile"), f16_out.clone(), f32_out.clone(), tol));
    }
}

/// Check every case (printing its errors) and every f16-vs-f32 tile pair.
fn check_cases_and_pairs(cases: &[Case], pairs: &[TilePair]) {
    for c in cases {
        match tolerance::compare(&c.what, &c.out.to_vec_f32().unwrap(), &c.want, c.tol) {
            Ok(report) => eprintln!("{}: {report}", c.what),
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

/// Every legacy type on both weight tiles, M ∈ {1, 17, 65, 130} × N ∈ {1, 33, 127, 200}
/// (partial 64×64 tiles on both sides) with K of 1, 3 and 5 blocks.
#[test]
fn gpu_matmul_both_tiles_odd_shapes() {
    let dev = test_device();
    let mut rng = Rng::new(57);
    let ms = [1usize, 17, 65, 130];
    let ns = [1usize, 33, 127, 200];
    let ks = [32usize, 96, 160];
    for dtype in TYPES {
        let mut rec = Recorder::new(&dev);
        let (mut cases, mut pairs) = (Vec::new(), Vec::new());
        for (j, &n) in ns.iter().enumerate() {
            for (i, &m) in ms.iter().enumerate() {
                let k = ks[(i + j) % ks.len()];
                let (bytes, w) = random_weight(&mut rng, dtype, n, k);
                let tw = upload(&dev, &bytes, n, k, dtype);
                let weight = (dtype, &tw, &w[..]);
                record_block_matmul(&dev, &mut rec, &mut rng, (m, n, k), weight, (1.0, 1.0), &mut cases, &mut pairs);
            }
        }
        rec.submit().unwrap();
        check_cases_and_pairs(&cases, &pairs);
    }
}

/// Activations of ±1e4 with scales ×64, and a batch of activations sharing one weight,
/// on both tiles.
#[test]
fn gpu_matmul_large_magnitudes_and_batches() {
    let dev = test_device();
    let mut rng = Rng::new(58);
    let mut rec = Recorder::new(&dev);
    let (mut cases, mut pairs) = (Vec::new(), Vec::new());
    for dtype in TYPES {
        let (n, k) = (127, 96);
        let mut gguf = random_blocks(&mut rng, dtype, n * k / 32);
        scale_blocks(dtype, &mut gguf, 64.0);
        let w = quant::dequantize(dtype, &gguf).unwrap();
        let tw = upload(&dev, &quant::repack(dtype, &gguf).unwrap(), n, k, dtype);
        let weight = (dtype, &tw, &w[..]);
        record_block_matmul(&dev, &mut rec, &mut rng, (130, n, k), weight, (1e4, 64.0), &mut cases, &mut pairs);
        // [2, 65, K] activations against the shared [N, K] weight.
        let a = rng.vec(2 * 65 * k, 1.0);
        let ta = Tensor::from_slice(&dev, &a, &[2, 65, k]).unwrap();
        let want = matmul_ref(&a, &w, 2, 65, n, k, false);
        for tile in weight_tiles(&dev) {
            let out = Tensor::empty(&dev, &[2, 65, n], DType::F32).unwrap();
            matmul::matmul_with(&mut rec, &ta, &tw, &out, tile).unwrap();
            let what = format!("matmul a[2, 65, {k}] w[{n}, {k}] {dtype} {tile:?} tile");
            cases.push(Case { what, out, want: want.clone(), tol: tolerance::MATMUL_HALF.scaled(64.0) });
        }
    }
    rec.submit().unwrap();
    check_cases_and_pairs(&cases, &pairs);
}

#[test]
fn gpu_embedding_matches_cpu_dequant_exactly() {
    let dev = test_device();
    let mut rng = Rng::new(54);
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in TYPES {
        for d in KS {
            for vocab in NS {
                let (bytes, table) = random_weight(&mut rng, dtype, vocab, d);
                // Every row, a repeat, and one id past the vocabulary (a zero row).
                let mut ids: Vec<u32> = (0..vocab as u32).rev().collect();
                ids.push(rng.below(vocab as u32));
                ids.push(vocab as u32);
                let tids = Tensor::from_slice(&dev, &ids, &[ids.len()]).unwrap();
                let out = Tensor::empty(&dev, &[ids.len(), d], DType::F32).unwrap();
                embedding::embedding(&mut rec, &tids, &upload(&dev, &bytes, vocab, d, dtype), &out).unwrap();
                let what = format!("embedding table[{vocab}, {d}] {dtype}");
                cases.push(Case { what, out, want: embedding_ref(&ids, &table, d), tol: tolerance::EXACT });
            }
        }
    }
    rec.submit().unwrap();
    check_all(&cases);
}

/// The GPU decoders on gguf-py's edge-case blocks (zero, negative and subnormal scales,
/// all-0x00 / all-0xFF / ±max quants): gathering every row gives gguf-py's values.
#[test]
fn gpu_embedding_decodes_fixture_blocks_bit_exactly() {
    let dev = test_device();
    let mut rec = Recorder::new(&dev);
    let mut cases = Vec::new();
    for dtype in TYPES {
        let (blocks, want) = fixture_pair(dtype);
        let vocab = blocks.len() / dtype.gguf_block_bytes();
        let ids: Vec<u32> = (0..vocab as u32).collect();
        let tids = Tensor::from_slice(&dev, &ids, &[vocab]).unwrap();
        let table = upload(&dev, &quant::repack(dtype, &blocks).unwrap(), vocab, 32, dtype);
        let out = Tensor::empty(&dev, &[vocab, 32], DType::F32).unwrap();
        embedding::embedding(&mut rec, &tids, &table, &out).unwrap();
        cases.push((dtype, out, want));
    }
    rec.submit().unwrap();
    for (dtype, out, want) in cases {
        assert_bits_eq(&format!("GPU {dtype} fixture rows"), &out.to_vec_f32().unwrap(), &want);
    }
}

#[test]
fn cpu_errors_are_clear() {
    for dtype in TYPES {
        let gb = dtype.gguf_block_bytes();
        let good = random_blocks(&mut Rng::new(55), dtype, 2);
        // Truncated GGUF bytes: not whole blocks.
        let fs: [Dequantize; 2] = [quant::dequantize, legacy::dequantize];
        for f in fs {
            let e = f(dtype, &good[..2 * gb - 1]).unwrap_err().to_string();
            assert!(e.contains(&format!("{} bytes are not whole {dtype} blocks of {gb} bytes", 2 * gb - 1)), "{e}");
        }
        let e = legacy::repack(dtype, &good[..gb + 1]).unwrap_err().to_string();
        assert!(e.contains("not whole") && e.contains(&dtype.to_string()), "{e}");
        // Repacked bytes that are not whole repacked blocks (e.g. GGUF bytes passed by mistake).
        let bb = dtype.block_bytes();
        if gb % bb != 0 {
            let e = legacy::dequantize_repacked(dtype, &good[..gb]).unwrap_err().to_string();
            assert!(e.contains(&format!("not whole repacked {dtype} blocks of {bb} bytes")), "{e}");
        }
        // Empty input is zero blocks.
        assert!(legacy::dequantize(dtype, &[]).unwrap().is_empty());
    }
    // Types this module does not handle.
    for dtype in [DType::F32, DType::F16, DType::Q4_K, DType::Q6_K] {
        let e = legacy::dequantize(dtype, &[0; 144]).unwrap_err().to_string();
        assert!(e.contains(&format!("{dtype} is not one of the 32-element GGUF block types")), "{e}");
        assert!(legacy::repack(dtype, &[0; 144]).is_err());
        assert!(legacy::dequantize_repacked(dtype, &[0; 144]).is_err());
    }
}

#[test]
fn gpu_errors_are_clear() {
    let dev = test_device();
    let mut rec = Recorder::new(&dev);
    for dtype in TYPES {
        // GGUF (not repacked) bytes are refused at upload, unless the sizes agree (Q4_1, Q5_1).
        let gguf = random_blocks(&mut Rng::new(56), dtype, 3);
        if dtype.gguf_block_bytes() != dtype.block_bytes() {
            let e = Tensor::from_bytes(&dev, &gguf, &[3, 32], dtype).unwrap_err().to_string();
            assert!(e.contains(&dtype.to_string()), "{e}");
        }
        let repacked = quant::repack(dtype, &gguf).unwrap();
        // Shape [2, 48]: 96 elements are whole blocks, but rows (K = 48) are not.
        let w = Tensor::from_bytes(&dev, &repacked, &[2, 48], dtype).unwrap();
        let want = "rows must be whole blocks of 32 elements";
        let x = Tensor::zeros(&dev, &[48], DType::F32).unwrap();
        let out = Tensor::zeros(&dev, &[2], DType::F32).unwrap();
        let e = matvec::matvec(&mut rec, &x, &w, &out).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        let a = Tensor::zeros(&dev, &[3, 48], DType::F32).unwrap();
        let out = Tensor::zeros(&dev, &[3, 2], DType::F32).unwrap();
        let e = matmul::matmul(&mut rec, &a, &w, &out).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        let ids = Tensor::zeros(&dev, &[1], DType::U32).unwrap();
        let out = Tensor::zeros(&dev, &[1, 48], DType::F32).unwrap();
        let e = embedding::embedding(&mut rec, &ids, &w, &out).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        // K not a multiple of the block: no upload.
        assert!(Tensor::from_bytes(&dev, &repacked, &[1, 33], dtype).is_err());
    }
}
