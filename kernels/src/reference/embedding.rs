//! CPU twins for wgsl/embedding.wgsl and wgsl/position_embedding.wgsl.

/// Rows of `table` (`[vocab, d]`, already dequantised to f32) picked by `ids`;
/// an id ≥ vocab gives a row of zeros, as in the kernel.
pub fn embedding(ids: &[u32], table: &[f32], d: usize) -> Vec<f32> {
    let vocab = table.len() / d;
    ids.iter()
        .flat_map(|&id| {
            let id = id as usize;
            if id < vocab {
                table[id * d..(id + 1) * d].to_vec()
            } else {
                vec![0.0; d]
            }
        })
        .collect()
}

/// `h[r, :] + table[positions[r], :]` for h `[n_rows, d]` (position_embedding.wgsl).
pub fn add_positions(h: &[f32], table: &[f32], positions: &[usize], d: usize) -> Vec<f32> {
    h.chunks_exact(d)
        .zip(positions)
        .flat_map(|(row, &pos)| row.iter().zip(&table[pos * d..(pos + 1) * d]).map(|(a, b)| a + b).collect::<Vec<_>>())
        .collect()
}
