//! Page ownership for Strata's hypervisor, and the G-stage tables that
//! enforce it.
//!
//! This crate is the pure core of the hypervisor's memory isolation. It has
//! no emulator dependencies: it is a state machine over page numbers plus a
//! page-table builder that writes through a small memory trait, so it can be
//! tested exhaustively on its own and reasoned about apart from the rest of
//! Strata.
//!
//! - [`Tracker`]: one ownership state machine for all machine memory.
//! - [`GStage`]: G-stage page tables in the hardware format (RISC-V
//!   Privileged Architecture 20211203 §8.5.1, Sv39x4 and Sv48x4).
//! - [`HypMemory`]: the two kept in step over machine memory; the layer the
//!   hypervisor calls.
//!
//! # The ownership model
//!
//! Machine memory is a range of 4 KiB pages. Every page has exactly one
//! [`Owner`]: [`Owner::Free`], [`Owner::Hypervisor`] or [`Owner::Vm`]. On top
//! of ownership a page has:
//!
//! - **borrowers**: parties (the hypervisor or VMs) the owner has shared it
//!   with, each with the permissions it was granted;
//! - a **donor**: the party that donated it to its current owner, which may
//!   reclaim it;
//! - an **awaiting-zero** flag: the page holds a previous owner's data and
//!   nobody may map, share, donate or host-access it until it is zeroed;
//! - **mappings**: the (VM, guest-physical address) pairs that map it, with
//!   their permissions — the reverse map answering "who maps page P?".
//!
//! A VM is created *protected* or not. The vocabulary is pKVM's: *donate*
//! moves ownership, *share* lends without moving it, *reclaim* takes back.
//!
//! ## State table
//!
//! "Requester" is who asks (the hypervisor, on its own behalf or on a VM's
//! hypercall, names it). Every row's conditions are checked before anything
//! changes; any failed condition is an [`OwnershipError`] and no change.
//! "Teardown" means: the mappings are removed and reported in
//! [`Effects::unmapped`] for TLB invalidation.
//!
//! | operation | requires | then | teardown | awaits zero |
//! |---|---|---|---|---|
//! | `create_vm(v, prot)` | `v` does not exist | `v` exists, owns nothing | – | – |
//! | `destroy_vm(v)` | `v` exists | pages owned by `v` → Free; loans to `v` end; donor `v` forgotten | all of `v`'s mappings, and borrowers' mappings of `v`'s pages | every page `v` owned |
//! | `donate(Free, p, to)` (alloc) | `p` Free and zeroed | owner `to` | – | – |
//! | `donate(o, p, Free)` (release) | `o` owns `p`, not lent, not awaiting zero | owner Free | `o`'s mappings of `p` | yes |
//! | `donate(o, p, to)` | `o` owns `p`; `p` not lent, not awaiting zero; `to` ≠ `o` | owner `to`, donor `o` | `o`'s mappings of `p` | yes if `o` is a protected VM, else no |
//! | `share(o, p, b, perms)` | `o` owns `p`; not awaiting zero; `b` not already a borrower; if `o` is a protected VM, `b` is the hypervisor | `b` borrows `p` with `perms` | – | – |
//! | `unshare(o, p, b)` | `o` owns `p`; `b` borrows it | loan ends | `b`'s mappings of `p` | – |
//! | `reclaim(o, p)`, own page | `o` owns `p`, which is lent | every loan ends | all borrowers' mappings | – |
//! | `reclaim(r, p)`, other's page | owner is not a protected VM; `r` is the donor, or `r` is the hypervisor and the owner a VM | owner `r`, loans end, no donor | every mapping of `p` | yes |
//! | `map(v, gpa, p, perms)` | `v` exists; `gpa` aligned and unused in `v`; `p` not awaiting zero; `v` owns `p`, or borrows it with ⊇ `perms` | mapping recorded | – | – |
//! | `unmap(v, gpa)` | `v` maps `gpa` | mapping removed | that mapping | – |
//! | `zero_page(p)` / `zero_pending()` | – | zeroer called, flag cleared | – | cleared |
//! | `host_access(p, a)` | not awaiting zero; if owner is a protected VM, it shared `p` with the hypervisor with `a`; no writes to Free pages | (query) | – | – |
//!
//! ## Invariants
//!
//! Checked by [`Tracker::check_invariants`] and, independently, by the
//! model-based tests after every step:
//!
//! 1. Every page has exactly one owner; owners and borrowers exist.
//! 2. A page mapped by VM X is owned by X, or borrowed by X with at least the
//!    mapped permissions.
//! 3. A protected VM's page is lent to nobody but the hypervisor, and so is
//!    mapped by no other VM; no host interface can read or write it unless
//!    the VM shared it with the hypervisor for that access.
//! 4. A page awaiting zero is mapped by nobody, lent to nobody, and refused
//!    to host interfaces; pages reclaimed from an owner, released, given up
//!    by a protected VM, or left by a destroyed VM await zero, so their next
//!    owner reads zeros.
//! 5. ([`HypMemory`]) Every VM's G-stage leaves are exactly its recorded
//!    mappings, so no translation grants an access the bookkeeping refuses;
//!    table pages are hypervisor-owned and never reachable by a VM.
//!
//! ## Protected VMs and sharing
//!
//! A protected VM's pages can be shared by no one else (only an owner can
//! share at all) and reclaimed by no one while the VM lives (the host could
//! otherwise swap a page under a running guest). The VM itself *may* share a
//! page explicitly, but only with the hypervisor — pKVM's "share with host" —
//! so that virtio rings and bounce buffers work: the host's device models
//! then reach that page through the host interface, with the permissions the
//! VM granted, until the VM unshares it. A protected VM may give a page up
//! by donating it (e.g. ballooning); the page then awaits zero, so its data
//! never leaves the VM that way. A protected VM may *borrow* pages others
//! share with it; those are not protected memory (their owner sees them)
//! and the guest must treat them as it treats any shared buffer.
//!
//! ## The trust boundary
//!
//! This crate decides who may reach which page; it is the single place the
//! rules live. What it relies on:
//!
//! - **The caller names the requester truthfully.** When a VM's hypercall
//!   asks to share or donate, the hypervisor must pass that VM as the
//!   requester. The tracker cannot see who is really asking.
//! - **Every guest-visible path goes through the G-stage tables built here,
//!   and every host-side path through [`HypMemory::host_read`] /
//!   [`HypMemory::host_write`] (or [`Tracker::host_access`]).** Device
//!   models, snapshots, the debugger and the control API must not touch
//!   guest RAM behind it.
//! - **The caller invalidates the TLB** for every [`Unmap`] it is handed
//!   before it lets the page be used by its next owner.
//! - **The emulator process itself is trusted**: Strata is an emulator, so
//!   anything with access to its address space (the process, its host OS,
//!   a debugger attached to it) sees every VM's memory. "Protected" means
//!   protected from the other VMs and from Strata's own host-side interfaces,
//!   in the spirit of pKVM where the host kernel is untrusted — not from the
//!   machine that runs Strata.
//!
//! What it guarantees, given that: the invariants above hold after every
//! operation, whatever sequence of requests arrives; bad requests are errors,
//! never panics, and never partial changes.

mod gstage;
mod hyp;
mod tracker;
mod types;

#[cfg(test)]
mod model_tests;

pub use gstage::{pte, GStage, GStageError, GStageMode, Leaf, PageSize, TableMemError, TableMemory};
pub use hyp::{Error, HypMemory, MachineMemory};
pub use tracker::{Effects, OwnershipError, PageZeroer, Refused, SearchFrom, Tracker, Unmap, ZeroFailed};
pub use types::{Access, HostAccess, MachinePage, Owner, Perms, VmId, PAGE_SHIFT, PAGE_SIZE};
