// quant_k.wgsl — decoders for GGUF's 256-element "K-quant" block types in kiln's
// repacked layout (see kernels/src/quant/kquants.rs): element i of the weight as f32.
// Stubs until written.
fn load_q4_k(i: u32) -> f32 { return 0.0; }
fn load_q5_k(i: u32) -> f32 { return 0.0; }
fn load_q6_k(i: u32) -> f32 { return 0.0; }
