//! The part of `onnx.proto` (IR version 3..10) the compiler reads, as prost messages.
//!
//! Written by hand from the schema so the build needs no `protoc`. Fields we do not model
//! (training info, sparse tensors, sequence/map types) are skipped by prost as unknown
//! fields; model-local functions are read so the importer can inline them. Every `bytes` field is a `bytes::Bytes`: decoding from a `Bytes` buffer
//! slices it instead of copying, so weight data stays in the one file buffer.

use bytes::Bytes;

/// A complete ONNX model: the main graph plus metadata and model-local functions.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// ONNX IR (file format) version the model was written for.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// Operator sets (domain, version) the graph's nodes are resolved against.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Name of the tool that wrote the model, e.g. `pytorch`.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// Version of that tool.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// Reverse-DNS namespace of the model.
    #[prost(string, tag = "4")]
    pub domain: String,
    /// The model's own version number.
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    /// Free-form documentation of the model.
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// The main computation graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Model-local functions (IR version 8+), called by nodes of their domain and name.
    #[prost(message, repeated, tag = "25")]
    pub functions: Vec<FunctionProto>,
}

/// A model-local function: a named node list that calling nodes stand for.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionProto {
    /// Function name; nodes call it with this `op_type`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Formal input names, bound to the calling node's inputs by position.
    #[prost(string, repeated, tag = "4")]
    pub input: Vec<String>,
    /// Formal output names, bound to the calling node's outputs by position.
    #[prost(string, repeated, tag = "5")]
    pub output: Vec<String>,
    /// Attribute names without defaults.
    #[prost(string, repeated, tag = "6")]
    pub attribute: Vec<String>,
    /// Attributes with their default values.
    #[prost(message, repeated, tag = "11")]
    pub attribute_proto: Vec<AttributeProto>,
    /// The body, in topological order.
    #[prost(message, repeated, tag = "7")]
    pub node: Vec<NodeProto>,
    /// Operator sets the body's nodes are resolved against.
    #[prost(message, repeated, tag = "9")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Domain that calling nodes name.
    #[prost(string, tag = "10")]
    pub domain: String,
    /// Distinguishes functions of the same domain and name (IR version 10).
    #[prost(string, tag = "13")]
    pub overload: String,
}

/// One imported operator set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// Operator set domain; empty means the default `ai.onnx`.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Opset version of that domain.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// A computation graph: nodes, weights and the graph's inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// The nodes, in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (the weights), referred to by name.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Free-form documentation of the graph.
    #[prost(string, tag = "10")]
    pub doc_string: String,
    /// Graph inputs; before IR version 4 these also list the initializers.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// Declared types and shapes of intermediate values, where known.
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

/// One operator call in a graph or function body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Names of the input values; an empty name marks an omitted optional input.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Names of the values the node produces.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name (optional, for diagnostics).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator name, e.g. `MatMul`.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Operator set domain; empty means the default `ai.onnx`.
    #[prost(string, tag = "7")]
    pub domain: String,
    /// The node's attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// Free-form documentation of the node.
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// Which overload of a model-local function the node calls.
    #[prost(string, tag = "8")]
    pub overload: String,
}

/// `AttributeProto.AttributeType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    /// No type recorded.
    Undefined = 0,
    /// One float, in `f`.
    Float = 1,
    /// One integer, in `i`.
    Int = 2,
    /// One byte string, in `s`.
    String = 3,
    /// One tensor, in `t`.
    Tensor = 4,
    /// One subgraph, in `g`.
    Graph = 5,
    /// One sparse tensor (not modelled).
    SparseTensor = 11,
    /// One type (not modelled).
    TypeProto = 13,
    /// A list of floats, in `floats`.
    Floats = 6,
    /// A list of integers, in `ints`.
    Ints = 7,
    /// A list of byte strings, in `strings`.
    Strings = 8,
    /// A list of tensors, in `tensors`.
    Tensors = 9,
    /// A list of subgraphs, in `graphs`.
    Graphs = 10,
    /// A list of sparse tensors (not modelled).
    SparseTensors = 12,
    /// A list of types (not modelled).
    TypeProtos = 14,
}

/// A named node attribute; `type` says which value field holds it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Inside a function body: the calling node's attribute this one takes its value from
    /// (empty otherwise).
    #[prost(string, tag = "21")]
    pub ref_attr_name: String,
    /// Free-form documentation of the attribute.
    #[prost(string, tag = "13")]
    pub doc_string: String,
    /// The value's kind, an `AttributeType` as its wire `i32`.
    #[prost(enumeration = "AttributeType", tag = "20")]
    pub r#type: i32,
    /// Value of a `Float` attribute.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// Value of an `Int` attribute.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// Value of a `String` attribute, as raw bytes (UTF-8 by convention).
    #[prost(bytes = "bytes", tag = "4")]
    pub s: Bytes,
    /// Value of a `Tensor` attribute.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// Value of a `Graph` attribute.
    #[prost(message, optional, boxed, tag = "6")]
    pub g: Option<Box<GraphProto>>,
    /// Value of a `Floats` attribute.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// Value of an `Ints` attribute.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// Value of a `Strings` attribute.
    #[prost(bytes = "bytes", repeated, tag = "9")]
    pub strings: Vec<Bytes>,
    /// Value of a `Tensors` attribute.
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    /// Value of a `Graphs` attribute.
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
}

/// Name and declared type of a graph input, output or intermediate value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Declared type, if any.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// Free-form documentation of the value.
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

/// The type of a value; only tensor types are modelled.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// Only the `tensor_type` arm of the `value` oneof; other arms are skipped.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
    /// Optional semantic denotation of the type, e.g. `TENSOR`.
    #[prost(string, tag = "6")]
    pub denotation: String,
}

/// `TypeProto.Tensor`: element type and (possibly symbolic) shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProtoTensor {
    /// Element type, a `TensorProto.DataType` code (1 = float, 7 = int64, ...).
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// Shape; absent means the rank is unknown.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// A tensor shape, one `Dimension` per axis.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// The axes, outermost first.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: one axis, a fixed size or a symbolic name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// Size or symbolic name; absent if unknown.
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    pub value: Option<DimensionValue>,
    /// Optional semantic denotation of the axis, e.g. `DATA_BATCH`.
    #[prost(string, tag = "3")]
    pub denotation: String,
}

/// The `value` oneof of a `Dimension`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimensionValue {
    /// A fixed size.
    #[prost(int64, tag = "1")]
    DimValue(i64),
    /// A symbolic size such as `batch_size`, the same wherever the name recurs.
    #[prost(string, tag = "2")]
    DimParam(String),
}

/// A tensor value (initializer, `Constant` or attribute tensor); its elements are in one of the
/// typed `*_data` fields, in `raw_data`, or in an external file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Shape, outermost axis first; empty for a scalar.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type, a `TensorProto.DataType` code (1 = float, 7 = int64, ...).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Elements of `float` (and `complex64`) tensors.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Elements of int32 and narrower integer, bool and float16 tensors (float16 as bit patterns).
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// Elements of string tensors.
    #[prost(bytes = "bytes", repeated, tag = "6")]
    pub string_data: Vec<Bytes>,
    /// Elements of int64 tensors.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// Tensor name; nodes refer to an initializer by it.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Free-form documentation of the tensor.
    #[prost(string, tag = "12")]
    pub doc_string: String,
    /// Elements as packed little-endian bytes; when set, the typed `*_data` fields are empty.
    #[prost(bytes = "bytes", tag = "9")]
    pub raw_data: Bytes,
    /// Where the elements are stored when `data_location` is external: `location` (file path
    /// relative to the model), `offset`, `length` and `checksum` entries.
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// `0` = elements in this message, `1` = external (see `external_data`).
    #[prost(int32, tag = "14")]
    pub data_location: i32,
    /// Elements of double (and `complex128`) tensors.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// Elements of uint32 and uint64 tensors.
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
    /// `segment` (tag 3) marks a tensor split across messages; we refuse those.
    #[prost(message, optional, tag = "3")]
    pub segment: Option<TensorSegment>,
}

/// The element range one message of a split tensor holds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorSegment {
    /// Index of the segment's first element.
    #[prost(int64, tag = "1")]
    pub begin: i64,
    /// End index of the segment.
    #[prost(int64, tag = "2")]
    pub end: i64,
}

/// A string key-value pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}
