//! Small value types shared by the tracker, the G-stage builder and the
//! memory manager.

use std::fmt;

/// The machine page size the tracker works in: the architecture's base
/// page (4 KiB, `strata_arch::pte`).
pub use strata_arch::pte::{PAGE_SHIFT, PAGE_SIZE};

/// A VM's identity in the ownership tracker.
///
/// This is the hypervisor's name for a VM, not the hardware VMID in `hgatp`
/// (which is 14 bits at most and may be recycled); the hypervisor maps one to
/// the other.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct VmId(pub u32);

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VM {}", self.0)
    }
}

/// A 4 KiB machine (host-physical) page, named by its page frame number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MachinePage(u64);

impl MachinePage {
    /// The page with frame number `pfn` (machine address `pfn << 12`).
    pub const fn from_pfn(pfn: u64) -> MachinePage {
        MachinePage(pfn)
    }

    /// The page starting at machine address `pa`, or `None` if `pa` is not
    /// 4 KiB aligned.
    pub const fn from_addr(pa: u64) -> Option<MachinePage> {
        if pa % PAGE_SIZE == 0 {
            Some(MachinePage(pa >> PAGE_SHIFT))
        } else {
            None
        }
    }

    /// The page containing machine address `pa`.
    pub const fn containing(pa: u64) -> MachinePage {
        MachinePage(pa >> PAGE_SHIFT)
    }

    /// Page frame number.
    pub const fn pfn(self) -> u64 {
        self.0
    }

    /// Machine address of the first byte. Saturates instead of overflowing
    /// for frame numbers that no real machine has.
    pub const fn addr(self) -> u64 {
        self.0.saturating_mul(PAGE_SIZE)
    }
}

impl fmt::Display for MachinePage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "machine page {:#x}", self.addr())
    }
}

/// Who a machine page belongs to. Exactly one of these for every page.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Owner {
    /// Nobody: the page may be allocated. A free page is either known to be
    /// zero or is awaiting zeroing (see [`crate::Tracker::awaiting_zero`]).
    Free,
    /// Strata's hypervisor (the "host" in pKVM's terms): its own data, page
    /// tables, images it is about to donate to a VM.
    Hypervisor,
    /// A VM.
    Vm(VmId),
}

impl Owner {
    /// The VM, if this is one.
    pub const fn vm(self) -> Option<VmId> {
        match self {
            Owner::Vm(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Free => f.write_str("free"),
            Owner::Hypervisor => f.write_str("the hypervisor"),
            Owner::Vm(v) => write!(f, "{v}"),
        }
    }
}

/// A set of access permissions: any combination of read, write, execute.
///
/// Only combinations that a leaf PTE can express are [`valid`](Perms::is_valid)
/// for a mapping or a share: at least one bit, and never write without read
/// (RISC-V Privileged 20211203 §4.3.1, Table 4.5: R=0/W=1 is reserved).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Perms(u8);

impl Perms {
    pub const NONE: Perms = Perms(0);
    pub const R: Perms = Perms(1);
    pub const W: Perms = Perms(2);
    pub const X: Perms = Perms(4);
    pub const RW: Perms = Perms(1 | 2);
    pub const RX: Perms = Perms(1 | 4);
    pub const RWX: Perms = Perms(1 | 2 | 4);

    /// From the low three bits (bit 0 read, bit 1 write, bit 2 execute);
    /// higher bits are ignored.
    pub const fn from_bits(b: u8) -> Perms {
        Perms(b & 7)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Every permission in `other` is also in `self`.
    pub const fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    pub const fn read(self) -> bool {
        self.0 & 1 != 0
    }

    pub const fn write(self) -> bool {
        self.0 & 2 != 0
    }

    pub const fn exec(self) -> bool {
        self.0 & 4 != 0
    }

    /// Expressible as a leaf PTE: non-empty, and not write-without-read.
    pub const fn is_valid(self) -> bool {
        self.0 != 0 && (self.read() || !self.write())
    }
}

impl fmt::Debug for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = |on: bool, ch: char| if on { ch } else { '-' };
        write!(f, "{}{}{}", c(self.read(), 'r'), c(self.write(), 'w'), c(self.exec(), 'x'))
    }
}

/// A guest access as the G-stage sees it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Access {
    Read,
    Write,
    Execute,
}

impl Access {
    /// The permission this access needs.
    pub const fn needs(self) -> Perms {
        match self {
            Access::Read => Perms::R,
            Access::Write => Perms::W,
            Access::Execute => Perms::X,
        }
    }
}

/// An access by a host-side interface (the hypervisor's guest-memory
/// read/write interface, and through it the control API, snapshots, the
/// debugger and introspection).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HostAccess {
    Read,
    Write,
}

impl HostAccess {
    pub const fn needs(self) -> Perms {
        match self {
            HostAccess::Read => Perms::R,
            HostAccess::Write => Perms::W,
        }
    }
}

impl fmt::Display for HostAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostAccess::Read => "read",
            HostAccess::Write => "write",
        })
    }
}
