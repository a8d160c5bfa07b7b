//! Tensors with data and their element types: constants in the IR, attribute values, and
//! the values the ops and the interpreter compute on. Below both `ir` and `ops`, which
//! import it; `ir` re-exports it.
//!
//! The data is a `Bytes` in ONNX's raw little-endian layout. For initializers it is a slice of
//! the model file's buffer (no copy); computed tensors own their bytes. Typed access copies
//! into a `Vec`, which keeps the code free of alignment assumptions about the file.

mod dtype;

pub use dtype::DType;

use crate::error::{OpError, OpResult};
use bytes::Bytes;
use std::fmt;

#[cfg(target_endian = "big")]
compile_error!(
    "gpt2c reads ONNX's little-endian tensor data in place; big-endian hosts are not supported"
);

/// A Rust scalar type with an IR `DType`.
pub trait Elem: Copy + Default + PartialEq + fmt::Debug + 'static {
    /// The `DType` of `Self`.
    const DTYPE: DType;
    /// Reads one element from its little-endian bytes.
    fn read_le(b: &[u8]) -> Self;
    /// Appends the element's little-endian bytes to `out`.
    fn write_le(self, out: &mut Vec<u8>);
}

macro_rules! elem {
    ($t:ty, $d:expr) => {
        impl Elem for $t {
            const DTYPE: DType = $d;
            fn read_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("chunk of element size"))
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
elem!(f32, DType::F32);
elem!(f64, DType::F64);
elem!(i64, DType::I64);
elem!(i32, DType::I32);
elem!(i8, DType::I8);
elem!(u8, DType::U8);

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    fn read_le(b: &[u8]) -> Self {
        b[0] != 0
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
}

/// A dense tensor: element type, shape and the elements row-major as little-endian bytes
/// (shared `Bytes`, so a weight can be a slice of the model file).
#[derive(Clone, PartialEq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Bytes,
}

/// Number of elements of a tensor of this shape (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// `numel` that refuses overflow, for shapes read from files.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Most elements a tensor may have: 2^40, far above any real model (GPT-2 XL's largest
/// tensor has 8·10^7) and low enough that no size, stride or offset computed from a shape
/// can overflow.
pub const MAX_ELEMS: usize = 1 << 40;

/// `numel` of a shape the IR can hold: `None` when the product of its dims, a zero dim
/// counted as one (so every stride is bounded too), exceeds `MAX_ELEMS`.
pub fn bounded_numel(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d.max(1)))
        .filter(|&n| n <= MAX_ELEMS)?;
    checked_numel(shape)
}

impl Tensor {
    /// Wraps raw little-endian bytes; checks that their length fits the shape.
    pub fn from_raw(dtype: DType, shape: Vec<usize>, data: Bytes) -> OpResult<Tensor> {
        let want = checked_numel(&shape).and_then(|n| n.checked_mul(dtype.size()));
        if want != Some(data.len()) {
            return Err(OpError(format!(
                "{} tensor of shape {:?} needs {} bytes of data, found {}",
                dtype,
                shape,
                want.map_or("too many".to_string(), |n| n.to_string()),
                data.len()
            )));
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// A tensor of `shape` from its elements in row-major order; panics if their count differs.
    pub fn from_vec<T: Elem>(shape: Vec<usize>, v: Vec<T>) -> Tensor {
        assert_eq!(
            numel(&shape),
            v.len(),
            "tensor data does not fit shape {shape:?}"
        );
        let mut out = Vec::with_capacity(v.len() * T::DTYPE.size());
        for x in v {
            x.write_le(&mut out);
        }
        Tensor {
            dtype: T::DTYPE,
            shape,
            data: Bytes::from(out),
        }
    }

    /// A rank-0 tensor holding `x`.
    pub fn scalar<T: Elem>(x: T) -> Tensor {
        Tensor::from_vec(vec![], vec![x])
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// The elements, row-major, as little-endian bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }
    /// Says the compiler is done reading the elements for now: if they are bytes of a mapped
    /// model file, their resident pages are dropped (`crate::mapped::release`). They stay
    /// readable.
    pub fn release_pages(&self) {
        crate::mapped::release(&self.data);
    }
    /// Size of the data in bytes.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// Same data, new shape (element counts must agree).
    pub fn reshaped(&self, shape: Vec<usize>) -> Tensor {
        assert_eq!(numel(&shape), self.numel());
        Tensor {
            dtype: self.dtype,
            shape,
            data: self.data.clone(),
        }
    }

    /// Copies the elements out as `T`; `T` must be the tensor's dtype.
    pub fn to_vec<T: Elem>(&self) -> OpResult<Vec<T>> {
        if self.dtype != T::DTYPE {
            return Err(OpError(format!(
                "expected a {} tensor, found {}",
                T::DTYPE,
                self.dtype
            )));
        }
        Ok(self
            .data
            .chunks_exact(self.dtype.size())
            .map(T::read_le)
            .collect())
    }

    /// Integer tensor (i64 or i32) as i64s: for shapes, indices and axes.
    pub fn to_i64s(&self) -> OpResult<Vec<i64>> {
        match self.dtype {
            DType::I64 => self.to_vec::<i64>(),
            DType::I32 => Ok(self.to_vec::<i32>()?.into_iter().map(i64::from).collect()),
            d => Err(OpError(format!("expected an integer tensor, found {d}"))),
        }
    }

    /// Element `i` as f64, whatever the dtype: for printing and comparisons.
    pub fn get_f64(&self, i: usize) -> f64 {
        let s = self.dtype.size();
        let b = &self.data[i * s..(i + 1) * s];
        match self.dtype {
            DType::F32 => f32::read_le(b) as f64,
            DType::F64 => f64::read_le(b),
            DType::I64 => i64::read_le(b) as f64,
            DType::I32 => i32::read_le(b) as f64,
            DType::I8 => i8::read_le(b) as f64,
            DType::U8 => b[0] as f64,
            DType::Bool => (b[0] != 0) as u8 as f64,
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.dtype, self.shape)?;
        let n = self.numel();
        if n <= 8 {
            let vals: Vec<String> = (0..n).map(|i| format!("{}", self.get_f64(i))).collect();
            write!(f, " [{}]", vals.join(", "))?;
        }
        Ok(())
    }
}
