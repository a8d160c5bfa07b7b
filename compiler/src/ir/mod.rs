//! The compiler's intermediate representation: a graph of typed ops over typed values.
//!
//! The tensor and element types live in `tensor` (so `ops` can use them without the graph);
//! they are re-exported here.

mod graph;

pub use crate::tensor::{bounded_numel, checked_numel, numel, DType, Elem, Tensor, MAX_ELEMS};
pub use graph::{Dim, Graph, ModelMeta, Node, TensorType, Value, ValueId};
