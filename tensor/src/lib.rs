#![warn(missing_docs)]
//! kiln-tensor: the layer between wgpu and everything else.
//!
//! - [`Device`]: adapter selection (`--backend`, `--adapter`, `KILN_BACKEND`), the
//!   adapter's real limits and optional features, caches for pipelines and buffers.
//! - [`Tensor`]: a GPU buffer + shape + dtype, uploaded from and read back to host slices.
//! - [`Recorder`]: many kernel dispatches in one command encoder, one submit.
//!
//! It knows nothing about models or about particular kernels.

mod bind_cache;
pub mod counters;
pub mod device;
pub mod dtype;
pub mod error;
mod pipeline_cache;
pub mod pool;
pub mod record;
pub mod tensor;

pub use counters::CounterSnapshot;
pub use device::{describe_adapter, list_adapters, AdapterReport, BackendChoice, Device, DeviceOptions};
pub use dtype::{DType, HostElem};
pub use error::{Result, TensorError};
pub use pool::{BufferPool, PoolStats};
pub use record::{Dispatch, Readback, Recorder, Submitted, TraceEntry};
pub use tensor::{checked_numel, Tensor};
pub use wgpu;
