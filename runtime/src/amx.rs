//! AMX tiles (Intel Xeons since Sapphire Rapids): whether this process may use them, and
//! the few tile instructions the int8 and bf16 kernels are written with. Beside `cpu` at
//! the bottom of the runtime; it depends on nothing in the crate.
//!
//! A tile is a register of up to 16 rows of 64 bytes; `TDPBSUD` multiplies a tile of
//! signed bytes by one of unsigned bytes into 32-bit sums (16 × 16 × 64 products),
//! `TDPBF16PS` a tile of bf16 pairs by another into f32 sums. Linux hands out the tile
//! registers' 8 KB of state only to a process that asks (`arch_prctl`), once, here.
//!
//! Every kernel configures the same shape, all eight tiles 16 rows × 64 bytes, so the
//! configuration is one constant; operands narrower than that are padded by the callers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Rows of a tile.
pub const ROWS: usize = 16;

/// Bytes per tile row.
pub const ROW_BYTES: usize = 64;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether this CPU has AMX tiles with int8 and bf16 products and the OS lets this process
/// use them (asked once, on the first call).
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| cpu_has_amx() && os_grants_tiles())
}

/// Whether the kernels use AMX: `supported()` and not switched off by `set_enabled`.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed) && supported()
}

/// Lets the kernels use AMX where it is supported (the default), or not: for benchmarks
/// and tests that compare the tile kernels with the vector ones. Process-wide; switch it
/// before products run, not while they do.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// CPUID leaf 7: AMX-BF16 (EDX bit 22), AMX-TILE (24) and AMX-INT8 (25).
fn cpu_has_amx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        // Leaf 7 is read only if the CPU has it.
        if __cpuid(0).eax < 7 {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        let bits = (1 << 22) | (1 << 24) | (1 << 25);
        edx & bits == bits
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Asks Linux for the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`);
/// false on refusal (kernels before 5.16, or a hypervisor that hides it) and elsewhere.
fn os_grants_tiles() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: the arch_prctl system call with these arguments only changes which
        // processor state the kernel lets this process use; it touches no memory of ours.
        // The syscall instruction clobbers rcx and r11, declared.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack, preserves_flags)
            );
        }
        ret == 0
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    false
}

/// The tile configuration every kernel loads: palette 1, eight tiles of 16 rows × 64 bytes.
#[repr(C, align(64))]
struct Config([u8; 64]);

const CONFIG: Config = {
    let mut c = [0u8; 64];
    c[0] = 1; // palette
    let mut t = 0;
    while t < 8 {
        // Bytes per row of tile t (16-bit, from byte 16), rows of tile t (from byte 48).
        c[16 + 2 * t] = ROW_BYTES as u8;
        c[48 + t] = ROWS as u8;
        t += 1;
    }
    Config(c)
};

/// Loads the shared tile configuration on this thread (zeroing every tile).
///
/// # Safety
/// `supported()` is true.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn configure() {
    // SAFETY: the CPU has AMX and the OS granted it (caller); CONFIG is a valid 64-byte
    // palette-1 configuration.
    unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) }
}

/// Returns the tiles to their initial state, so context switches stop saving them.
///
/// # Safety
/// `supported()` is true.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn release() {
    // SAFETY: the CPU has AMX (caller).
    unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) }
}

/// The row stride, in bytes, at which a kernel should store rows of `bytes` bytes that it
/// loads into tiles: whole 64-byte lines, an odd number of them. Tile loads read one line
/// of each of 16 rows; with a stride of an even number of lines (3072-deep int8 rows are
/// 48), the 16 lines fall into a few L1 sets and evict each other.
pub fn row_stride(bytes: usize) -> usize {
    let lines = bytes.div_ceil(ROW_BYTES);
    (lines | 1) * ROW_BYTES
}

/// How many tiles of 16 rows of `row_bytes` each fit in `L2_SHARE` (at least one): a
/// kernel walks its panels once per such group, so the group's inputs come from L2 while
/// the weights stream past. Without groups, the 1024 rows of a full forward were reloaded
/// from beyond L2 for every panel, and `perf` put half of the bf16 kernel's time on its
/// input tile loads.
pub fn row_tiles_in_l2(row_bytes: usize) -> usize {
    (L2_SHARE / (ROWS * row_bytes).max(1)).max(1)
}

/// The part of a 2 MB L2 a group of input rows may fill: a quarter (half of it made no
/// measurable difference; the weights' chunks and the sums need the rest).
const L2_SHARE: usize = 512 << 10;

/// How far ahead of a tile kernel's weight stream `prefetch_ahead` asks for lines: tile
/// loads do not wake the hardware prefetcher the way vector loads do.
pub const PREFETCH_BYTES: usize = 8 << 10;

/// Asks for the `len` bytes `PREFETCH_BYTES` past `at` (a hint: it never faults, whatever
/// the address).
#[inline(always)]
pub fn prefetch_ahead(at: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = at.wrapping_add(PREFETCH_BYTES);
        for byte in (0..len).step_by(64) {
            // SAFETY: SSE is part of x86_64; a prefetch reads nothing the program sees and
            // never faults, for any address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(byte).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, len);
}

/// `tileloadd tmmT, [ptr + stride·row]`: 16 rows of 64 bytes, `stride` bytes apart.
/// Unsafe: the CPU has AMX, the tiles are configured, and the 16 rows are readable.
macro_rules! load {
    ($tile:literal, $ptr:expr, $stride:expr) => {
        std::arch::asm!(
            concat!("tileloadd tmm", $tile, ", [{p} + {s}*1]"),
            p = in(reg) $ptr,
            s = in(reg) $stride,
            options(nostack, readonly, preserves_flags)
        )
    };
}

/// `tilestored [ptr + stride·row], tmmT`: 16 rows of 64 bytes, `stride` bytes apart.
/// Unsafe: the CPU has AMX, the tiles are configured, and the 16 rows are writable.
macro_rules! store {
    ($tile:literal, $ptr:expr, $stride:expr) => {
        std::arch::asm!(
            concat!("tilestored [{p} + {s}*1], tmm", $tile),
            p = in(reg) $ptr,
            s = in(reg) $stride,
            options(nostack, preserves_flags)
        )
    };
}

/// `tilezero tmmT`. Unsafe: the CPU has AMX and the tiles are configured.
macro_rules! zero {
    ($tile:literal) => {
        std::arch::asm!(
            concat!("tilezero tmm", $tile),
            options(nostack, nomem, preserves_flags)
        )
    };
}

/// `tdpbsud tmmC, tmmA, tmmB`: C (16 × 16 i32) += A (16 rows of 64 signed bytes) times B
/// (16 rows of 16 columns × 4 unsigned bytes), each sum of four products exact.
/// Unsafe: the CPU has AMX-INT8 and the tiles are configured.
macro_rules! dp_signed_unsigned {
    ($c:literal, $a:literal, $b:literal) => {
        std::arch::asm!(
            concat!("tdpbsud tmm", $c, ", tmm", $a, ", tmm", $b),
            options(nostack, nomem, preserves_flags)
        )
    };
}

/// `tdpbf16ps tmmC, tmmA, tmmB`: C (16 × 16 f32) += A (16 rows of 32 bf16) times B (16
/// rows of 16 columns × 2 bf16). Unsafe: the CPU has AMX-BF16 and the tiles are configured.
macro_rules! dp_bf16 {
    ($c:literal, $a:literal, $b:literal) => {
        std::arch::asm!(
            concat!("tdpbf16ps tmm", $c, ", tmm", $a, ", tmm", $b),
            options(nostack, nomem, preserves_flags)
        )
    };
}

pub(crate) use {dp_bf16, dp_signed_unsigned, load, store, zero};

#[cfg(test)]
mod tests {
    #[test]
    fn reports_whether_tiles_are_used() {
        // Not an assertion about this machine: says which kernels the other tests cover.
        println!(
            "AMX tiles {}",
            if super::supported() {
                "supported: tile kernels are tested"
            } else {
                "not supported here: tile kernel tests are skipped"
            }
        );
    }
}
