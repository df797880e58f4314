//! Model crate: filled by the models issue.
