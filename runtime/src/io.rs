//! Descriptions of a generated model's interface.

/// Element type of a model input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// `f32`.
    F32,
    /// `i64` (token ids; bools are stored as 0/1).
    I64,
}

/// A named tensor of the model's interface, with its static shape.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo {
    /// The ONNX name.
    pub name: &'static str,
    /// The element type.
    pub dtype: DType,
    /// The static shape the model was specialized to.
    pub shape: &'static [usize],
}

impl TensorInfo {
    /// Elements in the tensor.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Borrowed tensor data of either element type.
#[derive(Clone, Copy, Debug)]
pub enum TensorRef<'a> {
    /// f32 data.
    F32(&'a [f32]),
    /// i64 data.
    I64(&'a [i64]),
}

impl TensorRef<'_> {
    /// Elements.
    pub fn len(&self) -> usize {
        match self {
            TensorRef::F32(s) => s.len(),
            TensorRef::I64(s) => s.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorRef::F32(_) => DType::F32,
            TensorRef::I64(_) => DType::I64,
        }
    }
}

/// The configuration of a GPT-2 LM-head model, when the compiler recognised one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpt2Config {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Vocabulary size: logits per row.
    pub vocab: usize,
    /// Context length the model was built for (its position embeddings).
    pub n_ctx: usize,
}
