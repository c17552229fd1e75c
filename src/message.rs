//! Messages and their payloads.
//!
//! A payload is a plain `libc::malloc` block so that ownership can cross into Lua as
//! a lightuserdata and come back (`skynet.trash`, DONTCOPY sends, netpack, socket data)
//! without the size being needed to free it.

/// Allocate a payload block of `size` bytes plus one trailing NUL (never null).
pub fn payload_alloc(size: usize) -> *mut u8 {
    // SAFETY: malloc with a non-zero size; failure aborts like Rust's allocator does.
    unsafe {
        let p = libc::malloc(size + 1) as *mut u8;
        if p.is_null() {
            std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align_unchecked(size + 1, 1));
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
    libc::free(p as *mut libc::c_void)
}
