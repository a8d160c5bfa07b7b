//! The compiler's intermediate representation: a graph of typed ops over typed values.

mod dtype;
mod graph;
mod tensor;

pub use dtype::DType;
pub use graph::{Dim, Graph, ModelMeta, Node, TensorType, Value, ValueId};
pub use tensor::{bounded_numel, checked_numel, numel, Elem, Tensor, MAX_ELEMS};
