//! CPU twin for wgsl/rope.wgsl, and the cos/sin table both the GPU and the CPU read.
//!
//! The table follows Hugging Face's float math so kiln rotates by exactly the angles
//! `transformers` does:
//!
//! ```text
//! inv_freq[i] = 1.0 / theta ** ((2 i) / d)     all in f32   (torch: arange(0, d, 2).float() / d)
//! angle[p, i] = (p as f32) * inv_freq[i]        f32 product  (torch: t.float() outer inv_freq)
//! cos, sin    = cos/sin of that f32 angle, evaluated in f64 and rounded to f32
//! ```
//!
//! The last step is the only deliberate difference from torch, whose f32 cos/sin may be
//! an ulp away from the correctly rounded value; evaluating in f64 gives the correctly
//! rounded result on every machine. Computing the table on the CPU (instead of calling
//! WGSL `cos`/`sin`) avoids GPU drivers whose trig functions lose precision for the
//! large arguments late positions produce.

/// HF's `inv_freq` in f32: `1 / theta^((2i)/d)` for i in 0..d/2.
pub fn inv_freq(head_dim: usize, theta: f32) -> Vec<f32> {
    (0..head_dim / 2).map(|i| 1.0f32 / theta.powf((2 * i) as f32 / head_dim as f32)).collect()
}

/// The cos/sin table, laid out `[max_positions, head_dim/2, 2]` with (cos, sin) pairs:
/// element `(p * head_dim/2 + i) * 2` is cos(angle[p, i]), the next one its sin.
pub fn cpu_table(head_dim: usize, theta: f32, max_positions: usize) -> Vec<f32> {
    let inv = inv_freq(head_dim, theta);
    let mut table = Vec::with_capacity(max_positions * inv.len() * 2);
    for p in 0..max_positions {
        for &f in &inv {
            let angle = (p as f32 * f) as f64;
            table.push(angle.cos() as f32);
            table.push(angle.sin() as f32);
        }
    }
    table
}

/// Rotate `x` `[seq, n_heads, head_dim]`; token t sits at position `pos_offset + t`.
///
/// Pair j (0 ≤ j < head_dim/2) is `(x[j], x[j + head_dim/2])` in the half-split form (HF
/// `rotate_half`, Llama/Qwen2) or `(x[2j], x[2j+1])` when `interleaved` (GPT-J, llama.cpp
/// "normal"); with (c, s) = table[pos, j] it becomes (a c - b s, b c + a s).
pub fn rope(
    x: &[f32],
    seq: usize,
    n_heads: usize,
    head_dim: usize,
    table: &[f32],
    pos_offset: usize,
    interleaved: bool,
) -> Vec<f32> {
    assert_eq!(x.len(), seq * n_heads * head_dim, "x must hold seq * n_heads * head_dim values");
    let half = head_dim / 2;
    let mut out = vec![0.0f32; x.len()];
    for t in 0..seq {
        let pos = pos_offset + t;
        for h in 0..n_heads {
            let base = (t * n_heads + h) * head_dim;
            for j in 0..half {
                let (ia, ib) = if interleaved { (base + 2 * j, base + 2 * j + 1) } else { (base + j, base + j + half) };
                let c = table[(pos * half + j) * 2] as f64;
                let s = table[(pos * half + j) * 2 + 1] as f64;
                let (a, b) = (x[ia] as f64, x[ib] as f64);
                out[ia] = (a * c - b * s) as f32;
                out[ib] = (b * c + a * s) as f32;
            }
        }
    }
    out
}
