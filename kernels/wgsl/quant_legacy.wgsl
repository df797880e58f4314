// quant_legacy.wgsl — decoders for GGUF's 32-element block types in kiln's repacked
// layout (see kernels/src/quant/legacy.rs): element i of the weight as f32.
// Stubs until written.
fn load_q8_0(i: u32) -> f32 { return 0.0; }
fn load_q4_0(i: u32) -> f32 { return 0.0; }
fn load_q4_1(i: u32) -> f32 { return 0.0; }
fn load_q5_0(i: u32) -> f32 { return 0.0; }
fn load_q5_1(i: u32) -> f32 { return 0.0; }
