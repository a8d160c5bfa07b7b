//! ONNX external data: tensors whose bytes live in other files beside the model, the
//! standard layout for models over protobuf's 2 GB limit (onnx.proto's `TensorProto`,
//! `docs/ExternalData.md` and `onnx/external_data_helper.py` of the ONNX repository).
//!
//! A tensor with `data_location = EXTERNAL` names its bytes with `external_data` entries:
//! `location` (required: a path relative to the folder of the model file), `offset`
//! (optional, default 0) and `length` (optional: to the end of the file when absent), both
//! decimal byte counts. `checksum` and `basepath` are accepted and ignored, as onnx does,
//! and so are keys onnx does not define (onnx warns about them).
//!
//! Resolution maps each file once and makes the tensor's `raw_data` a slice of the mapping:
//! the weights are not copied. The model's author is not trusted: a location must be
//! relative, without `..`, and must still resolve inside the model's folder after symlinks
//! are followed; it must be a regular file; the byte range must lie inside it and be exactly
//! the tensor's size. Anything else is an `Error::ExternalData` naming the tensor.

use super::proto::{AttributeProto, GraphProto, ModelProto, TensorProto};
use crate::error::{Error, Result};
use crate::ir::DType;
use crate::mapped::map_file;
use bytes::Bytes;
use std::path::{Component, Path, PathBuf};

/// `TensorProto.DataLocation.EXTERNAL`.
pub const EXTERNAL: i32 = 1;

/// One external-data file a model uses, as mapped.
#[derive(Clone, Debug)]
pub struct DataFile {
    /// The file, canonical (symlinks resolved).
    pub path: PathBuf,
    /// Its bytes (the mapping).
    pub data: Bytes,
}

/// Resolves every external tensor of `model` (initializers, attribute tensors, subgraphs and
/// function bodies) against the folder of `model_path`: afterwards each one holds its bytes
/// in `raw_data` and is no longer marked external. Returns the files used, each mapped once.
/// A model without external data is left alone and touches no file.
pub fn resolve(model: &mut ModelProto, model_path: &Path) -> Result<Vec<DataFile>> {
    let mut files = Files {
        model_path,
        dir: None,
        mapped: Vec::new(),
    };
    if let Some(g) = model.graph.as_mut() {
        visit_graph(g, &mut |t| files.resolve(t))?;
    }
    for f in &mut model.functions {
        for n in &mut f.node {
            visit_attributes(&mut n.attribute, &mut |t| files.resolve(t))?;
        }
        visit_attributes(&mut f.attribute_proto, &mut |t| files.resolve(t))?;
    }
    Ok(files.mapped)
}

type Visit<'a> = dyn FnMut(&mut TensorProto) -> Result<()> + 'a;

fn visit_graph(g: &mut GraphProto, f: &mut Visit) -> Result<()> {
    for t in &mut g.initializer {
        f(t)?;
    }
    for n in &mut g.node {
        visit_attributes(&mut n.attribute, f)?;
    }
    Ok(())
}

fn visit_attributes(attributes: &mut [AttributeProto], f: &mut Visit) -> Result<()> {
    for a in attributes {
        if let Some(t) = a.t.as_mut() {
            f(t)?;
        }
        for t in &mut a.tensors {
            f(t)?;
        }
        if let Some(g) = a.g.as_mut() {
            visit_graph(g, f)?;
        }
        for g in &mut a.graphs {
            visit_graph(g, f)?;
        }
    }
    Ok(())
}

/// The `external_data` entries of one tensor.
#[derive(Debug, Default, PartialEq, Eq)]
struct Entries {
    location: String,
    offset: u64,
    length: Option<u64>,
}

fn parse_entries(t: &TensorProto) -> std::result::Result<Entries, String> {
    let mut location = None;
    let (mut offset, mut length) = (None, None);
    for e in &t.external_data {
        let slot = match e.key.as_str() {
            "location" => {
                if location.replace(e.value.clone()).is_some() {
                    return Err("the key 'location' appears twice".into());
                }
                continue;
            }
            "offset" => &mut offset,
            "length" => &mut length,
            _ => continue, // checksum, basepath, keys onnx does not define
        };
        let n = byte_count(&e.value)
            .ok_or_else(|| format!("'{}' is '{}', expected a byte count", e.key, e.value))?;
        if slot.replace(n).is_some() {
            return Err(format!("the key '{}' appears twice", e.key));
        }
    }
    let location = location.ok_or("it has no 'location' entry")?;
    Ok(Entries {
        location,
        offset: offset.unwrap_or(0),
        length,
    })
}

/// A decimal byte count as onnx writes it (`str(int)`): digits only.
fn byte_count(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Checks a location's form before it touches the file system: relative, no `..`, no NUL.
fn check_location(location: &str) -> std::result::Result<&Path, String> {
    if location.is_empty() {
        return Err("its 'location' is empty".into());
    }
    if location.contains('\0') {
        return Err(format!("location {location:?} contains a NUL byte"));
    }
    let path = Path::new(location);
    if path.is_absolute() || location.starts_with('/') {
        return Err(format!(
            "location '{location}' is an absolute path; it must be relative to the model's folder"
        ));
    }
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "location '{location}' contains '..'; it must stay inside the model's folder"
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "location '{location}' is an absolute path; it must be relative to the model's folder"
                ))
            }
        }
    }
    Ok(path)
}

/// The tensor's element type and byte size, or why it has none.
fn byte_size(t: &TensorProto) -> std::result::Result<(DType, Vec<usize>, u64), String> {
    let dtype =
        DType::from_onnx(t.data_type).map_err(|n| format!("its data type {n} is not supported"))?;
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("it has a negative dimension {d}")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let n = crate::ir::bounded_numel(&shape)
        .ok_or_else(|| format!("its shape {shape:?} overflows the limit of 2^40 elements"))?;
    Ok((dtype, shape, n as u64 * dtype.size() as u64))
}

/// The model's folder and the files mapped so far.
struct Files<'a> {
    model_path: &'a Path,
    /// The model's folder, canonical; found at the first external tensor.
    dir: Option<PathBuf>,
    mapped: Vec<DataFile>,
}

impl Files<'_> {
    fn resolve(&mut self, t: &mut TensorProto) -> Result<()> {
        if t.data_location != EXTERNAL {
            return Ok(());
        }
        let tensor = if t.name.is_empty() {
            "<unnamed>".to_string()
        } else {
            t.name.clone()
        };
        let data = self
            .data_of(t)
            .map_err(|reason| Error::ExternalData { tensor, reason })?;
        t.raw_data = data;
        t.data_location = 0;
        t.external_data.clear();
        Ok(())
    }

    /// The bytes of external tensor `t`, or why they cannot be used.
    fn data_of(&mut self, t: &TensorProto) -> std::result::Result<Bytes, String> {
        let e = parse_entries(t)?;
        let location = check_location(&e.location)?;
        let inline = !t.raw_data.is_empty()
            || !t.float_data.is_empty()
            || !t.int32_data.is_empty()
            || !t.int64_data.is_empty()
            || !t.double_data.is_empty()
            || !t.uint64_data.is_empty()
            || !t.string_data.is_empty();
        if inline {
            return Err(
                "it also has data inside the model file; its data must be in one place".into(),
            );
        }
        let (dtype, shape, want) = byte_size(t)?;
        let file = self.file(location, &e.location)?;
        let len = file.len() as u64;
        let where_ = format!("'{}' ({len} bytes)", e.location);
        if e.offset > len {
            return Err(format!("offset {} is past the end of {where_}", e.offset));
        }
        let length = match e.length {
            Some(l) if l > len - e.offset => {
                return Err(format!(
                    "bytes {}..{} are past the end of {where_}",
                    e.offset,
                    e.offset as u128 + l as u128
                ))
            }
            Some(l) => l,
            None => len - e.offset,
        };
        if length != want {
            let range = match e.length {
                Some(_) => format!("length {length} at offset {}", e.offset),
                None => format!(
                    "{length} bytes from offset {} to the end of the file, as no length is given",
                    e.offset
                ),
            };
            return Err(format!(
                "{range} in {where_}, but its {dtype} shape {shape:?} takes {want} bytes"
            ));
        }
        // Both fit in the file's length, which is a usize.
        Ok(file.slice(e.offset as usize..(e.offset + length) as usize))
    }

    /// The mapping of `location` (relative to the model's folder), mapped at first use.
    fn file(&mut self, location: &Path, shown: &str) -> std::result::Result<Bytes, String> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => {
                let parent = self
                    .model_path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let d = std::fs::canonicalize(parent).map_err(|e| {
                    format!(
                        "the model's folder {} cannot be resolved: {e}",
                        parent.display()
                    )
                })?;
                self.dir = Some(d.clone());
                d
            }
        };
        let joined = dir.join(location);
        let real = std::fs::canonicalize(&joined).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "the external file '{shown}' does not exist in the model's folder {}",
                dir.display()
            ),
            _ => format!(
                "cannot open the external file '{shown}' in {}: {e}",
                dir.display()
            ),
        })?;
        if !real.starts_with(&dir) {
            return Err(format!(
                "location '{shown}' resolves to {}, outside the model's folder {}",
                real.display(),
                dir.display()
            ));
        }
        if let Some(f) = self.mapped.iter().find(|f| f.path == real) {
            return Ok(f.data.clone());
        }
        let data =
            map_file(&real).map_err(|e| format!("cannot read the external file '{shown}': {e}"))?;
        self.mapped.push(DataFile {
            path: real,
            data: data.clone(),
        });
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::StringStringEntryProto;

    fn tensor(entries: &[(&str, &str)]) -> TensorProto {
        TensorProto {
            name: "w".into(),
            dims: vec![2, 3],
            data_type: 1,
            data_location: EXTERNAL,
            external_data: entries
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn entries_follow_onnx() {
        let t = tensor(&[("location", "w.bin"), ("offset", "8"), ("checksum", "ab")]);
        assert_eq!(
            parse_entries(&t),
            Ok(Entries {
                location: "w.bin".into(),
                offset: 8,
                length: None
            })
        );
        for (entries, want) in [
            (vec![("offset", "8")], "no 'location'"),
            (
                vec![("location", "a"), ("location", "b")],
                "'location' appears twice",
            ),
            (
                vec![("location", "a"), ("length", "1"), ("length", "1")],
                "'length' appears twice",
            ),
            (
                vec![("location", "a"), ("offset", "-1")],
                "'offset' is '-1'",
            ),
            (
                vec![("location", "a"), ("length", "1e3")],
                "'length' is '1e3'",
            ),
            (vec![("location", "a"), ("length", "")], "'length' is ''"),
            (
                vec![("location", "a"), ("offset", "99999999999999999999")],
                "expected a byte count",
            ),
        ] {
            let e = parse_entries(&tensor(&entries)).unwrap_err();
            assert!(e.contains(want), "{entries:?}: {e}");
        }
    }

    #[test]
    fn locations_must_stay_relative_and_below() {
        assert!(check_location("w.bin").is_ok());
        assert!(check_location("./sub/w.bin").is_ok());
        for (loc, want) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../w.bin", "'..'"),
            ("sub/../../w.bin", "'..'"),
            ("sub/../w.bin", "'..'"),
            ("w\0.bin", "NUL"),
        ] {
            let e = check_location(loc).unwrap_err();
            assert!(e.contains(want), "{loc:?}: {e}");
        }
    }

    #[test]
    fn resolves_ranges_of_one_mapping_and_refuses_bad_ones() {
        let dir = std::env::temp_dir().join(format!("gpt2c-external-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let bytes: Vec<u8> = (0..=255).collect();
        std::fs::write(dir.join("sub/w.bin"), &bytes).unwrap();
        let model_path = dir.join("model.onnx");
        let mut files = Files {
            model_path: &model_path,
            dir: None,
            mapped: Vec::new(),
        };
        let mut a = tensor(&[
            ("location", "sub/w.bin"),
            ("offset", "16"),
            ("length", "24"),
        ]);
        files.resolve(&mut a).unwrap();
        assert_eq!(&a.raw_data[..], &bytes[16..40]);
        assert_eq!((a.data_location, a.external_data.len()), (0, 0));
        // No length: to the end of the file.
        let mut b = tensor(&[("location", "./sub/w.bin"), ("offset", "232")]);
        files.resolve(&mut b).unwrap();
        assert_eq!(&b.raw_data[..], &bytes[232..]);
        assert_eq!(files.mapped.len(), 1, "one mapping per file");
        let base = files.mapped[0].data.as_ptr();
        assert_eq!(a.raw_data.as_ptr(), base.wrapping_add(16), "not copied");
        for (entries, want) in [
            (vec![("location", "sub/w.bin"), ("offset", "257")], "offset 257 is past the end of 'sub/w.bin' (256 bytes)"),
            (vec![("location", "sub/w.bin"), ("offset", "240"), ("length", "24")], "bytes 240..264 are past the end"),
            (vec![("location", "sub/w.bin"), ("offset", "0"), ("length", "20")], "length 20 at offset 0 in 'sub/w.bin' (256 bytes), but its f32 shape [2, 3] takes 24 bytes"),
            (vec![("location", "sub/w.bin")], "256 bytes from offset 0 to the end of the file"),
            (vec![("location", "sub/x.bin")], "'sub/x.bin' does not exist"),
            (vec![("location", "sub")], "not a regular file"),
        ] {
            let mut t = tensor(&entries);
            let e = files.resolve(&mut t).unwrap_err().to_string();
            assert!(e.contains("tensor 'w'") && e.contains(want), "{entries:?}: {e}");
        }
        let mut t = tensor(&[("location", "sub/w.bin"), ("length", "24")]);
        t.float_data = vec![1.0; 6];
        let e = files.resolve(&mut t).unwrap_err().to_string();
        assert!(e.contains("also has data inside the model file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
