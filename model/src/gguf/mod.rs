//! GGUF: llama.cpp's single-file model format (metadata, tokenizer and quantized
//! tensors in one file).
//!
//! - [`GgufFile`]: a strict reader of GGUF v2/v3 over a memory map: every metadata value
//!   type ([`GgufValue`], arrays typed and nestable: [`GgufArray`]), typed accessors whose
//!   errors name the key and the file, tensor infos ([`GgufTensorInfo`], ggml types
//!   [`GgmlType`]) validated against their type, shape, alignment and the file size.

mod ggml_type;
mod reader;
mod value;

pub use ggml_type::GgmlType;
pub use reader::{
    GgufFile, GgufTensorInfo, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_ARRAY_DEPTH, GGUF_MAX_DIMS,
    GGUF_MAX_KEY_BYTES, GGUF_VERSIONS, KEY_ALIGNMENT, KEY_ARCHITECTURE,
};
pub use value::{GgufArray, GgufValue, GgufValueType};
pub mod model;
pub mod writer;

pub mod chat;
pub mod gemma_tokenizer;
pub mod tokenizer;
