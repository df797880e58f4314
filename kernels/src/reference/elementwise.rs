//! CPU twins for wgsl/elementwise.wgsl.

/// `a + b` with `b` broadcast over `a`'s leading dimensions.
pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().enumerate().map(|(i, x)| x + b[i % b.len()]).collect()
}

/// `a * b` with `b` broadcast over `a`'s leading dimensions.
pub fn mul(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().enumerate().map(|(i, x)| x * b[i % b.len()]).collect()
}

/// `x · sigmoid(x)` for one value, computed in f64.
pub fn silu_scalar(x: f32) -> f32 {
    (x as f64 / (1.0 + (-x as f64).exp())) as f32
}

/// [`silu_scalar`] of every element.
pub fn silu(a: &[f32]) -> Vec<f32> {
    a.iter().map(|&x| silu_scalar(x)).collect()
}

/// GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
pub fn gelu_tanh(a: &[f32]) -> Vec<f32> {
    let k = (2.0f64 / std::f64::consts::PI).sqrt();
    a.iter()
        .map(|&x| {
            let x = x as f64;
            (0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())) as f32
        })
        .collect()
}

/// silu(gate) * up.
pub fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter().zip(up).map(|(&g, &u)| silu_scalar(g) * u).collect()
}
