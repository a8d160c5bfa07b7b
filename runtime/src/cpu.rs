//! CPU features and ISA dispatch: the bottom layer of the runtime. Which instruction set
//! the kernels run on (AVX-512F, AVX2+FMA or portable scalar code) is detected once here,
//! and `isa_kernel!` compiles one safe body for each of them. Every kernel module builds on
//! this; it depends on nothing in the crate.

use std::sync::OnceLock;

/// An instruction set the kernels are compiled for (see `isa_kernel!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, any CPU.
    Scalar,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512 (F, BW, DQ, VL).
    Avx512,
}

/// The best ISA this CPU has (detected once).
pub fn detected() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    })
}

/// ISAs available here, best last (for tests and benchmarks).
pub fn available() -> &'static [Isa] {
    static AVAILABLE: OnceLock<Vec<Isa>> = OnceLock::new();
    AVAILABLE.get_or_init(detect_all)
}

fn detect_all() -> Vec<Isa> {
    let mut v = vec![Isa::Scalar];
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            v.push(Isa::Avx2);
        }
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
            v.push(Isa::Avx512);
        }
    }
    v
}

/// Whether this CPU has AVX-512 BF16 (`vdpbf16ps`).
pub fn avx512_bf16() -> bool {
    static BF16: OnceLock<bool> = OnceLock::new();
    *BF16.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Whether this CPU has AVX-512 VNNI (and AVX-512BW), which the fast int8 kernel needs.
pub fn avx512_vnni() -> bool {
    static VNNI: OnceLock<bool> = OnceLock::new();
    *VNNI.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Whether this CPU has F16C (`vcvtph2ps`), which the AVX2 4-bit kernel reads its f16
/// scales with.
pub fn f16c() -> bool {
    static F16C: OnceLock<bool> = OnceLock::new();
    *F16C.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Declares `pub fn $name(isa, args)` running `$body` (an `#[inline(always)]` fn) compiled
/// for the chosen ISA. With `$body::<FMA>`, the body takes a `const FMA: bool`: true in the
/// SIMD builds, false in the scalar one (a software fma would be slow).
macro_rules! isa_kernel {
    ($(#[$doc:meta])* $name:ident => $body:ident::<FMA> ( $($arg:ident : $ty:ty),* )) => {
        $crate::cpu::isa_kernel!(@emit [$(#[$doc])*] $name [$body::<true>] [$body::<false>] ($($arg : $ty),*));
    };
    ($(#[$doc:meta])* $name:ident => $body:ident ( $($arg:ident : $ty:ty),* )) => {
        $crate::cpu::isa_kernel!(@emit [$(#[$doc])*] $name [$body] [$body] ($($arg : $ty),*));
    };
    (@emit [$($doc:tt)*] $name:ident [$($simd:tt)*] [$($scalar:tt)*] ( $($arg:ident : $ty:ty),* )) => {
        $($doc)*
        #[allow(clippy::too_many_arguments)]
        pub fn $name(isa: $crate::cpu::Isa, $($arg: $ty),*) {
            use $crate::cpu::{available, Isa};
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512($($arg: $ty),*) { $($simd)*($($arg),*) }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2($($arg: $ty),*) { $($simd)*($($arg),*) }
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `available()` says this CPU has AVX-512F and FMA, all `avx512`
                // is compiled for; the body is safe code (bounds-checked slices).
                Isa::Avx512 if available().contains(&Isa::Avx512) => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above, for AVX2 and FMA.
                Isa::Avx2 if available().contains(&Isa::Avx2) => unsafe { avx2($($arg),*) },
                _ => $($scalar)*($($arg),*),
            }
        }
    };
}

pub(crate) use isa_kernel;

/// Asks the cache for the lines holding `x` (a hint: it changes no result and never
/// faults). For data read soon in runs too short for the hardware prefetcher to start on.
#[inline(always)]
pub fn prefetch<T>(x: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = x.as_ptr().cast::<i8>();
        for byte in (0..std::mem::size_of_val(x)).step_by(64) {
            // SAFETY: SSE is part of x86_64; a prefetch reads nothing the program sees and
            // never faults, and the address is inside `x`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(byte)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}
