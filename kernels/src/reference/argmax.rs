//! CPU twin for wgsl/argmax.wgsl.

/// Index of the largest entry of each row of `x` (`[rows, n]`): ties → smallest index,
/// NaNs ignored (-0.0 equals +0.0), a row with no non-NaN entry → 0.
pub fn argmax(x: &[f32], n: usize) -> Vec<u32> {
    x.chunks(n)
        .map(|row| {
            let mut best: Option<(f32, usize)> = None;
            for (i, &v) in row.iter().enumerate() {
                if v.is_nan() {
                    continue;
                }
                if best.is_none_or(|(b, _)| v > b) {
                    best = Some((v, i));
                }
            }
            best.map_or(0, |(_, i)| i as u32)
        })
        .collect()
}
