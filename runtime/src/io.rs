//! Descriptions of a generated model's interface.

/// Element type of a model input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    I64,
}

/// A named tensor of the model's interface, with its static shape.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo {
    pub name: &'static str,
    pub dtype: DType,
    pub shape: &'static [usize],
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Borrowed tensor data of either element type.
#[derive(Clone, Copy, Debug)]
pub enum TensorRef<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

impl TensorRef<'_> {
    pub fn len(&self) -> usize {
        match self {
            TensorRef::F32(s) => s.len(),
            TensorRef::I64(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub vocab: usize,
    pub n_ctx: usize,
}
