//! Placeholder: scoring.
