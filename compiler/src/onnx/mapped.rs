//! Files as read-only memory: the model and its external-data files are mapped, not read,
//! so loading holds no copy of the weights. This is the compiler's only `unsafe` outside
//! the runtime's kernels.

use bytes::Bytes;
use std::io::{Error, ErrorKind};
use std::path::Path;

/// Maps the regular file `path` read-only. The returned `Bytes` owns the mapping: every
/// slice of it keeps the mapping alive, and the last one dropped unmaps it. An empty file
/// gives empty bytes (a mapping of length 0 does not exist). Anything but a regular file
/// (a directory, a FIFO that would block, a device) is refused before it is opened.
pub fn map_file(path: &Path) -> std::io::Result<Bytes> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: `Mmap::map` is unsafe because the mapping aliases a file that other processes
    // can change while we hold it: a write shows up in bytes Rust treats as immutable, and
    // truncation turns reads past the new end into SIGBUS. Nothing in this process writes
    // the file (the mapping is read-only and the compiler only reads its inputs); like any
    // tool that reads its inputs, the compiler requires that the model files are not
    // modified or truncated while it runs (a `cargo build`, a `gpt2c` command). A file
    // replaced by rename, as editors and exporters do, is safe: the mapping keeps the old one.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Bytes::from_owner(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_files_and_refuses_everything_else() {
        let dir = std::env::temp_dir().join(format!("gpt2c-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("data");
        std::fs::write(&f, b"0123456789").unwrap();
        let b = map_file(&f).unwrap();
        assert_eq!(&b[..], b"0123456789");
        // Slices share the mapping and outlive the original handle.
        let s = b.slice(3..6);
        drop(b);
        assert_eq!(&s[..], b"345");
        std::fs::write(&f, b"").unwrap();
        assert!(map_file(&f).unwrap().is_empty());
        let e = map_file(&dir).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file");
        let e = map_file(&dir.join("missing")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
