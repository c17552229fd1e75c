//! Messages and their payloads.
//!
//! A payload is a plain C-heap block (mimalloc's `mi_malloc`) so that ownership can
//! cross into Lua as a lightuserdata and come back (`skynet.trash`, DONTCOPY sends,
//! netpack, socket data) without the size being needed to free it. Always allocate,
//! grow and free payloads through the functions here.

use libmimalloc_sys as mi;

/// Allocate a payload block of `size` bytes plus one trailing NUL (never null).
pub fn payload_alloc(size: usize) -> *mut u8 {
    // SAFETY: malloc with a non-zero size; failure aborts like Rust's allocator does.
    unsafe {
        let p = mi::mi_malloc(size + 1) as *mut u8;
        if p.is_null() {
            std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align_unchecked(
                size + 1,
                1,
            ));
        }
        *p.add(size) = 0;
        p
    }
}

/// Copy bytes into a fresh payload block.
pub fn payload_from(bytes: &[u8]) -> *mut u8 {
    let p = payload_alloc(bytes.len());
    // SAFETY: p has room for bytes.len() + 1.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    p
}

/// Free a payload block (null is accepted).
///
/// # Safety
/// `p` must come from `payload_alloc`/`payload_from` (or libc malloc) and not be used again.
pub unsafe fn payload_free(p: *mut u8) {
    // SAFETY: `p` is a block of this allocator or null (the contract).
    unsafe { mi::mi_free(p as *mut std::ffi::c_void) }
}

/// Resize a payload block (keeps the contents up to the smaller size; `size` more
/// bytes usable). Returns null on failure, leaving `p` valid.
///
/// # Safety
/// `p` must be a payload block (or null).
pub unsafe fn payload_realloc(p: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: `p` is a block of this allocator or null (the contract).
    unsafe { mi::mi_realloc(p as *mut std::ffi::c_void, size) as *mut u8 }
}

/// Protocol type ids (core.md §2.2).
pub mod ptype {
    pub const TEXT: u8 = 0;
    pub const RESPONSE: u8 = 1;
    pub const MULTICAST: u8 = 2;
    pub const CLIENT: u8 = 3;
    pub const SYSTEM: u8 = 4;
    pub const HARBOR: u8 = 5;
    pub const SOCKET: u8 = 6;
    pub const ERROR: u8 = 7;
    pub const QUEUE: u8 = 8;
    pub const DEBUG: u8 = 9;
    pub const LUA: u8 = 10;
    pub const SNAX: u8 = 11;
    pub const TRACE: u8 = 12;

    /// Send flag: the caller hands over its buffer.
    pub const TAG_DONTCOPY: i32 = 0x10000;
    /// Send flag: allocate a session for the sender.
    pub const TAG_ALLOCSESSION: i32 = 0x20000;
}

/// One message in a service queue. 32 bytes, no heap beyond the payload.
#[derive(Debug)]
pub struct Message {
    pub source: u32,
    pub session: i32,
    pub data: *mut u8,
    pub size: usize,
    pub ty: u8,
}

// SAFETY: the payload is an exclusively owned malloc block; it moves with the message.
unsafe impl Send for Message {}

impl Message {
    /// A message carrying the payload `data` (`size` bytes).
    ///
    /// # Safety
    /// `data` is null (then `size` is ignored by [`Self::bytes`]) or a payload block
    /// (`payload_alloc`) of at least `size` bytes that the message owns from here on.
    #[inline]
    pub unsafe fn new(source: u32, session: i32, ty: u8, data: *mut u8, size: usize) -> Message {
        Message {
            source,
            session,
            data,
            size,
            ty,
        }
    }

    /// A message without payload.
    #[inline]
    pub fn empty(source: u32, session: i32, ty: u8) -> Message {
        Message {
            source,
            session,
            data: std::ptr::null_mut(),
            size: 0,
            ty,
        }
    }

    /// The payload as bytes (empty when there is none).
    pub fn bytes(&self) -> &[u8] {
        if self.data.is_null() {
            &[]
        } else {
            // SAFETY: data points at `size` bytes owned by this message.
            unsafe { std::slice::from_raw_parts(self.data, self.size) }
        }
    }

    /// Free the payload now.
    pub fn free(&mut self) {
        if !self.data.is_null() {
            // SAFETY: owned block.
            unsafe { payload_free(self.data) };
            self.data = std::ptr::null_mut();
        }
    }
}

/// Give the calling thread's free allocator pages back to the OS (cheap when there
/// are none). Called by idle threads, at most once a second each; see the scheduler.
/// Forced: a worker that polled the sockets holds read buffers freed by others.
pub fn trim_thread_heap() {
    // In mimalloc's extended API (not bound by libmimalloc-sys without a feature).
    extern "C" {
        fn mi_collect(force: bool);
    }
    // SAFETY: plain call into the allocator; no pointers involved.
    unsafe { mi_collect(true) };
}
