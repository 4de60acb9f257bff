//! The executable code buffer: one anonymous mapping, filled front to back
//! and emptied all at once when full.

use std::ptr::NonNull;

pub(crate) struct CodeBuf {
    ptr: NonNull<u8>,
    cap: usize,
    pos: usize,
}

// SAFETY: the buffer owns its mapping exclusively (nothing else holds its
// address except code inside it), so moving it to another thread moves sole
// ownership of that memory.
unsafe impl Send for CodeBuf {}

impl CodeBuf {
    /// Maps `cap` bytes readable, writable and executable. `None` if the
    /// host refuses (the hart then interprets everything).
    pub fn new(cap: usize) -> Option<Self> {
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory; the result is checked before
        // use. MAP_NORESERVE: pages cost host memory only once written.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                cap,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Self { ptr: NonNull::new(p as *mut u8)?, cap, pos: 0 })
    }

    /// Address at which the next [`push`](Self::push) will place code.
    #[inline]
    pub fn next_addr(&self) -> u64 {
        self.ptr.as_ptr() as u64 + ((self.pos as u64 + 15) & !15)
    }

    #[inline]
    pub fn addr(&self, off: usize) -> u64 {
        self.ptr.as_ptr() as u64 + off as u64
    }

    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Appends `code` at the next 16-byte boundary and returns its offset,
    /// or `None` (writing nothing) if it does not fit.
    pub fn push(&mut self, code: &[u8]) -> Option<usize> {
        let at = (self.pos + 15) & !15;
        if at > self.cap || code.len() > self.cap - at {
            return None;
        }
        // SAFETY: `at + code.len() <= cap`, so the destination lies inside
        // the mapping; `code` is a separate heap buffer, so they do not
        // overlap. No code in the buffer runs while the run loop compiles
        // (one thread owns the hart), so nothing executes these bytes while
        // they change, and the bytes written were never executed before
        // (x86 keeps instruction fetch coherent with such stores).
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), self.ptr.as_ptr().add(at), code.len()) };
        self.pos = at + code.len();
        Some(at)
    }

    /// Overwrites the 4 bytes at offset `off` (inside code already
    /// pushed) with `v`; out-of-range offsets are ignored.
    pub fn patch_i32(&mut self, off: usize, v: i32) {
        if off.checked_add(4).is_some_and(|end| end <= self.pos) {
            // SAFETY: `off..off+4` lies inside the written part of the
            // mapping. No code runs while the run loop patches (one thread
            // owns the hart); the bytes are a jump's displacement, so the
            // next execution sees either the old or the new target.
            unsafe { std::ptr::write_unaligned(self.ptr.as_ptr().add(off) as *mut i32, v) };
        }
    }

    /// Forgets everything from offset `keep` on.
    pub fn truncate(&mut self, keep: usize) {
        self.pos = keep.min(self.pos);
    }
}

impl Drop for CodeBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; the hart that owned
        // this buffer is being dropped, so no code in it can run again.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.cap);
        }
    }
}
