//! Element types the IR supports, with their ONNX `TensorProto.DataType` codes.

use std::fmt;

/// An element type of the IR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 32-bit float (ONNX `FLOAT`, code 1).
    F32,
    /// 64-bit float (ONNX `DOUBLE`, code 11).
    F64,
    /// 64-bit signed integer (ONNX `INT64`, code 7).
    I64,
    /// 32-bit signed integer (ONNX `INT32`, code 6).
    I32,
    /// 8-bit signed integer (ONNX `INT8`, code 3).
    I8,
    /// 8-bit unsigned integer (ONNX `UINT8`, code 2).
    U8,
    /// Boolean, one byte per element (ONNX `BOOL`, code 9).
    Bool,
}

impl DType {
    /// Maps an ONNX data type code; `Err` carries the ONNX name of an unsupported type.
    pub fn from_onnx(code: i32) -> Result<DType, &'static str> {
        Ok(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            6 => DType::I32,
            7 => DType::I64,
            9 => DType::Bool,
            11 => DType::F64,
            0 => return Err("UNDEFINED"),
            4 => return Err("UINT16"),
            5 => return Err("INT16"),
            8 => return Err("STRING"),
            10 => return Err("FLOAT16"),
            12 => return Err("UINT32"),
            13 => return Err("UINT64"),
            14 => return Err("COMPLEX64"),
            15 => return Err("COMPLEX128"),
            16 => return Err("BFLOAT16"),
            _ => return Err("an unknown data type"),
        })
    }

    /// The ONNX `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F64 => 11,
        }
    }

    /// Bytes per element in the little-endian raw layout ONNX uses.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Whether it is f32 or f64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// Rust-style name, e.g. `f32`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
