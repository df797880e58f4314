//! Placeholder: beam search.
