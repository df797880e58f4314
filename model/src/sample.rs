//! CPU temperature sampling (interim, until the `sampler` crate samples on the GPU):
//! softmax(logits / T) in f64 and an inverse-CDF draw from a seeded generator.

/// splitmix64: tiny, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draw an index from softmax(logits / temperature). `temperature` > 0.
pub fn sample_with_temperature(logits: &[f32], temperature: f32, rng: &mut Rng) -> u32 {
    let t = temperature as f64;
    let max = logits.iter().copied().filter(|x| !x.is_nan()).fold(f32::NEG_INFINITY, f32::max) as f64;
    let weights: Vec<f64> =
        logits.iter().map(|&x| if x.is_nan() { 0.0 } else { ((x as f64 - max) / t).exp() }).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.unit() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    // Rounding left u just past the end: the last token with weight.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_the_softmax_distribution() {
        let logits = [0.0f32, (2.0f32).ln(), f32::NEG_INFINITY, (5.0f32).ln()];
        let mut rng = Rng::new(7);
        let mut counts = [0usize; 4];
        let n = 80_000;
        for _ in 0..n {
            counts[sample_with_temperature(&logits, 1.0, &mut rng) as usize] += 1;
        }
        // Expected 1/8, 2/8, 0, 5/8; 5 sigma of a binomial at n = 80k is under 0.01.
        let want = [0.125, 0.25, 0.0, 0.625];
        for i in 0..4 {
            let got = counts[i] as f64 / n as f64;
            assert!((got - want[i]).abs() < 0.01, "token {i}: {got} vs {}", want[i]);
        }
        assert_eq!(counts[2], 0, "a -inf logit is never drawn");
    }

    #[test]
    fn low_temperature_concentrates_on_the_max() {
        let logits = [1.0f32, 3.0, 2.9];
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| sample_with_temperature(&logits, 0.01, &mut rng) == 1));
    }
}
