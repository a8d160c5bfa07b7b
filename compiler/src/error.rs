//! The compiler's error type. Every failure a user can cause ends here, with a message that
//! says what was expected and what was found; nothing in the compiler panics on bad input.

use std::fmt;

/// One node the compiler cannot handle, reported together with all the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedNode {
    pub node: String,
    pub op_type: String,
    pub domain: String,
    pub opset: i64,
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid ONNX model: {reason}")]
    NotOnnx { path: String, reason: String },
    #[error("{} unsupported node(s):\n  {}", .0.len(), .0.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("\n  "))]
    Unsupported(Vec<UnsupportedNode>),
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        node: String,
        op: String,
        msg: String,
    },
    #[error("{0}")]
    Shape(String),
    /// Any of the above, with the model file it concerns (`Builder::compile`).
    #[error("{path}: {source}")]
    Model {
        path: String,
        #[source]
        source: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for an error raised while evaluating or typing one op; the caller adds the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError(pub String);

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type OpResult<T> = std::result::Result<T, OpError>;

/// `bail!`-style helper for op code: `return op_err!("axis {} out of range", a)`.
#[macro_export]
macro_rules! op_err {
    ($($t:tt)*) => { Err($crate::error::OpError(format!($($t)*))) };
}
