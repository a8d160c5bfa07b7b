//! The compiler's error type. Every failure a user can cause ends here, with a message that
//! says what was expected and what was found; nothing in the compiler panics on bad input.

use std::fmt;

/// One node the compiler cannot handle, reported together with all the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedNode {
    /// Node name (ONNX `NodeProto.name`).
    pub node: String,
    /// ONNX op type.
    pub op_type: String,
    /// Op domain; empty for the default `ai.onnx`.
    pub domain: String,
    /// The model's opset version of that domain.
    pub opset: i64,
    /// Why the node cannot be handled.
    pub reason: String,
}

impl fmt::Display for UnsupportedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = if self.domain.is_empty() {
            "ai.onnx"
        } else {
            &self.domain
        };
        write!(
            f,
            "node '{}': op {} ({} opset {}): {}",
            self.node, self.op_type, domain, self.opset, self.reason
        )
    }
}

/// Everything that can go wrong loading, compiling or evaluating a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ONNX model the decoder can read.
    #[error("{path} is not a valid ONNX model: {reason}")]
    NotOnnx {
        /// The model file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nodes the compiler cannot handle, all of them at once.
    #[error("{} unsupported node(s):\n  {}", .0.len(), .0.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("\n  "))]
    Unsupported(Vec<UnsupportedNode>),
    /// The model breaks a rule of the format or of the compiler (a dangling name, no graph, an
    /// unsupported data type, an unknown pass...).
    #[error("invalid model: {0}")]
    Invalid(String),
    /// A tensor's external data cannot be used: a location that leaves the model's folder, a
    /// missing file, a byte range past a file's end or of the wrong size, bad entries.
    #[error("tensor '{tensor}': unusable external data: {reason}")]
    ExternalData {
        /// The tensor (`TensorProto.name`).
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// Typing or evaluating one node failed.
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        /// Node name.
        node: String,
        /// Op name (`Op::name`).
        op: String,
        /// What went wrong (the op's `OpError`).
        msg: String,
    },
    /// Inputs or shapes that do not fit the model (a missing input, a symbolic or wrong shape).
    #[error("{0}")]
    Shape(String),
    /// Any of the above, with the model file it concerns (`Builder::compile`).
    #[error("{path}: {source}")]
    Model {
        /// The model file.
        path: String,
        /// The error raised for it.
        #[source]
        source: Box<Error>,
    },
}

/// `std::result::Result` with the compiler's `Error`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for an error raised while evaluating or typing one op; the caller adds the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError(pub String);

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `std::result::Result` with an `OpError`.
pub type OpResult<T> = std::result::Result<T, OpError>;

/// `bail!`-style helper for op code: `return op_err!("axis {} out of range", a)`.
#[macro_export]
macro_rules! op_err {
    ($($t:tt)*) => { Err($crate::error::OpError(format!($($t)*))) };
}
