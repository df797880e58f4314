// matmul_f32.wgsl — the f32 weight tile of matmul.wgsl (module `MATMUL`, every device):
// the tile holds each weight dequantized to f32 (exactly the CPU twin's value), so a
// 32-wide k slice is one scale group with scale 1 and no offset term.

alias WTile = f32;

/// Stage run `run` (k = 8·run .. +8) of tile row r at `slot` (component `comp`).
fn stage_w(slot: u32, comp: u32, r: u32, run: u32, q: QRun) {
    let v = dequantize_run(q);
    put_w4(slot, comp, v.lo);
    put_w4(slot + 4u * QUADS, comp, v.hi);
}

/// k per scale group: the whole slice.
fn group_k() -> u32 {
    return BK;
}

/// Whether groups carry an offset term: no, offsets are applied when staging.
fn group_has_offset() -> bool {
    return false;
}

/// Scales of columns 4·tx .. +4 in group g: 1 (the tile holds values).
fn group_scale(g: u32, tx: u32) -> vec4<f32> {
    return vec4<f32>(1.0);
}

/// Offsets of columns 4·tx .. +4: none.
fn group_offset(tx: u32) -> vec4<f32> {
    return vec4<f32>(0.0);
}
