//! A small reader of the BPF Type Format (BTF), enough to find structure
//! layouts: the header, the string section and the type records.
//!
//! The format is the kernel's own (Documentation/bpf/btf.rst, "BTF Type
//! and String Encoding"): a 24-byte header (magic `0xeB9F`, version 1),
//! then a type section of variable-length records numbered from 1 (0 is
//! `void`), and a string section. Only the little-endian form is read
//! (RISC-V is little-endian). The `btf-rs` crate would do this too, but it
//! is LGPL-2.1, which this Apache-2.0/MIT workspace does not take on for a
//! few hundred lines.
//!
//! Invariants: every record is bounds-checked when parsed, so a hostile or
//! truncated blob (it may come from guest memory) is an `Err`, never a
//! panic; lookups by member name descend into anonymous structs and
//! unions, as C's name lookup does.

use std::collections::HashMap;

/// Why a BTF blob could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("BTF: bad magic {0:#06x} (not little-endian BTF)")]
    Magic(u16),
    #[error("BTF: truncated ({0})")]
    Truncated(&'static str),
    #[error("BTF: unknown type kind {kind} at type {id}")]
    Kind { kind: u32, id: u32 },
    #[error("BTF: no struct {0}")]
    NoStruct(String),
    #[error("BTF: struct {0} has no member {1}")]
    NoMember(String, String),
    #[error("BTF: member {0} is a bitfield")]
    Bitfield(String),
}

/// Kind numbers (btf.rst §2.2).
mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

/// One member of a struct or union.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub type_id: u32,
    /// Offset from the start of the aggregate, in bits.
    pub bit_offset: u32,
    /// Nonzero for a bitfield (only with the aggregate's kind_flag).
    pub bitfield_size: u32,
}

/// One type record, reduced to what layout lookups need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Void,
    Int {
        name: String,
        size: u32,
    },
    Ptr(u32),
    Array {
        elem: u32,
        len: u32,
    },
    Struct {
        name: String,
        size: u32,
        members: Vec<Member>,
    },
    Union {
        name: String,
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        name: String,
        size: u32,
    },
    /// typedef, const, volatile, restrict, type tag: the type it names.
    Alias(u32),
    /// Anything else (functions, variables, sections, forward declarations).
    Other,
}

/// A parsed BTF blob.
pub struct Btf {
    types: Vec<Type>,
    structs: HashMap<String, u32>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4).map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes"))).ok_or(BtfError::Truncated("record"))
}

/// Size of a kind's trailing data after the 12-byte common record.
fn tail(kind: u32, vlen: usize, id: u32) -> Result<usize, BtfError> {
    Ok(match kind {
        kind::INT | kind::VAR | kind::DECL_TAG => 4,
        kind::ARRAY => 12,
        kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen,
        kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
        kind::PTR
        | kind::FWD
        | kind::TYPEDEF
        | kind::VOLATILE
        | kind::CONST
        | kind::RESTRICT
        | kind::FUNC
        | kind::FLOAT
        | kind::TYPE_TAG => 0,
        _ => return Err(BtfError::Kind { kind, id }),
    })
}

impl Btf {
    /// Parses a raw BTF blob (the vmlinux `.BTF` section, or
    /// /sys/kernel/btf/vmlinux).
    pub fn parse(b: &[u8]) -> Result<Btf, BtfError> {
        if b.len() < 24 {
            return Err(BtfError::Truncated("header"));
        }
        let magic = u16::from_le_bytes([b[0], b[1]]);
        if magic != 0xeb9f {
            return Err(BtfError::Magic(magic));
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let section = |off: usize, len: usize| {
            hdr_len
                .checked_add(off)
                .and_then(|s| Some((s, s.checked_add(len)?)))
                .and_then(|(s, e)| b.get(s..e))
                .ok_or(BtfError::Truncated("section"))
        };
        let ty = section(type_off, type_len)?;
        let strs = section(str_off, str_len)?;
        let name = |off: u32| -> String {
            let s = strs.get(off as usize..).unwrap_or(&[]);
            let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
            String::from_utf8_lossy(&s[..end]).into_owned()
        };
        let mut types = vec![Type::Void];
        let mut structs = HashMap::new();
        let mut p = 0;
        while p < ty.len() {
            let id = types.len() as u32;
            let (name_off, info, size_or_type) = (u32_at(ty, p)?, u32_at(ty, p + 4)?, u32_at(ty, p + 8)?);
            let vlen = (info & 0xffff) as usize;
            let k = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 != 0;
            let body = p + 12;
            let next = body + tail(k, vlen, id)?;
            if next > ty.len() {
                return Err(BtfError::Truncated("type record"));
            }
            let t = match k {
                kind::INT => Type::Int { name: name(name_off), size: size_or_type },
                kind::FLOAT => Type::Int { name: name(name_off), size: size_or_type },
                kind::PTR => Type::Ptr(size_or_type),
                kind::ARRAY => Type::Array { elem: u32_at(ty, body)?, len: u32_at(ty, body + 8)? },
                kind::STRUCT | kind::UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = body + 12 * i;
                        let off = u32_at(ty, m + 8)?;
                        let (bit_offset, bitfield_size) =
                            if kind_flag { (off & 0xff_ffff, off >> 24) } else { (off, 0) };
                        members.push(Member {
                            name: name(u32_at(ty, m)?),
                            type_id: u32_at(ty, m + 4)?,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    let n = name(name_off);
                    if k == kind::STRUCT {
                        if !n.is_empty() {
                            structs.entry(n.clone()).or_insert(id);
                        }
                        Type::Struct { name: n, size: size_or_type, members }
                    } else {
                        Type::Union { name: n, size: size_or_type, members }
                    }
                }
                kind::ENUM | kind::ENUM64 => Type::Enum { name: name(name_off), size: size_or_type },
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    Type::Alias(size_or_type)
                }
                _ => Type::Other,
            };
            types.push(t);
            p = next;
        }
        Ok(Btf { types, structs })
    }

    /// Number of types (with `void`).
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Never: a parsed blob holds at least `void`.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// The type with id `id` (`Void` for an unknown id).
    pub fn get(&self, id: u32) -> &Type {
        self.types.get(id as usize).unwrap_or(&Type::Void)
    }

    /// `id` with typedefs and qualifiers stripped.
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.get(id) {
                Type::Alias(t) => id = *t,
                _ => break,
            }
        }
        id
    }

    /// The id of the (first) struct named `name`.
    pub fn struct_id(&self, name: &str) -> Result<u32, BtfError> {
        self.structs.get(name).copied().ok_or_else(|| BtfError::NoStruct(name.into()))
    }

    /// Size in bytes of type `id` (pointers are 8: a 64-bit kernel). A
    /// hostile blob's cycles (an array of itself) end at a depth limit.
    pub fn size_of(&self, id: u32) -> u64 {
        self.size_at(id, 0)
    }

    fn size_at(&self, id: u32, depth: u32) -> u64 {
        if depth > 32 {
            return 0;
        }
        match self.get(self.resolve(id)) {
            Type::Int { size, .. } | Type::Struct { size, .. } | Type::Union { size, .. } | Type::Enum { size, .. } => {
                *size as u64
            }
            Type::Ptr(_) => 8,
            Type::Array { elem, len } => self.size_at(*elem, depth + 1).saturating_mul(*len as u64),
            _ => 0,
        }
    }

    /// Finds member `name` of the struct or union `id`, looking into
    /// anonymous members; its byte offset and type.
    fn find(&self, id: u32, name: &str, depth: u32) -> Option<(u64, u32, u32)> {
        if depth > 8 {
            return None;
        }
        let members = match self.get(self.resolve(id)) {
            Type::Struct { members, .. } | Type::Union { members, .. } => members,
            _ => return None,
        };
        for m in members {
            if m.name == name {
                return Some((m.bit_offset as u64, m.type_id, m.bitfield_size));
            }
        }
        for m in members.iter().filter(|m| m.name.is_empty()) {
            if let Some((off, t, bf)) = self.find(m.type_id, name, depth + 1) {
                return Some((m.bit_offset as u64 + off, t, bf));
            }
        }
        None
    }

    /// Byte offset and type of `path` (members separated by dots, e.g.
    /// `"pid_links"` or `"se.vruntime"`) inside struct `strukt`.
    pub fn member(&self, strukt: &str, path: &str) -> Result<Field, BtfError> {
        let mut id = self.struct_id(strukt)?;
        let mut off = 0u64;
        for part in path.split('.') {
            let (bits, t, bf) = self.find(id, part, 0).ok_or_else(|| BtfError::NoMember(strukt.into(), path.into()))?;
            if bf != 0 || bits % 8 != 0 {
                return Err(BtfError::Bitfield(format!("{strukt}.{path}")));
            }
            off += bits / 8;
            id = t;
        }
        Ok(Field { offset: off, type_id: id, size: self.size_of(id) })
    }

    /// Size of struct `name`.
    pub fn struct_size(&self, name: &str) -> Result<u64, BtfError> {
        Ok(self.size_of(self.struct_id(name)?))
    }
}

/// Where a member lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: u64,
    pub type_id: u32,
    pub size: u64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds BTF blobs for tests, record by record (the encoding of
    /// btf.rst, written out independently of the parser).
    #[derive(Default)]
    pub struct Builder {
        types: Vec<u8>,
        strs: Vec<u8>,
        next: u32,
    }

    impl Builder {
        pub fn new() -> Self {
            Builder { types: vec![], strs: vec![0], next: 1 }
        }
        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strs.len() as u32;
            self.strs.extend_from_slice(name.as_bytes());
            self.strs.push(0);
            off
        }
        fn rec(&mut self, name: &str, kind: u32, vlen: u32, flag: bool, x: u32) -> u32 {
            let n = self.s(name);
            let info = (kind << 24) | vlen | if flag { 1 << 31 } else { 0 };
            for w in [n, info, x] {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            self.next += 1;
            self.next - 1
        }
        pub fn int(&mut self, name: &str, size: u32) -> u32 {
            let id = self.rec(name, 1, 0, false, size);
            self.types.extend_from_slice(&(size * 8).to_le_bytes());
            id
        }
        pub fn ptr(&mut self, to: u32) -> u32 {
            self.rec("", 2, 0, false, to)
        }
        pub fn array(&mut self, elem: u32, index: u32, len: u32) -> u32 {
            let id = self.rec("", 3, 0, false, 0);
            for w in [elem, index, len] {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            id
        }
        pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.rec(name, 8, 0, false, to)
        }
        /// A struct (or union with `union`) of (name, type, bit offset).
        pub fn aggregate(&mut self, name: &str, union: bool, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            let names: Vec<u32> = members.iter().map(|(n, _, _)| self.s(n)).collect();
            let id = self.rec(name, if union { 5 } else { 4 }, members.len() as u32, false, size);
            for ((_, t, off), n) in members.iter().zip(names) {
                for w in [n, *t, *off] {
                    self.types.extend_from_slice(&w.to_le_bytes());
                }
            }
            id
        }
        pub fn finish(&self) -> Vec<u8> {
            let mut b = vec![];
            b.extend_from_slice(&0xeb9fu16.to_le_bytes());
            b.push(1);
            b.push(0);
            for w in [24u32, 0, self.types.len() as u32, self.types.len() as u32, self.strs.len() as u32] {
                b.extend_from_slice(&w.to_le_bytes());
            }
            b.extend_from_slice(&self.types);
            b.extend_from_slice(&self.strs);
            b
        }
    }

    #[test]
    fn layouts_through_anonymous_members_and_typedefs() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let ch = b.int("char", 1);
        let comm = b.array(ch, int, 16);
        let pid_t = b.typedef("pid_t", int);
        let inner = b.aggregate("", true, 8, &[("a", int, 0), ("b", int, 0)]);
        let s = b.aggregate("task", false, 48, &[("pid", pid_t, 0), ("", inner, 64), ("comm", comm, 128)]);
        let _p = b.ptr(s);
        let btf = Btf::parse(&b.finish()).unwrap();
        assert_eq!(btf.member("task", "pid").unwrap().offset, 0);
        assert_eq!(btf.member("task", "pid").unwrap().size, 4);
        assert_eq!(btf.member("task", "b").unwrap().offset, 8);
        assert_eq!(btf.member("task", "comm").unwrap().offset, 16);
        assert_eq!(btf.member("task", "comm").unwrap().size, 16);
        assert_eq!(btf.struct_size("task").unwrap(), 48);
        assert_eq!(btf.member("task", "nope"), Err(BtfError::NoMember("task".into(), "nope".into())));
        assert!(matches!(btf.struct_id("other"), Err(BtfError::NoStruct(_))));
    }

    #[test]
    fn nested_paths() {
        let mut b = Builder::new();
        let long = b.int("long", 8);
        let inner = b.aggregate("list_head", false, 16, &[("next", long, 0), ("prev", long, 64)]);
        b.aggregate("module", false, 64, &[("state", long, 0), ("list", inner, 64)]);
        let btf = Btf::parse(&b.finish()).unwrap();
        assert_eq!(btf.member("module", "list.prev").unwrap().offset, 16);
    }

    #[test]
    fn hostile_blobs_are_errors() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        b.aggregate("s", false, 4, &[("x", int, 0)]);
        let good = b.finish();
        for cut in 0..good.len() {
            let _ = Btf::parse(&good[..cut]);
        }
        assert!(Btf::parse(&good[..good.len() - 8]).is_err());
        let mut bad = good.clone();
        bad[0] = 0;
        assert!(matches!(Btf::parse(&bad), Err(BtfError::Magic(_))));
        // An array of itself has no size, and no stack overflow either.
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let arr = b.array(3, int, 2);
        assert_eq!(arr, 2);
        let cyc = b.array(3, int, 2);
        b.aggregate("s", false, 4, &[("x", cyc, 0)]);
        let btf = Btf::parse(&b.finish()).unwrap();
        assert_eq!(btf.member("s", "x").unwrap().size, 0);
        // An unknown kind.
        let mut bad = good;
        bad[24 + 7] = 31;
        assert!(matches!(Btf::parse(&bad), Err(BtfError::Kind { .. })));
    }

    /// The real thing, when the test is pointed at it
    /// (STRATA_BTF=path/to/vmlinux.btf); tests/monitor checks the layouts
    /// against a live guest either way.
    #[test]
    fn real_vmlinux_btf_if_given() {
        let Some(path) = std::env::var_os("STRATA_BTF") else {
            eprintln!("STRATA_BTF not set: the real-kernel layout check runs in tests/monitor");
            return;
        };
        let btf = Btf::parse(&std::fs::read(path).unwrap()).unwrap();
        let tasks = btf.member("task_struct", "tasks").unwrap();
        let comm = btf.member("task_struct", "comm").unwrap();
        assert_eq!(comm.size, 16);
        assert!(tasks.offset > 0 && tasks.offset < btf.struct_size("task_struct").unwrap());
        assert_eq!(btf.member("list_head", "prev").unwrap().offset, 8);
        crate::kernel::Layout::from_btf(&btf).expect("every layout the walkers use");
    }
}
