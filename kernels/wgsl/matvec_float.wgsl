// matvec_float.wgsl — the f32 / f16 / bf16 family of the block matvec (matvec_core.wgsl
// is the skeleton: bindings, layout, prologue and epilogue).
//
// A "block" here is 16 bytes of a row, read with one vec4<u32> load: 4 f32 weights, or 8
// halves (element 2i in the low half of word i). One invocation owns a whole block
// (LANES = 1) as groups of 4 elements with scale 1 and min 0. Needs K % 4 == 0 (f32) or
// K % 8 == 0 (f16, bf16) and a 16-byte aligned x; the launcher checks, and the plain
// matvec of other shapes uses matvec.wgsl's word path.
// torch: y = x @ w.float().T

@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;

const LANES: u32 = 1u;
override GROUPS: u32 = select(2u, 1u, W_DTYPE == 0u);
override BLOCK_ELEMS: u32 = 4u * GROUPS;
const BLOCK_UNITS: u32 = 1u; // vec4<u32> per block

/// Two 16-bit weights of a word as f32: f16 (W_DTYPE 1) or bf16 (the top half of an f32).
fn halves(word: u32) -> vec2<f32> {
    if (W_DTYPE == 1u) {
        return unpack2x16float(word);
    }
    return vec2<f32>(bitcast<f32>(word << 16u), bitcast<f32>(word & 0xffff0000u));
}

fn x_offset(lane: u32, g: u32) -> u32 {
    return 4u * g;
}

fn decode_run(base: u32, lane: u32) -> Run {
    var r: Run;
    let v = w[base];
    r.scale[0] = 1.0;
    r.scale[1] = 1.0;
    if (W_DTYPE == 0u) {
        r.q[0] = bitcast<vec4<f32>>(v);
    } else {
        r.q[0] = vec4<f32>(halves(v.x), halves(v.y));
        r.q[1] = vec4<f32>(halves(v.z), halves(v.w));
    }
    return r;
}
