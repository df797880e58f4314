//! Placeholder: logits plots for `kiln next --plot`.
