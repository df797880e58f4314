//! Where a model's weights come from. The model files ask for tensors by their Hugging
//! Face names and shapes (PyTorch order); a `WeightSource` finds them in its format —
//! safetensors directories here, GGUF files in `gguf/model.rs` — and uploads them.

use kiln_tensor::{Device, Tensor};

use crate::{Result, WeightStore};

/// Finds a model's tensors by Hugging Face name in one on-disk format and uploads them.
pub trait WeightSource {
    /// A weight matrix `[rows, cols]` in its stored dtype (GGUF block types stay quantized).
    fn matrix(&self, dev: &Device, name: &str, shape: [usize; 2]) -> Result<Tensor>;
    /// The same, as row blocks that each fit one binding: `(first row, block)`.
    fn matrix_blocks(&self, dev: &Device, name: &str, shape: [usize; 2]) -> Result<Vec<(usize, Tensor)>>;
    /// A 1-D tensor (norm weight, bias) as f32.
    fn vector_f32(&self, dev: &Device, name: &str, len: usize) -> Result<Tensor>;
    /// Whether the source holds `name`.
    fn contains(&self, name: &str) -> bool;
    /// A GPT-2 Conv1D weight stored `[n_in, n_out]`, as the nn.Linear weight
    /// `[n_out, n_in]` (transposed at load, in its stored dtype).
    fn conv1d(&self, dev: &Device, name: &str, n_in_out: [usize; 2]) -> Result<Tensor>;
}

impl WeightSource for WeightStore {
    fn matrix(&self, dev: &Device, name: &str, shape: [usize; 2]) -> Result<Tensor> {
        self.load(dev, name, &shape)
    }
    fn matrix_blocks(&self, dev: &Device, name: &str, shape: [usize; 2]) -> Result<Vec<(usize, Tensor)>> {
        self.load_row_blocks(dev, name, &shape, None)
    }
    fn vector_f32(&self, dev: &Device, name: &str, len: usize) -> Result<Tensor> {
        self.load_f32(dev, name, &[len])
    }
    fn contains(&self, name: &str) -> bool {
        WeightStore::contains(self, name)
    }
    fn conv1d(&self, dev: &Device, name: &str, n_in_out: [usize; 2]) -> Result<Tensor> {
        self.load_transposed(dev, name, n_in_out)
    }
}
