//! CPU twin for wgsl/logit_edit.wgsl.

use crate::logit_edit::{LogitBase, LogitEdit};

/// [`crate::logit_edit::set_logits`] on rows of `n` entries of `x`, in place: each row's
/// max (NaNs ignored, `f32::MIN` for a row with none) is taken before its edits.
pub fn set_logits(x: &mut [f32], n: usize, edits: &[LogitEdit]) {
    for row in x.chunks_mut(n) {
        let max = row.iter().copied().filter(|v| !v.is_nan()).fold(None, |m: Option<f32>, v| Some(m.map_or(v, |m| m.max(v))));
        let max = max.unwrap_or(f32::MIN);
        for e in edits {
            let at = &mut row[e.id as usize];
            let goal = e.value
                + match e.base {
                    LogitBase::Zero => 0.0,
                    LogitBase::RowMax => max,
                    LogitBase::Current => *at,
                };
            *at = if e.raise_only { at.max(goal) } else { goal };
        }
    }
}
