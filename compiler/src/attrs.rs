//! Node attributes as the ops read them: a name and a value that carries its declared type,
//! independent of any file format.
//!
//! The front end (`onnx`) converts each node's attributes into `Attrs`; the op families'
//! `parse*` functions read them through typed getters. A value is only checked against the
//! type an op asks for when the op reads it, so an attribute no op reads is never an error.

use crate::tensor::Tensor;

/// One attribute of a node.
#[derive(Clone, Debug)]
pub struct Attr {
    /// Attribute name.
    pub name: String,
    /// Attribute value.
    pub value: AttrValue,
}

/// An attribute value, tagged with its declared type.
#[derive(Clone, Debug)]
pub enum AttrValue {
    /// One integer.
    Int(i64),
    /// One float.
    Float(f32),
    /// The bytes as stored; `Attrs::string` checks that they are UTF-8.
    String(Vec<u8>),
    /// A list of integers.
    Ints(Vec<i64>),
    /// The decoded tensor, or why it could not be decoded (an error once an op reads it).
    Tensor(Result<Tensor, String>),
    /// No declared type: every getter accepts it and reads the field of its own type.
    Untyped(Box<Untyped>),
    /// A declared type no op reads (floats, graphs, lists of strings, ...), by its name;
    /// `unknown` for a type code the format does not define.
    Other(String),
}

/// The fields of an attribute without a declared type, one per type a getter can ask for.
#[derive(Clone, Debug)]
pub struct Untyped {
    /// The integer field.
    pub int: i64,
    /// The float field.
    pub float: f32,
    /// The byte-string field.
    pub string: Vec<u8>,
    /// The integer-list field.
    pub ints: Vec<i64>,
    /// The tensor field, decoded, or why it could not be (an error once an op reads it).
    pub tensor: Result<Tensor, String>,
}

impl AttrValue {
    /// The declared type's name, for messages.
    pub fn type_name(&self) -> &str {
        match self {
            AttrValue::Int(_) => "Int",
            AttrValue::Float(_) => "Float",
            AttrValue::String(_) => "String",
            AttrValue::Ints(_) => "Ints",
            AttrValue::Tensor(_) => "Tensor",
            AttrValue::Untyped(_) => "Undefined",
            AttrValue::Other(name) => name,
        }
    }
}

/// The attributes of one node, with typed access. Missing attributes are `Ok(None)`.
#[derive(Clone, Debug, Default)]
pub struct Attrs(pub Vec<Attr>);

impl Attrs {
    /// Rejects attributes outside `known`, so a misspelt or newer attribute is not ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        for a in &self.0 {
            if !known.contains(&a.name.as_str()) {
                return Err(format!("unexpected attribute '{}'", a.name));
            }
        }
        Ok(())
    }

    /// The first attribute called `name`, read by `read`; `Err` when `read` refuses its
    /// declared type (`want` names the type asked for).
    fn get<'s, T>(
        &'s self,
        name: &str,
        want: &str,
        read: impl FnOnce(&'s AttrValue) -> Option<T>,
    ) -> Result<Option<T>, String> {
        match self.0.iter().find(|a| a.name == name) {
            None => Ok(None),
            Some(a) => read(&a.value).map(Some).ok_or_else(|| {
                format!(
                    "attribute '{name}' should be {want}, found {:?}",
                    a.value.type_name()
                )
            }),
        }
    }

    /// Integer attribute `name`, if present.
    pub fn int(&self, name: &str) -> Result<Option<i64>, String> {
        self.get(name, "Int", |v| match v {
            AttrValue::Int(i) => Some(*i),
            AttrValue::Untyped(u) => Some(u.int),
            _ => None,
        })
    }

    /// Integer attribute `name`, or `default` when absent.
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, String> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// Float attribute `name`, or `default` when absent.
    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, String> {
        let f = self.get(name, "Float", |v| match v {
            AttrValue::Float(f) => Some(*f),
            AttrValue::Untyped(u) => Some(u.float),
            _ => None,
        })?;
        Ok(f.unwrap_or(default))
    }

    /// String attribute `name`, if present (must be UTF-8).
    pub fn string(&self, name: &str) -> Result<Option<String>, String> {
        self.get(name, "String", |v| match v {
            AttrValue::String(s) => Some(s),
            AttrValue::Untyped(u) => Some(&u.string),
            _ => None,
        })?
        .map(|s| {
            String::from_utf8(s.clone()).map_err(|_| format!("attribute '{name}' is not UTF-8"))
        })
        .transpose()
    }

    /// Integer-list attribute `name`, if present.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        self.get(name, "Ints", |v| match v {
            AttrValue::Ints(i) => Some(i.clone()),
            AttrValue::Untyped(u) => Some(u.ints.clone()),
            _ => None,
        })
    }

    /// Tensor attribute `name`, if present (`Err` if it could not be decoded).
    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>, String> {
        self.get(name, "Tensor", |v| match v {
            AttrValue::Tensor(t) => Some(t),
            AttrValue::Untyped(u) => Some(&u.tensor),
            _ => None,
        })?
        .cloned()
        .transpose()
    }
}
