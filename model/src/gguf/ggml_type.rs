//! ggml tensor types as GGUF stores them (`ggml_type` ids), with their block layouts.
//!
//! Every id of ggml's current enum is known, so a tensor of any type can be sized and
//! checked against the file; only the types of [`GgmlType::dtype`] can be loaded.

use std::fmt;

use kiln_tensor::DType;

/// A ggml tensor type. The discriminant is the id stored in the GGUF tensor info.
/// Ids 4, 5 (Q4_2, Q4_3), 31–33 (Q4_0_4_4 …) and 36–38 (IQ4_NL_4_4 …) were removed from
/// ggml and are rejected like any other unknown id.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    /// ggml `F32` (id 0): 4 bytes per element; loads as [`DType::F32`].
    F32 = 0,
    /// ggml `F16` (id 1): 2 bytes per element; loads as [`DType::F16`].
    F16 = 1,
    /// ggml `Q4_0` (id 2): blocks of 32 elements in 18 bytes; loads as [`DType::Q4_0`].
    Q4_0 = 2,
    /// ggml `Q4_1` (id 3): blocks of 32 elements in 20 bytes; loads as [`DType::Q4_1`].
    Q4_1 = 3,
    /// ggml `Q5_0` (id 6): blocks of 32 elements in 22 bytes; loads as [`DType::Q5_0`].
    Q5_0 = 6,
    /// ggml `Q5_1` (id 7): blocks of 32 elements in 24 bytes; loads as [`DType::Q5_1`].
    Q5_1 = 7,
    /// ggml `Q8_0` (id 8): blocks of 32 elements in 34 bytes; loads as [`DType::Q8_0`].
    Q8_0 = 8,
    /// ggml `Q8_1` (id 9): blocks of 32 elements in 36 bytes; kiln cannot load it.
    Q8_1 = 9,
    /// ggml `Q2_K` (id 10): blocks of 256 elements in 84 bytes; kiln cannot load it.
    Q2_K = 10,
    /// ggml `Q3_K` (id 11): blocks of 256 elements in 110 bytes; kiln cannot load it.
    Q3_K = 11,
    /// ggml `Q4_K` (id 12): blocks of 256 elements in 144 bytes; loads as [`DType::Q4_K`].
    Q4_K = 12,
    /// ggml `Q5_K` (id 13): blocks of 256 elements in 176 bytes; loads as [`DType::Q5_K`].
    Q5_K = 13,
    /// ggml `Q6_K` (id 14): blocks of 256 elements in 210 bytes; loads as [`DType::Q6_K`].
    Q6_K = 14,
    /// ggml `Q8_K` (id 15): blocks of 256 elements in 292 bytes; kiln cannot load it.
    Q8_K = 15,
    /// ggml `IQ2_XXS` (id 16): blocks of 256 elements in 66 bytes; kiln cannot load it.
    IQ2_XXS = 16,
    /// ggml `IQ2_XS` (id 17): blocks of 256 elements in 74 bytes; kiln cannot load it.
    IQ2_XS = 17,
    /// ggml `IQ3_XXS` (id 18): blocks of 256 elements in 98 bytes; kiln cannot load it.
    IQ3_XXS = 18,
    /// ggml `IQ1_S` (id 19): blocks of 256 elements in 50 bytes; kiln cannot load it.
    IQ1_S = 19,
    /// ggml `IQ4_NL` (id 20): blocks of 32 elements in 18 bytes; kiln cannot load it.
    IQ4_NL = 20,
    /// ggml `IQ3_S` (id 21): blocks of 256 elements in 110 bytes; kiln cannot load it.
    IQ3_S = 21,
    /// ggml `IQ2_S` (id 22): blocks of 256 elements in 82 bytes; kiln cannot load it.
    IQ2_S = 22,
    /// ggml `IQ4_XS` (id 23): blocks of 256 elements in 136 bytes; kiln cannot load it.
    IQ4_XS = 23,
    /// ggml `I8` (id 24): 1 bytes per element; kiln cannot load it.
    I8 = 24,
    /// ggml `I16` (id 25): 2 bytes per element; kiln cannot load it.
    I16 = 25,
    /// ggml `I32` (id 26): 4 bytes per element; kiln cannot load it.
    I32 = 26,
    /// ggml `I64` (id 27): 8 bytes per element; kiln cannot load it.
    I64 = 27,
    /// ggml `F64` (id 28): 8 bytes per element; kiln cannot load it.
    F64 = 28,
    /// ggml `IQ1_M` (id 29): blocks of 256 elements in 56 bytes; kiln cannot load it.
    IQ1_M = 29,
    /// ggml `BF16` (id 30): 2 bytes per element; loads as [`DType::BF16`].
    BF16 = 30,
    /// ggml `TQ1_0` (id 34): blocks of 256 elements in 54 bytes; kiln cannot load it.
    TQ1_0 = 34,
    /// ggml `TQ2_0` (id 35): blocks of 256 elements in 66 bytes; kiln cannot load it.
    TQ2_0 = 35,
    /// ggml `MXFP4` (id 39): blocks of 32 elements in 17 bytes; kiln cannot load it.
    MXFP4 = 39,
    /// ggml `NVFP4` (id 40): blocks of 64 elements in 36 bytes; kiln cannot load it.
    NVFP4 = 40,
    /// ggml `Q1_0` (id 41): blocks of 128 elements in 18 bytes; kiln cannot load it.
    Q1_0 = 41,
}

/// `(type, name, elements per block, bytes per block)`, as in ggml's `type_traits`.
const TABLE: [(GgmlType, &str, u32, u32); 34] = [
    (GgmlType::F32, "F32", 1, 4),
    (GgmlType::F16, "F16", 1, 2),
    (GgmlType::Q4_0, "Q4_0", 32, 18),
    (GgmlType::Q4_1, "Q4_1", 32, 20),
    (GgmlType::Q5_0, "Q5_0", 32, 22),
    (GgmlType::Q5_1, "Q5_1", 32, 24),
    (GgmlType::Q8_0, "Q8_0", 32, 34),
    (GgmlType::Q8_1, "Q8_1", 32, 36),
    (GgmlType::Q2_K, "Q2_K", 256, 84),
    (GgmlType::Q3_K, "Q3_K", 256, 110),
    (GgmlType::Q4_K, "Q4_K", 256, 144),
    (GgmlType::Q5_K, "Q5_K", 256, 176),
    (GgmlType::Q6_K, "Q6_K", 256, 210),
    (GgmlType::Q8_K, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, "IQ4_XS", 256, 136),
    (GgmlType::I8, "I8", 1, 1),
    (GgmlType::I16, "I16", 1, 2),
    (GgmlType::I32, "I32", 1, 4),
    (GgmlType::I64, "I64", 1, 8),
    (GgmlType::F64, "F64", 1, 8),
    (GgmlType::IQ1_M, "IQ1_M", 256, 56),
    (GgmlType::BF16, "BF16", 1, 2),
    (GgmlType::TQ1_0, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, "TQ2_0", 256, 66),
    (GgmlType::MXFP4, "MXFP4", 32, 17),
    (GgmlType::NVFP4, "NVFP4", 64, 36),
    (GgmlType::Q1_0, "Q1_0", 128, 18),
];

impl GgmlType {
    /// Every known type, in id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|t| t.0)
    }

    /// The type of a GGUF type id; `None` for ids ggml does not (or no longer) define.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|t| t.0 as u32 == id).map(|t| t.0)
    }

    /// The id stored in GGUF files.
    pub fn id(self) -> u32 {
        self as u32
    }

    fn entry(self) -> &'static (GgmlType, &'static str, u32, u32) {
        TABLE.iter().find(|t| t.0 == self).expect("every GgmlType is in TABLE")
    }

    /// ggml's name (upper case, e.g. `Q4_K`).
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// Elements per block (1 for dense types).
    pub fn block_size(self) -> u64 {
        self.entry().2 as u64
    }

    /// Bytes per block in the file.
    pub fn type_size(self) -> u64 {
        self.entry().3 as u64
    }

    /// The kiln dtype this type loads as, or `None` when kiln has no kernels for it.
    pub fn dtype(self) -> Option<DType> {
        Some(match self {
            GgmlType::F32 => DType::F32,
            GgmlType::F16 => DType::F16,
            GgmlType::BF16 => DType::BF16,
            GgmlType::Q4_0 => DType::Q4_0,
            GgmlType::Q4_1 => DType::Q4_1,
            GgmlType::Q5_0 => DType::Q5_0,
            GgmlType::Q5_1 => DType::Q5_1,
            GgmlType::Q8_0 => DType::Q8_0,
            GgmlType::Q4_K => DType::Q4_K,
            GgmlType::Q5_K => DType::Q5_K,
            GgmlType::Q6_K => DType::Q6_K,
            _ => return None,
        })
    }

    /// Bytes `numel` elements take in the file, or `None` when `numel` is not a whole
    /// number of blocks or the size overflows.
    pub fn bytes_for(self, numel: u64) -> Option<u64> {
        if !numel.is_multiple_of(self.block_size()) {
            return None;
        }
        (numel / self.block_size()).checked_mul(self.type_size())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_match_kiln_block_layouts() {
        for t in GgmlType::all() {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
            if let Some(d) = t.dtype() {
                assert_eq!(d.block_size() as u64, t.block_size(), "{t}");
                assert_eq!(d.gguf_block_bytes() as u64, t.type_size(), "{t}");
            }
        }
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 42, 1000, u32::MAX] {
            assert_eq!(GgmlType::from_id(removed), None);
        }
    }
}
