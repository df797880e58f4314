// matmul_f16.wgsl — the f16 weight tile of matmul.wgsl (module `MATMUL_F16`, which opens
// with `enable f16;` and is only built on devices with SHADER_F16).
//
// GGUF block weights: the tile holds the quants q (small integers, exact in f16) and
// per tile row and scale group the run's scale and offset (f32, w_scale / w_offset), so
// staging rounds nothing. Each group of k (32: one legacy block or K-quant sub-block;
// 16 for Q6_K, whose scales cover 16 elements) adds scale · Σ a·q − offset · Σ a to
// the output, which equals Σ a·(q·scale − offset) up to f32 rounding — no f16 error.
// Dense weights: the tile holds the values rounded to f16 (exact for f16 weights; f32
// and bf16 weights only come here when a caller asks for f16 tiles).
//
// Workgroup memory beyond matmul.wgsl's tiles: w_scale 2 × 64 f32, w_offset 64 f32.

alias WTile = f16;

// w_scale[g * QUADS + r / 4][r % 4]: scale of tile row r in scale group g of the slice.
var<workgroup> w_scale: array<vec4<f32>, 2u * QUADS>;
// w_offset[r / 4][r % 4]: offset of tile row r (types with mins: one group per slice).
var<workgroup> w_offset: array<vec4<f32>, QUADS>;

/// Whether the tile holds quants (block types) rather than values (dense types).
fn quant_tile() -> bool {
    return W_DTYPE >= 3u;
}

/// Stage run `run` (k = 8·run .. +8) of tile row r at `slot` (component `comp`); the
/// first run of each scale group also stages the group's scale and offset.
fn stage_w(slot: u32, comp: u32, r: u32, run: u32, q: QRun) {
    if !quant_tile() {
        let v = dequantize_run(q);
        put_w4(slot, comp, v.lo);
        put_w4(slot + 4u * QUADS, comp, v.hi);
        return;
    }
    put_w4(slot, comp, q.q.lo);
    put_w4(slot + 4u * QUADS, comp, q.q.hi);
    let k = run * RUN;
    if k % group_k() == 0u {
        let g = k / group_k();
        w_scale[g * QUADS + r / 4u][comp] = q.scale;
        if g == 0u {
            w_offset[r / 4u][comp] = q.offset;
        }
    }
}

/// k per scale group: 16 for Q6_K, else the whole slice.
fn group_k() -> u32 {
    return select(BK, 16u, W_DTYPE == 10u);
}

/// Whether groups carry an offset term: the types with mins (Q4_1, Q5_1, Q4_K, Q5_K).
fn group_has_offset() -> bool {
    return W_DTYPE == 5u || W_DTYPE == 7u || W_DTYPE == 8u || W_DTYPE == 9u;
}

/// Scales of columns 4·tx .. +4 in group g (1 for dense weights).
fn group_scale(g: u32, tx: u32) -> vec4<f32> {
    if quant_tile() {
        return w_scale[g * QUADS + tx];
    }
    return vec4<f32>(1.0);
}

/// Offsets of columns 4·tx .. +4 (0 for types without mins).
fn group_offset(tx: u32) -> vec4<f32> {
    if group_has_offset() {
        return w_offset[tx];
    }
    return vec4<f32>(0.0);
}
