//! A running Linux kernel seen from outside: its virtual memory, read
//! through the kernel's own page tables, and its structures, found through
//! BTF layouts and `System.map` addresses.
//!
//! ## Finding the kernel
//!
//! | what | how |
//! | --- | --- |
//! | the image's VA→PA | linear: `_start` is where the loader put the Image (the machine knows) |
//! | the page-table root | `swapper_pg_dir` (init_mm's tables), through the image mapping |
//! | the translation mode | the kernel's `satp_mode` variable (Sv39/Sv48/Sv57, `strata_arch::csr::satp`) |
//! | every other VA | a walk of those tables (Priv. §4.3.2, read-only: no A/D updates) |
//! | layouts | BTF, from the image in guest memory (`__start_BTF`..`__stop_BTF`) or a file |
//!
//! Every user process shares the kernel half of its tables with
//! `swapper_pg_dir` (pgd_alloc copies it), so one root serves every
//! kernel address whatever process a hart runs.
//!
//! ## Sessions and optimistic retry
//!
//! A [`Session`] is one attempt of a check: every guest page it reads
//! (data pages, not the page tables) is watched from just before the read,
//! and [`Session::changed`] says afterwards whether the guest wrote any of
//! them. Reads never stop the guest; a session that saw a write is thrown
//! away and the check tried again.

use std::collections::{HashMap, HashSet};

use strata_arch::pte::{self, Scheme, PAGE_SHIFT, PAGE_SIZE};

use crate::btf::{Btf, BtfError};
use crate::guest::{GuestMemory, PhysError};
use crate::symbols::{SymbolError, SymbolMap};

/// What can go wrong reading a kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Symbols(#[from] SymbolError),
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error(transparent)]
    Phys(#[from] PhysError),
    #[error("kernel address {0:#x} is not mapped")]
    Unmapped(u64),
    #[error("satp_mode holds {0:#x}: not Sv39, Sv48 or Sv57 (has the kernel booted?)")]
    Mode(u64),
    #[error("{what}: more than {limit} entries (a loop, or a list changing under the walk)")]
    TooLong { what: &'static str, limit: usize },
    #[error("{0}")]
    Corrupt(String),
}

/// Structure layouts, from BTF (byte offsets).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Layout {
    pub task_tasks: u64,
    pub task_pid: u64,
    pub task_tgid: u64,
    pub task_comm: u64,
    pub task_mm: u64,
    pub task_real_parent: u64,
    pub task_signal: u64,
    pub task_thread_node: u64,
    pub task_pid_links: u64,
    pub signal_thread_head: u64,
    pub module_list: u64,
    pub module_name: u64,
    pub module_name_len: u64,
    pub module_state: u64,
    pub pid_tasks: u64,
    pub pid_ns_idr: u64,
    pub idr_rt: u64,
    pub xa_head: u64,
    pub xa_node_shift: u64,
    pub xa_node_slots: u64,
    pub xa_node_slots_len: u64,
}

impl Layout {
    pub fn from_btf(b: &Btf) -> Result<Layout, BtfError> {
        let o = |s: &str, m: &str| b.member(s, m).map(|f| f.offset);
        let slots = b.member("xa_node", "slots")?;
        let name = b.member("module", "name")?;
        Ok(Layout {
            task_tasks: o("task_struct", "tasks")?,
            task_pid: o("task_struct", "pid")?,
            task_tgid: o("task_struct", "tgid")?,
            task_comm: o("task_struct", "comm")?,
            task_mm: o("task_struct", "mm")?,
            task_real_parent: o("task_struct", "real_parent")?,
            task_signal: o("task_struct", "signal")?,
            task_thread_node: o("task_struct", "thread_node")?,
            task_pid_links: o("task_struct", "pid_links")?,
            signal_thread_head: o("signal_struct", "thread_head")?,
            module_list: o("module", "list")?,
            module_name: name.offset,
            module_name_len: name.size,
            module_state: o("module", "state")?,
            pid_tasks: o("pid", "tasks")?,
            pid_ns_idr: o("pid_namespace", "idr")?,
            idr_rt: o("idr", "idr_rt")?,
            xa_head: o("xarray", "xa_head")?,
            xa_node_shift: o("xa_node", "shift")?,
            xa_node_slots: slots.offset,
            xa_node_slots_len: slots.size / 8,
        })
    }
}

/// Where the kernel image is.
#[derive(Clone, Copy, Debug)]
pub struct ImagePlace {
    /// Guest-physical address the Image was loaded at.
    pub load_pa: u64,
}

/// A guest kernel, readable from another thread.
pub struct Kernel<G: GuestMemory> {
    pub guest: G,
    pub syms: SymbolMap,
    pub layout: Layout,
    pub btf: Btf,
    image_va: u64,
    image_end: u64,
    load_pa: u64,
    scheme: Scheme,
    root: u64,
}

/// A process (a thread-group leader, as `ps` lists them).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Process {
    pub pid: i32,
    pub tgid: i32,
    pub ppid: i32,
    pub comm: String,
    /// No user address space: a kernel thread.
    pub kernel_thread: bool,
    /// The task_struct's kernel address.
    pub task: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Module {
    pub name: String,
    pub state: u32,
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Syscall {
    pub nr: usize,
    pub address: String,
    /// The symbol the entry points into (`sym+0x..` when not at its start).
    pub symbol: String,
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Reads the BTF blob the kernel carries in its image
/// (`__start_BTF`..`__stop_BTF`, in .rodata).
pub fn btf_from_guest<G: GuestMemory>(guest: &G, syms: &SymbolMap, place: ImagePlace) -> Result<Vec<u8>, KernelError> {
    let (start, stop, image) = (syms.get("__start_BTF")?, syms.get("__stop_BTF")?, syms.get("_start")?);
    let len = stop.checked_sub(start).filter(|l| *l < 64 << 20).ok_or_else(|| {
        KernelError::Corrupt(format!("__start_BTF {start:#x} .. __stop_BTF {stop:#x} is not a BTF blob"))
    })?;
    let mut buf = vec![0; len as usize];
    guest.read_phys(start - image + place.load_pa, &mut buf)?;
    Ok(buf)
}

impl<G: GuestMemory> Kernel<G> {
    /// Sets up access to the kernel in `guest`: its symbols, its BTF, and
    /// where its image was loaded. Fails (without harm) until the kernel
    /// has set up its page tables.
    pub fn new(guest: G, syms: SymbolMap, btf: Btf, place: ImagePlace) -> Result<Self, KernelError> {
        let layout = Layout::from_btf(&btf)?;
        let image_va = syms.get("_start")?;
        let image_end = syms.get("_end")?;
        let mut k = Kernel {
            guest,
            syms,
            layout,
            btf,
            image_va,
            image_end,
            load_pa: place.load_pa,
            scheme: Scheme::SV39,
            root: 0,
        };
        k.refresh_mode()?;
        Ok(k)
    }

    /// Reads `satp_mode` and the root again (they are set early in boot).
    pub fn refresh_mode(&mut self) -> Result<(), KernelError> {
        let mode_va = self.syms.get("satp_mode")?;
        let mut b = [0u8; 8];
        self.guest.read_phys(self.image_pa(mode_va)?, &mut b)?;
        let mode = u64::from_le_bytes(b);
        let field = (mode & strata_arch::csr::satp::MODE) >> strata_arch::csr::satp::MODE_SHIFT;
        self.scheme = Scheme::from_atp_mode(field, false).ok_or(KernelError::Mode(mode))?;
        self.root = self.image_pa(self.syms.get("swapper_pg_dir")?)?;
        Ok(())
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Guest-physical address of a kernel-image address (a linear map).
    pub fn image_pa(&self, va: u64) -> Result<u64, KernelError> {
        if (self.image_va..self.image_end).contains(&va) {
            Ok(va - self.image_va + self.load_pa)
        } else {
            Err(KernelError::Unmapped(va))
        }
    }

    /// Whether `va` is inside the kernel image.
    pub fn in_image(&self, va: u64) -> bool {
        (self.image_va..self.image_end).contains(&va)
    }

    /// Translates a kernel virtual address through the kernel's tables.
    pub fn translate(&self, va: u64) -> Result<u64, KernelError> {
        if !self.scheme.va_ok(va) {
            return Err(KernelError::Unmapped(va));
        }
        let mut table = self.root;
        for level in (0..self.scheme.levels).rev() {
            let mut b = [0u8; 8];
            self.guest.read_phys(table + self.scheme.index(va, level) * 8, &mut b)?;
            let e = u64::from_le_bytes(b);
            if e & pte::V == 0 {
                return Err(KernelError::Unmapped(va));
            }
            let base = pte::ppn(e) << PAGE_SHIFT;
            if pte::is_leaf(e) {
                let shift = Scheme::page_shift(level);
                return Ok(base + (va & ((1 << shift) - 1)));
            }
            table = base;
        }
        Err(KernelError::Unmapped(va))
    }

    /// A new attempt; `watch` arms write watches on what it reads.
    pub fn session(&self, watch: bool) -> Session<'_, G> {
        Session { k: self, watch, watched: HashMap::new(), tlb: HashMap::new(), reads: 0 }
    }
}

/// The most guest reads one attempt makes.
pub const READ_BUDGET: u64 = 1 << 22;

/// One attempt of a check (see the module documentation).
pub struct Session<'k, G: GuestMemory> {
    pub k: &'k Kernel<G>,
    watch: bool,
    /// Guest-physical page → generation when armed.
    watched: HashMap<u64, u32>,
    /// Kernel virtual page → guest-physical page, for this attempt.
    tlb: HashMap<u64, u64>,
    pub reads: u64,
}

impl<G: GuestMemory> Session<'_, G> {
    fn page_pa(&mut self, vpage: u64) -> Result<u64, KernelError> {
        if let Some(p) = self.tlb.get(&vpage) {
            return Ok(*p);
        }
        let p = self.k.translate(vpage)?;
        self.tlb.insert(vpage, p);
        Ok(p)
    }

    /// Reads kernel virtual memory. At most [`READ_BUDGET`] reads an
    /// attempt: a guest that builds endless structures wastes the
    /// monitor's time only up to that.
    pub fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), KernelError> {
        if self.reads >= READ_BUDGET {
            return Err(KernelError::TooLong { what: "one attempt's reads", limit: READ_BUDGET as usize });
        }
        let mut done = 0;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let vpage = a & !(PAGE_SIZE - 1);
            let n = ((PAGE_SIZE - (a - vpage)) as usize).min(buf.len() - done);
            let pa = self.page_pa(vpage)? + (a - vpage);
            self.arm(pa);
            self.k.guest.read_phys(pa, &mut buf[done..done + n])?;
            done += n;
        }
        self.reads += 1;
        Ok(())
    }

    /// Reads guest-physical memory, watched as [`read`](Self::read) is.
    pub fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> Result<(), KernelError> {
        let mut a = pa;
        while a < pa + buf.len() as u64 {
            self.arm(a);
            a = (a & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        }
        self.k.guest.read_phys(pa, buf)?;
        self.reads += 1;
        Ok(())
    }

    fn arm(&mut self, pa: u64) {
        if self.watch {
            let page = pa >> PAGE_SHIFT;
            if let std::collections::hash_map::Entry::Vacant(e) = self.watched.entry(page) {
                if let Some(g) = self.k.guest.arm(pa) {
                    e.insert(g);
                }
            }
        }
    }

    pub fn u64(&mut self, va: u64) -> Result<u64, KernelError> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn u32(&mut self, va: u64) -> Result<u32, KernelError> {
        let mut b = [0u8; 4];
        self.read(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn u8(&mut self, va: u64) -> Result<u8, KernelError> {
        let mut b = [0u8; 1];
        self.read(va, &mut b)?;
        Ok(b[0])
    }

    /// The first watched page the guest wrote since this attempt read it
    /// (guest-physical address), if any.
    pub fn changed(&self) -> Option<u64> {
        self.watched.iter().find(|(p, g)| !self.k.guest.unchanged(*p << PAGE_SHIFT, **g)).map(|(p, _)| p << PAGE_SHIFT)
    }

    /// Pages this attempt watched.
    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// Walks a circular `list_head` from `head` (not included); the
    /// addresses of the entries' `list_head`s.
    pub fn list(&mut self, head: u64, what: &'static str, limit: usize) -> Result<Vec<u64>, KernelError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut p = self.u64(head)?;
        while p != head {
            if out.len() >= limit || !seen.insert(p) {
                return Err(KernelError::TooLong { what, limit });
            }
            out.push(p);
            p = self.u64(p)?;
        }
        Ok(out)
    }

    /// The thread-group leaders, in task-list order (init_task itself, pid
    /// 0, is the list head and not included, as `ps` leaves it out).
    pub fn processes(&mut self) -> Result<Vec<Process>, KernelError> {
        let l = self.k.layout.clone();
        let init = self.k.syms.get("init_task")?;
        let mut out = Vec::new();
        for node in self.list(init + l.task_tasks, "the task list", 1 << 16)? {
            let t = node - l.task_tasks;
            let mut comm = [0u8; 16];
            self.read(t + l.task_comm, &mut comm)?;
            let parent = self.u64(t + l.task_real_parent)?;
            out.push(Process {
                pid: self.u32(t + l.task_pid)? as i32,
                tgid: self.u32(t + l.task_tgid)? as i32,
                ppid: self.u32(parent + l.task_tgid)? as i32,
                comm: c_string(&comm),
                kernel_thread: self.u64(t + l.task_mm)? == 0,
                task: format!("{t:#x}"),
            });
        }
        Ok(out)
    }

    /// Every task reachable from the task list: each leader and its
    /// threads (signal->thread_head); task addresses.
    pub fn all_tasks(&mut self) -> Result<HashSet<u64>, KernelError> {
        let l = self.k.layout.clone();
        let init = self.k.syms.get("init_task")?;
        let mut out = HashSet::new();
        out.insert(init);
        for node in self.list(init + l.task_tasks, "the task list", 1 << 16)? {
            let t = node - l.task_tasks;
            out.insert(t);
            let sig = self.u64(t + l.task_signal)?;
            if sig == 0 {
                continue;
            }
            for th in self.list(sig + l.signal_thread_head, "a thread list", 1 << 16)? {
                out.insert(th - l.task_thread_node);
            }
        }
        Ok(out)
    }

    /// The tasks the pid table (init_pid_ns.idr, an xarray) names: for
    /// every pid number, the task whose PIDTYPE_PID link is on it.
    pub fn pid_table_tasks(&mut self) -> Result<Vec<(u64, u64)>, KernelError> {
        let l = self.k.layout.clone();
        let ns = self.k.syms.get("init_pid_ns")?;
        let head = self.u64(ns + l.pid_ns_idr + l.idr_rt + l.xa_head)?;
        let mut pids = Vec::new();
        self.xa_walk(head, 0, &mut pids)?;
        let mut out = Vec::new();
        for pid in pids {
            // pid->tasks[PIDTYPE_PID].first: an hlist_node in task->pid_links[0].
            let first = self.u64(pid + l.pid_tasks)?;
            if first != 0 {
                out.push((pid, first - l.task_pid_links));
            }
        }
        Ok(out)
    }

    /// An xarray entry (include/linux/xarray.h: internal entries have low
    /// bits 10; those above 4096 are node pointers).
    fn xa_walk(&mut self, e: u64, depth: u32, out: &mut Vec<u64>) -> Result<(), KernelError> {
        if e == 0 {
            return Ok(());
        }
        if e & 3 == 2 && e > 4096 {
            if depth > 12 || out.len() > 1 << 20 {
                return Err(KernelError::TooLong { what: "the pid table", limit: 1 << 20 });
            }
            let node = e - 2;
            let l = self.k.layout.clone();
            let mut slots = vec![0u8; l.xa_node_slots_len as usize * 8];
            self.read(node + l.xa_node_slots, &mut slots)?;
            for s in slots.chunks(8) {
                self.xa_walk(u64::from_le_bytes(s.try_into().expect("8 bytes")), depth + 1, out)?;
            }
        } else if e & 3 == 0 {
            out.push(e);
        }
        Ok(())
    }

    /// Loaded modules, from the `modules` list.
    pub fn modules(&mut self) -> Result<Vec<Module>, KernelError> {
        let l = self.k.layout.clone();
        let head = self.k.syms.get("modules")?;
        let mut out = Vec::new();
        for node in self.list(head, "the module list", 4096)? {
            let m = node - l.module_list;
            let mut name = vec![0u8; l.module_name_len as usize];
            self.read(m + l.module_name, &mut name)?;
            out.push(Module {
                name: c_string(&name),
                state: self.u32(m + l.module_state)?,
                address: format!("{m:#x}"),
            });
        }
        Ok(out)
    }

    /// The system-call table's entries (raw addresses).
    pub fn syscall_entries(&mut self) -> Result<Vec<u64>, KernelError> {
        let (base, n) = syscall_table(&self.k.syms)?;
        let mut b = vec![0u8; n * 8];
        self.read(base, &mut b)?;
        Ok(b.chunks(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }

    /// The system-call table with symbols.
    pub fn syscalls(&mut self) -> Result<Vec<Syscall>, KernelError> {
        let e = self.syscall_entries()?;
        Ok(e.iter()
            .enumerate()
            .map(|(nr, a)| Syscall { nr, address: format!("{a:#x}"), symbol: self.k.symbol(*a) })
            .collect())
    }
}

impl<G: GuestMemory> Kernel<G> {
    /// `sym` or `sym+0xoff` for an address.
    pub fn symbol(&self, a: u64) -> String {
        match self.syms.lookup(a) {
            Some((s, 0)) if self.in_image(a) => s.to_string(),
            Some((s, off)) if self.in_image(a) => format!("{s}+{off:#x}"),
            _ => format!("{a:#x} (outside the kernel image)"),
        }
    }
}

/// Where `sys_call_table` is and how many entries it has: up to the next
/// symbol in the map (its padding included; callers see those as entries
/// that point nowhere useful).
pub fn syscall_table(syms: &SymbolMap) -> Result<(u64, usize), KernelError> {
    let base = syms.get("sys_call_table")?;
    let end = syms.next_above(base).unwrap_or(base + 8 * 512);
    Ok((base, (((end - base) / 8) as usize).min(1024)))
}
