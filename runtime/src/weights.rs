//! Typed views of the weight blob. The blob is embedded in the binary (64-byte aligned, in
//! its own read-only section); views borrow it in place, so start-up copies nothing.
//! Beside the kernels, on `elem` only; generated code uses it.

/// The embedded blob, aligned so every tensor (placed at a multiple of 64 bytes) is aligned
/// for its element type.
#[repr(C, align(64))]
pub struct Aligned<T: ?Sized>(pub T);

/// A `len`-element slice of `T` at byte `offset` of `blob`.
///
/// Panics if the range is outside the blob or misaligned: the compiler placed every tensor,
/// so that would be a bug in the generated code, caught at start-up.
pub fn view<T: Pod>(blob: &'static [u8], offset: usize, len: usize) -> &'static [T] {
    let size = std::mem::size_of::<T>();
    let end = len
        .checked_mul(size)
        .and_then(|b| b.checked_add(offset))
        .expect("weight range overflows");
    let bytes = &blob[offset..end];
    assert_eq!(
        bytes.as_ptr() as usize % std::mem::align_of::<T>(),
        0,
        "misaligned weight at {offset}"
    );
    // SAFETY: `bytes` is in bounds (sliced above) and aligned for T (asserted); T is a plain
    // number type (`Pod`) for which every bit pattern is valid; the blob is 'static and
    // immutable, so the borrow lives as long as the data.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), len) }
}

/// Element types that may be viewed from raw little-endian bytes: plain numbers without
/// padding, for which every bit pattern is valid.
pub trait Pod: Copy + 'static {}
impl Pod for u8 {}
impl Pod for f32 {}
impl Pod for i64 {}
impl Pod for crate::elem::Bf16 {}
impl Pod for crate::elem::F16 {}
impl Pod for crate::elem::Q8 {}
impl Pod for crate::elem::Q4 {}

/// Reads `x` once on every thread (each its share, as whole 8-byte words: the bytes at
/// either end that do not fill an aligned word are skipped) and returns the words' wrapping
/// sum. The memory floor benchmarks hold a pass over weights to, so it reads as fast as
/// this code knows how: each thread reads its share as `READ_STREAMS` interleaved streams.
/// One stream per core reaches only about 2/3 of the bandwidth on some CPUs (a 2-core
/// Xeon with AMX: 18.9 against 30.3 GB/s with four streams).
pub fn read_through<T: Pod>(x: &[T]) -> u64 {
    // SAFETY: a `Pod` slice has no padding, so every byte is initialized, and any eight
    // of them are a valid u64; `align_to` hands out only whole, aligned words.
    let (_, words, _) = unsafe { x.align_to::<u64>() };
    let threads = crate::threads().max(1);
    let chunk = words.len().div_ceil(threads).max(1);
    let mut sums = vec![0u64; threads];
    crate::for_each_part(&mut sums, 1, |i, s| {
        let part = &words[(i * chunk).min(words.len())..((i + 1) * chunk).min(words.len())];
        let len = part.len() / READ_STREAMS / 8 * 8;
        // Eight independent sums per stream, so the loop is loads and vector adds.
        let mut acc = [[0u64; 8]; READ_STREAMS];
        for at in (0..len).step_by(8) {
            for (st, acc) in acc.iter_mut().enumerate() {
                let c = &part[st * len + at..st * len + at + 8];
                for (a, &w) in acc.iter_mut().zip(c) {
                    *a = a.wrapping_add(w);
                }
            }
        }
        let rest = part[READ_STREAMS * len..].iter();
        s[0] = acc
            .iter()
            .flatten()
            .chain(rest)
            .fold(0, |t, &a| t.wrapping_add(a));
    });
    sums.iter().fold(0, |t, &s| t.wrapping_add(s))
}

/// Streams each thread of `read_through` reads at once.
const READ_STREAMS: usize = 4;

/// Embeds a weight object in the binary and defines `$vis fn $name() -> &'static [u8]`.
///
/// The compiler writes the weights as an ELF relocatable object (gpt2c's `codegen::object`):
/// the blob at file offset 64, then an 8-byte pointer to it named `$address`. On Linux
/// (x86-64 and aarch64) the linker takes the object itself, found as `$file` in a directory
/// the build script gave with `cargo:rustc-link-search=native=DIR`: rustc never sees the
/// bytes, so a multi-GB model builds in little memory, and the code reads the blob's address
/// from the pointer, so the blob may be larger than the 2 GB that 32-bit PC-relative
/// references reach. Elsewhere the object comes in through `include_bytes!` (the path must be
/// a string literal or `concat!` of literals naming the file absolutely) and the blob is
/// read past the header.
#[macro_export]
macro_rules! embed_weights {
    ($vis:vis $name:ident, $address:literal, $file:literal, $len:expr, $($path:tt)+) => {
        #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
        $vis fn $name() -> &'static [u8] {
            // Linked as given (`+verbatim`), at the final link (`-bundle`: the rlib does not
            // copy it).
            #[link(name = $file, kind = "static", modifiers = "+verbatim,-bundle")]
            // Static executables: `_end` stays before the blob (gpt2c's `codegen::object`).
            #[cfg_attr(
                target_feature = "crt-static",
                link(name = "gpt2c_static_end.ld", kind = "static", modifiers = "+verbatim,-bundle")
            )]
            extern "C" {
                #[link_name = $address]
                static ADDRESS: *const u8;
            }
            // SAFETY: `ADDRESS` is defined by the weight object as the address of its blob,
            // `$len` bytes long (the compiler wrote both the object and `$len`); the blob's
            // section is read-only and never written, so a shared 'static borrow is sound.
            unsafe { ::std::slice::from_raw_parts(ADDRESS, $len) }
        }

        #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
        $vis fn $name() -> &'static [u8] {
            static OBJECT: &$crate::weights::Aligned<[u8]> = &$crate::weights::Aligned(*include_bytes!($($path)+));
            // The blob starts 64 bytes into the object, so it keeps the 64-byte alignment.
            &OBJECT.0[64..64 + $len]
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    static BLOB: &Aligned<[u8]> = &Aligned([0, 0, 128, 63, 0, 0, 0, 64, 7, 0, 0, 0, 0, 0, 0, 0]);

    #[test]
    fn views_read_little_endian_in_place() {
        let f: &[f32] = view(&BLOB.0, 0, 2);
        assert_eq!(f, &[1.0, 2.0]);
        assert_eq!(f.as_ptr() as usize, BLOB.0.as_ptr() as usize);
        let i: &[i64] = view(&BLOB.0, 8, 1);
        assert_eq!(i, &[7]);
    }

    #[test]
    #[should_panic]
    fn out_of_range_views_panic() {
        let _: &[f32] = view(&BLOB.0, 8, 4);
    }
}
