//! Files as read-only memory: the model and its external-data files are mapped, not read,
//! so loading holds no copy of the weights. This is the compiler's only `unsafe` outside
//! the runtime's kernels.
//!
//! A mapping's pages stay resident, and count in the process's memory, once they have been
//! read: compiling gpt2-xl reads 6.5 GB of f32 weights, far more than the 1.6 GB a q8 build
//! writes. `release` hands the pages of bytes the compiler is done with back to the kernel,
//! so the compiler's peak stays near its largest tensor instead of the whole model. A
//! released page reads the same afterwards (the file is read again), only slower.

use bytes::Bytes;
use std::io::{Error, ErrorKind};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

/// The live mappings, for `release` to tell mapped bytes from heap bytes.
static LIVE: Mutex<Vec<Weak<memmap2::Mmap>>> = Mutex::new(Vec::new());

/// The owner behind a mapped `Bytes`.
struct Mapping(Arc<memmap2::Mmap>);

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

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
    let map = Arc::new(unsafe { memmap2::Mmap::map(&file)? });
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|m| m.strong_count() > 0);
    live.push(Arc::downgrade(&map));
    Ok(Bytes::from_owner(Mapping(map)))
}

/// Drops from memory the resident pages of `bytes` that lie wholly inside it, if `bytes` is
/// (part of) a live mapping made by `map_file`; anything else (heap bytes, a tensor folded
/// by a pass) is left alone. The bytes stay valid and read the same.
pub fn release(bytes: &[u8]) {
    let (start, end) = (
        bytes.as_ptr() as usize,
        bytes.as_ptr() as usize + bytes.len(),
    );
    for map in live_mappings() {
        let base = map.as_ptr() as usize;
        let (from, to) = (start.max(base), end.min(base + map.len()));
        if from < to {
            drop_pages(&map, from - base, to - base);
        }
    }
}

/// `release` of every live mapping whole: the pages a phase read and will not need again.
pub fn release_all() {
    for map in live_mappings() {
        drop_pages(&map, 0, map.len());
    }
}

fn live_mappings() -> Vec<Arc<memmap2::Mmap>> {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.iter().filter_map(Weak::upgrade).collect()
}

/// Drops the whole pages of `map[from..to]`.
fn drop_pages(map: &memmap2::Mmap, from: usize, to: usize) {
    let page = PAGE;
    let (from, to) = (from.next_multiple_of(page), to / page * page);
    if from >= to {
        return;
    }
    #[cfg(unix)]
    // SAFETY: `unchecked_advise_range` is unsafe because `MADV_DONTNEED` discards pages: on
    // anonymous or written private memory their contents would be lost. This is a read-only
    // file mapping that nothing ever writes (see `map_file`), so every page still equals
    // the file: a discarded page is read back from the file (the page cache) at its next
    // access and shows the same bytes. The range lies inside the mapping (clamped above).
    let _ =
        unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from) };
    #[cfg(not(unix))]
    let _ = (map, from, to);
}

/// The page size the rounding assumes: 4 KiB on x86-64 and most arm64 Linux. Where pages
/// are larger, `advise` rounds the start down to a real page: a neighbour's page may go
/// too, which costs a re-read, never a wrong byte (every page of the mapping is the file's).
const PAGE: usize = 4096;

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

    /// The resident kB of the mapping of `path`, from `/proc/self/smaps`.
    #[cfg(target_os = "linux")]
    fn resident_kb(path: &Path) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let name = path.to_str().unwrap();
        let mut lines = smaps.lines();
        let mut total = 0;
        while let Some(l) = lines.next() {
            if l.ends_with(name) {
                let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
                total += rss
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap();
            }
        }
        total
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn released_pages_leave_memory_and_read_the_same() {
        let dir = std::env::temp_dir().join(format!("gpt2c-release-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("data");
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 + i / 4099) as u8).collect();
        std::fs::write(&f, &data).unwrap();
        let b = map_file(&f).unwrap();
        let sum = |b: &[u8]| b.iter().map(|&x| x as u64).sum::<u64>();
        let want = sum(&data);
        assert_eq!(sum(&b), want);
        assert!(resident_kb(&f) >= 7 << 10, "read pages are resident");
        // A slice not on page boundaries: the whole pages inside it go, its first and last
        // partial pages stay.
        release(&b[100..(4 << 20) + 100]);
        let kb = resident_kb(&f);
        assert!((4 << 10..=(4 << 10) + 8).contains(&kb), "{kb} kB resident");
        assert_eq!(sum(&b), want, "released pages read the same");
        // Heap bytes are not a mapping: releasing them does nothing.
        release(&data);
        assert_eq!(sum(&data), want);
        release_all();
        assert_eq!(resident_kb(&f), 0);
        assert_eq!(&b[..], &data[..]);
        drop(b);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
