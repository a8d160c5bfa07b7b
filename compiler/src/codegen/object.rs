//! The weight blob as an ELF relocatable object, written as a stream.
//!
//! The linker copies the blob into the binary; rustc and LLVM never see its bytes (an
//! `.incbin` through `global_asm!` made rustc hold about four copies of the blob in memory:
//! 12.6 GB for a 3.2 GB blob). Two things make blobs past 2 GB link in x86-64's small code
//! model, where code reaches data through 32-bit PC-relative offsets:
//! - the blob's section is a large data section (`.ldata`, `SHF_X86_64_LARGE`), which GNU ld
//!   and lld place after all small sections, so the blob never sits between code and what
//!   the code addresses. Not `.lrodata`: lld puts that first, before the ELF header's
//!   neighbours, and a static-pie with a 6.5 GB blob there failed to link (libc's
//!   `__ehdr_start` and crtbegin's references out of range). The section is writable only
//!   in name: nothing writes it, so its pages stay shared with the page cache;
//! - code never addresses the blob directly: the object also holds an 8-byte pointer to it
//!   (`<symbol>_addr`, in `.data.rel.ro`, an absolute 64-bit relocation that PIE turns into a
//!   load-time relocation) which the generated code reads.
//!
//! A static glibc executable (`+crt-static`) needs one more thing: glibc's static start-up
//! code (`__minimal_malloc`) reaches the linker's `_end` PC-relatively, and both GNU ld and
//! lld put `_end` after the large sections, past the blob. `STATIC_END_SCRIPT`, an implicit
//! linker script the generated code links in static builds only, sets `_end` to where it
//! would be without the blob: the end of `.bss`, which is what `_end` means (a 6.5 GB blob
//! then links as a static-pie and runs).
//!
//! Layout: the 64-byte ELF header, the blob at file offset 64 (so the blob is 64-byte aligned
//! in the file too, for the `include_bytes!` fallback of non-ELF targets), then the small
//! sections, the symbol and string tables and the section headers.

use std::io::{Seek, SeekFrom, Write};

/// Where the blob starts in the object file.
pub const BLOB_OFFSET: u64 = 64;

/// The implicit linker script that static builds link (file name, text): see the module
/// documentation.
pub const STATIC_END_SCRIPT: (&str, &str) = (
    "gpt2c_static_end.ld",
    "/* gpt2c: _end is the end of .bss, before the weight blob's large section. */\n\
     _end = ADDR(.bss) + SIZEOF(.bss);\n",
);

/// The machine the object is for (its `e_machine` and pointer relocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// x86-64 (`EM_X86_64`).
    X86_64,
    /// 64-bit Arm (`EM_AARCH64`).
    Aarch64,
}

impl Default for Machine {
    /// The machine this compiler runs on.
    fn default() -> Machine {
        Machine::from_target_arch(std::env::consts::ARCH)
    }
}

impl Machine {
    /// From a Rust `target_arch` (`CARGO_CFG_TARGET_ARCH`). Other architectures embed the
    /// blob with `include_bytes!`, which ignores the header: any machine will do for them.
    pub fn from_target_arch(arch: &str) -> Machine {
        match arch {
            "aarch64" => Machine::Aarch64,
            _ => Machine::X86_64,
        }
    }

    fn e_machine(self) -> u16 {
        match self {
            Machine::X86_64 => 62,
            Machine::Aarch64 => 183,
        }
    }

    /// R_X86_64_64 / R_AARCH64_ABS64: the symbol's absolute 64-bit address.
    fn abs64(self) -> u32 {
        match self {
            Machine::X86_64 => 1,
            Machine::Aarch64 => 257,
        }
    }

    /// The blob's section name and flags.
    fn blob_section(self) -> (&'static str, u64) {
        const SHF_WRITE: u64 = 0x1;
        const SHF_ALLOC: u64 = 0x2;
        const SHF_X86_64_LARGE: u64 = 0x1000_0000;
        match self {
            Machine::X86_64 => (".ldata", SHF_WRITE | SHF_ALLOC | SHF_X86_64_LARGE),
            // aarch64's small code model reaches +-4 GB through ADRP; the pointer below
            // lifts that limit too, and there is no large-section flag to set.
            Machine::Aarch64 => (".rodata", SHF_ALLOC),
        }
    }
}

/// Writes the ELF header's placeholder; the blob follows at `BLOB_OFFSET`.
pub fn begin(w: &mut impl Write) -> std::io::Result<()> {
    w.write_all(&[0; BLOB_OFFSET as usize])
}

/// The object's file name: its symbol's, so no two models' objects share a name among the
/// folders the linker searches.
pub fn file_name(symbol: &str) -> String {
    format!("{symbol}.o")
}

/// The name of the pointer to the blob that the generated code reads.
pub fn address_symbol(symbol: &str) -> String {
    format!("{symbol}_addr")
}

/// Appends everything after the blob (`blob_len` bytes, already written after `begin`) and
/// writes the header. `w` must be positioned at the blob's end.
pub fn finish<W: Write + Seek>(
    w: &mut W,
    machine: Machine,
    symbol: &str,
    blob_len: u64,
) -> std::io::Result<()> {
    let (blob_name, blob_flags) = machine.blob_section();
    let blob_section = format!("{blob_name}.{symbol}");
    let ptr_section = format!(".data.rel.ro.{symbol}");
    let rela_section = format!(".rela{ptr_section}");
    let addr = address_symbol(symbol);

    // Section indices.
    const BLOB: u32 = 1;
    const PTR: u32 = 2;
    const SYMTAB: u32 = 5;
    const STRTAB: u32 = 6;

    let mut strtab = vec![0u8];
    let blob_sym_name = push_name(&mut strtab, symbol);
    let addr_sym_name = push_name(&mut strtab, &addr);
    let mut shstrtab = vec![0u8];
    let names = [
        push_name(&mut shstrtab, &blob_section),
        push_name(&mut shstrtab, &ptr_section),
        push_name(&mut shstrtab, &rela_section),
        push_name(&mut shstrtab, ".note.GNU-stack"),
        push_name(&mut shstrtab, ".symtab"),
        push_name(&mut shstrtab, ".strtab"),
        push_name(&mut shstrtab, ".shstrtab"),
    ];

    // The small sections, laid out after the blob (8-byte aligned).
    let blob_end = BLOB_OFFSET + blob_len;
    let mut tail = vec![0u8; (align8(blob_end) - blob_end) as usize];
    let at = |tail: &Vec<u8>| blob_end + tail.len() as u64;
    let ptr_off = at(&tail);
    tail.extend_from_slice(&[0; 8]); // the pointer, filled in by the relocation
    let rela_off = at(&tail);
    tail.extend_from_slice(&0u64.to_le_bytes()); // r_offset
    tail.extend_from_slice(&((1u64 << 32) | machine.abs64() as u64).to_le_bytes()); // symbol 1
    tail.extend_from_slice(&0i64.to_le_bytes()); // r_addend
    let symtab_off = at(&tail);
    tail.extend_from_slice(&[0; 24]); // the null symbol
    const STT_OBJECT_GLOBAL: u8 = (1 << 4) | 1;
    for (name, section, size) in [(blob_sym_name, BLOB, blob_len), (addr_sym_name, PTR, 8)] {
        tail.extend_from_slice(&name.to_le_bytes());
        tail.push(STT_OBJECT_GLOBAL);
        tail.push(0); // default visibility
        tail.extend_from_slice(&(section as u16).to_le_bytes());
        tail.extend_from_slice(&0u64.to_le_bytes()); // value: the section's start
        tail.extend_from_slice(&size.to_le_bytes());
    }
    let strtab_off = at(&tail);
    tail.extend_from_slice(&strtab);
    let shstrtab_off = at(&tail);
    tail.extend_from_slice(&shstrtab);
    tail.resize((align8(at(&tail)) - blob_end) as usize, 0);
    let shoff = at(&tail);

    const SHT_PROGBITS: u32 = 1;
    const SHT_SYMTAB: u32 = 2;
    let string_table = |name, offset, len: usize| SectionHeader {
        name,
        kind: 3, // SHT_STRTAB
        offset,
        size: len as u64,
        align: 1,
        ..SectionHeader::default()
    };
    const SHT_RELA: u32 = 4;
    const SHF_WRITE_ALLOC: u64 = 0x3;
    const SHF_INFO_LINK: u64 = 0x40;
    let headers = [
        SectionHeader::default(),
        SectionHeader {
            name: names[0],
            kind: SHT_PROGBITS,
            flags: blob_flags,
            offset: BLOB_OFFSET,
            size: blob_len,
            align: 64,
            ..SectionHeader::default()
        },
        SectionHeader {
            name: names[1],
            kind: SHT_PROGBITS,
            flags: SHF_WRITE_ALLOC,
            offset: ptr_off,
            size: 8,
            align: 8,
            ..SectionHeader::default()
        },
        SectionHeader {
            name: names[2],
            kind: SHT_RELA,
            flags: SHF_INFO_LINK,
            offset: rela_off,
            size: 24,
            link: SYMTAB,
            info: PTR,
            align: 8,
            entsize: 24,
        },
        SectionHeader {
            name: names[3],
            kind: SHT_PROGBITS,
            offset: strtab_off,
            align: 1,
            ..SectionHeader::default()
        },
        SectionHeader {
            name: names[4],
            kind: SHT_SYMTAB,
            offset: symtab_off,
            size: 3 * 24,
            link: STRTAB,
            info: 1, // the first global symbol
            align: 8,
            entsize: 24,
            ..SectionHeader::default()
        },
        string_table(names[5], strtab_off, strtab.len()),
        string_table(names[6], shstrtab_off, shstrtab.len()),
    ];
    for h in &headers {
        h.write(&mut tail);
    }
    w.write_all(&tail)?;

    let mut header = Vec::with_capacity(BLOB_OFFSET as usize);
    header.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]); // ELF64, little-endian
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    header.extend_from_slice(&machine.e_machine().to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    header.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    header.extend_from_slice(&0u64.to_le_bytes()); // e_phoff
    header.extend_from_slice(&shoff.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    header.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    header.extend_from_slice(&0u16.to_le_bytes()); // e_phentsize
    header.extend_from_slice(&0u16.to_le_bytes()); // e_phnum
    header.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    header.extend_from_slice(&(headers.len() as u16).to_le_bytes());
    header.extend_from_slice(&(headers.len() as u16 - 1).to_le_bytes()); // .shstrtab
    debug_assert_eq!(header.len() as u64, BLOB_OFFSET);
    w.seek(SeekFrom::Start(0))?;
    w.write_all(&header)?;
    w.seek(SeekFrom::Start(shoff + (headers.len() * 64) as u64))?;
    Ok(())
}

fn align8(x: u64) -> u64 {
    x.div_ceil(8) * 8
}

/// Appends a NUL-terminated name to a string table; returns its offset.
fn push_name(table: &mut Vec<u8>, name: &str) -> u32 {
    let at = table.len() as u32;
    table.extend_from_slice(name.as_bytes());
    table.push(0);
    at
}

#[derive(Default)]
struct SectionHeader {
    name: u32,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

impl SectionHeader {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.name.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // sh_addr
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.link.to_le_bytes());
        out.extend_from_slice(&self.info.to_le_bytes());
        out.extend_from_slice(&self.align.to_le_bytes());
        out.extend_from_slice(&self.entsize.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn object(machine: Machine, blob: &[u8]) -> Vec<u8> {
        let mut w = Cursor::new(Vec::new());
        begin(&mut w).unwrap();
        w.write_all(blob).unwrap();
        finish(&mut w, machine, "gpt2c_weights_test", blob.len() as u64).unwrap();
        w.into_inner()
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// The section headers, read back: (name, offset, size) per section.
    fn sections(b: &[u8]) -> Vec<(String, u64, u64)> {
        let shoff = u64_at(b, 40) as usize;
        let n = u16_at(b, 60) as usize;
        let shstr = shoff + u16_at(b, 62) as usize * 64;
        let strtab = u64_at(b, shstr + 24) as usize;
        (0..n)
            .map(|i| {
                let h = shoff + i * 64;
                let name = u32::from_le_bytes(b[h..h + 4].try_into().unwrap()) as usize;
                let end = b[strtab + name..].iter().position(|&c| c == 0).unwrap();
                let name = String::from_utf8(b[strtab + name..strtab + name + end].to_vec());
                (name.unwrap(), u64_at(b, h + 24), u64_at(b, h + 32))
            })
            .collect()
    }

    #[test]
    fn the_blob_sits_at_offset_64_and_the_tables_after_it() {
        for blob_len in [0, 1, 7, 64, 1000] {
            let blob: Vec<u8> = (0..blob_len).map(|i| i as u8 ^ 0x5a).collect();
            let b = object(Machine::X86_64, &blob);
            assert_eq!(&b[..4], b"\x7fELF");
            assert_eq!(u16_at(&b, 18), 62);
            assert_eq!(&b[64..64 + blob_len], &blob[..]);
            let s = sections(&b);
            assert_eq!(s.len(), 8);
            assert_eq!(s[1].0, ".ldata.gpt2c_weights_test");
            assert_eq!((s[1].1, s[1].2), (64, blob_len as u64));
            assert_eq!(s[2].0, ".data.rel.ro.gpt2c_weights_test");
            assert_eq!(s[7].0, ".shstrtab");
            // Every section lies inside the file, after the blob.
            for (name, off, size) in &s[2..] {
                assert!(*off >= 64 + blob_len as u64, "{name}");
                assert!(off + size <= b.len() as u64, "{name}");
            }
            assert_eq!(u64_at(&b, 40) as usize + 8 * 64, b.len());
        }
    }

    #[test]
    fn aarch64_objects_name_their_machine_and_a_plain_rodata_section() {
        let b = object(Machine::Aarch64, &[1, 2, 3]);
        assert_eq!(u16_at(&b, 18), 183);
        assert_eq!(sections(&b)[1].0, ".rodata.gpt2c_weights_test");
    }
}
