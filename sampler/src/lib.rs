//! Sampler crate: filled by the sampling issue.
