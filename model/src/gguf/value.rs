//! GGUF metadata values: the thirteen value types of the format, arrays typed (and
//! nestable) as the file stores them.

use std::fmt;

/// The type id of a metadata value (`gguf_metadata_value_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgufValueType {
    /// `uint8` (type id 0): unsigned 8-bit integer.
    U8 = 0,
    /// `int8` (type id 1): signed 8-bit integer.
    I8 = 1,
    /// `uint16` (type id 2): unsigned 16-bit integer.
    U16 = 2,
    /// `int16` (type id 3): signed 16-bit integer.
    I16 = 3,
    /// `uint32` (type id 4): unsigned 32-bit integer.
    U32 = 4,
    /// `int32` (type id 5): signed 32-bit integer.
    I32 = 5,
    /// `float32` (type id 6): 32-bit IEEE float.
    F32 = 6,
    /// `bool` (type id 7): a boolean stored as one byte.
    Bool = 7,
    /// `string` (type id 8): a UTF-8 string with a u64 byte length.
    String = 8,
    /// `array` (type id 9): an array: u32 element type, u64 count, then the elements.
    Array = 9,
    /// `uint64` (type id 10): unsigned 64-bit integer.
    U64 = 10,
    /// `int64` (type id 11): signed 64-bit integer.
    I64 = 11,
    /// `float64` (type id 12): 64-bit IEEE float.
    F64 = 12,
}

impl GgufValueType {
    /// The type with GGUF type id `id`, or `None` for an id outside 0..=12.
    pub fn from_id(id: u32) -> Option<GgufValueType> {
        use GgufValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The GGUF type id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The GGUF specification's name (`uint32`, `string`, …).
    pub fn name(self) -> &'static str {
        use GgufValueType::*;
        match self {
            U8 => "uint8",
            I8 => "int8",
            U16 => "uint16",
            I16 => "int16",
            U32 => "uint32",
            I32 => "int32",
            F32 => "float32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "uint64",
            I64 => "int64",
            F64 => "float64",
        }
    }

    /// Bytes of a value of this type when its size is fixed.
    pub fn fixed_size(self) -> Option<usize> {
        use GgufValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes one value of this type can take in a file: a string is at least
    /// its u64 length, an array its u32 element type and u64 count.
    pub fn min_size(self) -> usize {
        match self {
            GgufValueType::String => 8,
            GgufValueType::Array => 12,
            fixed => fixed.fixed_size().expect("fixed-size type"),
        }
    }
}

impl fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// A GGUF `uint8` value.
    U8(u8),
    /// A GGUF `int8` value.
    I8(i8),
    /// A GGUF `uint16` value.
    U16(u16),
    /// A GGUF `int16` value.
    I16(i16),
    /// A GGUF `uint32` value.
    U32(u32),
    /// A GGUF `int32` value.
    I32(i32),
    /// A GGUF `float32` value.
    F32(f32),
    /// A GGUF `bool` value.
    Bool(bool),
    /// A GGUF `string` value.
    String(String),
    /// A GGUF `array` value.
    Array(GgufArray),
    /// A GGUF `uint64` value.
    U64(u64),
    /// A GGUF `int64` value.
    I64(i64),
    /// A GGUF `float64` value.
    F64(f64),
}

/// A metadata array: all elements of one type, stored as a vector of that type.
/// Arrays of arrays hold each inner array with its own element type.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufArray {
    /// An array of `uint8` elements.
    U8(Vec<u8>),
    /// An array of `int8` elements.
    I8(Vec<i8>),
    /// An array of `uint16` elements.
    U16(Vec<u16>),
    /// An array of `int16` elements.
    I16(Vec<i16>),
    /// An array of `uint32` elements.
    U32(Vec<u32>),
    /// An array of `int32` elements.
    I32(Vec<i32>),
    /// An array of `float32` elements.
    F32(Vec<f32>),
    /// An array of `bool` elements.
    Bool(Vec<bool>),
    /// An array of `string` elements.
    String(Vec<String>),
    /// An array of arrays (each with its own element type).
    Array(Vec<GgufArray>),
    /// An array of `uint64` elements.
    U64(Vec<u64>),
    /// An array of `int64` elements.
    I64(Vec<i64>),
    /// An array of `float64` elements.
    F64(Vec<f64>),
}

impl GgufValue {
    /// The value's GGUF type.
    pub fn value_type(&self) -> GgufValueType {
        use GgufValue as V;
        use GgufValueType as T;
        match self {
            V::U8(_) => T::U8,
            V::I8(_) => T::I8,
            V::U16(_) => T::U16,
            V::I16(_) => T::I16,
            V::U32(_) => T::U32,
            V::I32(_) => T::I32,
            V::F32(_) => T::F32,
            V::Bool(_) => T::Bool,
            V::String(_) => T::String,
            V::Array(_) => T::Array,
            V::U64(_) => T::U64,
            V::I64(_) => T::I64,
            V::F64(_) => T::F64,
        }
    }

    /// An integer value of any width, widened to i128 (which holds them all).
    pub fn as_int(&self) -> Option<i128> {
        use GgufValue as V;
        Some(match *self {
            V::U8(x) => x as i128,
            V::I8(x) => x as i128,
            V::U16(x) => x as i128,
            V::I16(x) => x as i128,
            V::U32(x) => x as i128,
            V::I32(x) => x as i128,
            V::U64(x) => x as i128,
            V::I64(x) => x as i128,
            _ => return None,
        })
    }

    /// A float value, or an integer converted to f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(x) => Some(x as f64),
            GgufValue::F64(x) => Some(x),
            _ => self.as_int().map(|i| i as f64),
        }
    }

    /// The string, or `None` when the value is not a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, or `None` when the value is not a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The array, or `None` when the value is not an array.
    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description for messages: the type and (for scalars) the value, strings
    /// and arrays abbreviated.
    pub fn describe(&self) -> String {
        match self {
            GgufValue::String(s) => {
                let mut short: String = s.chars().take(40).collect();
                if short.len() < s.len() {
                    short.push('…');
                }
                format!("string {short:?}")
            }
            GgufValue::Array(a) => a.describe(),
            GgufValue::F32(x) => format!("float32 {x}"),
            GgufValue::F64(x) => format!("float64 {x}"),
            GgufValue::Bool(b) => format!("bool {b}"),
            other => format!("{} {}", other.value_type(), other.as_int().expect("integer")),
        }
    }
}

impl GgufArray {
    /// The GGUF type of the elements.
    pub fn element_type(&self) -> GgufValueType {
        use GgufArray as A;
        use GgufValueType as T;
        match self {
            A::U8(_) => T::U8,
            A::I8(_) => T::I8,
            A::U16(_) => T::U16,
            A::I16(_) => T::I16,
            A::U32(_) => T::U32,
            A::I32(_) => T::I32,
            A::F32(_) => T::F32,
            A::Bool(_) => T::Bool,
            A::String(_) => T::String,
            A::Array(_) => T::Array,
            A::U64(_) => T::U64,
            A::I64(_) => T::I64,
            A::F64(_) => T::F64,
        }
    }

    /// Number of elements (inner arrays count as one each).
    pub fn len(&self) -> usize {
        use GgufArray as A;
        match self {
            A::U8(v) => v.len(),
            A::I8(v) => v.len(),
            A::U16(v) => v.len(),
            A::I16(v) => v.len(),
            A::U32(v) => v.len(),
            A::I32(v) => v.len(),
            A::F32(v) => v.len(),
            A::Bool(v) => v.len(),
            A::String(v) => v.len(),
            A::Array(v) => v.len(),
            A::U64(v) => v.len(),
            A::I64(v) => v.len(),
            A::F64(v) => v.len(),
        }
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as integers (widened to i128), or `None` when the elements are not
    /// integers.
    pub fn ints(&self) -> Option<Box<dyn Iterator<Item = i128> + '_>> {
        use GgufArray as A;
        Some(match self {
            A::U8(v) => Box::new(v.iter().map(|&x| x as i128)),
            A::I8(v) => Box::new(v.iter().map(|&x| x as i128)),
            A::U16(v) => Box::new(v.iter().map(|&x| x as i128)),
            A::I16(v) => Box::new(v.iter().map(|&x| x as i128)),
            A::U32(v) => Box::new(v.iter().map(|&x| x as i128)),
            A::I32(v) => Box::new(v.iter().map(|&x| x as i128)),
            A::U64(v) => Box::new(v.iter().map(|&x| x as i128)),
            A::I64(v) => Box::new(v.iter().map(|&x| x as i128)),
            _ => return None,
        })
    }

    /// e.g. `array of 3 string`, `array of 2 array`.
    pub fn describe(&self) -> String {
        format!("array of {} {}", self.len(), self.element_type())
    }
}
