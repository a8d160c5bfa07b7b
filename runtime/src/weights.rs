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

/// Element types that may be viewed from raw little-endian bytes.
pub trait Pod: Copy + 'static {}
impl Pod for f32 {}
impl Pod for i64 {}
impl Pod for crate::elem::Bf16 {}
impl Pod for crate::elem::F16 {}
impl Pod for crate::elem::Q8 {}
impl Pod for crate::elem::Q4 {}

/// Embeds a weight file in the binary and defines `fn $name() -> &'static [u8]`.
///
/// On ELF targets the file goes in through the assembler (`.incbin`, in its own read-only
/// section, 64-byte aligned): rustc never sees the bytes, so a 650 MB model builds in
/// seconds and little memory. Elsewhere it falls back to `include_bytes!`.
/// The path must be a string literal or `concat!` of literals naming the file absolutely.
#[macro_export]
macro_rules! embed_weights {
    ($name:ident, $symbol:literal, $len:expr, $($path:tt)+) => {
        #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
        ::std::arch::global_asm!(
            concat!(".section .rodata.", $symbol, ",\"a\",@progbits"),
            ".p2align 6",
            concat!(".globl ", $symbol),
            concat!($symbol, ":"),
            concat!(".incbin \"", $($path)+, "\""),
            ".previous",
        );

        #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
        fn $name() -> &'static [u8] {
            extern "C" {
                #[link_name = $symbol]
                static BLOB: [u8; $len];
            }
            // SAFETY: the symbol is defined by the global_asm! above as exactly the bytes of
            // the weight file, whose length the compiler wrote into `$len`; the section is
            // read-only and never written, so a shared 'static borrow is sound.
            unsafe { &*::std::ptr::addr_of!(BLOB) }
        }

        #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
        fn $name() -> &'static [u8] {
            static BLOB: &$crate::weights::Aligned<[u8]> = &$crate::weights::Aligned(*include_bytes!($($path)+));
            &BLOB.0
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
