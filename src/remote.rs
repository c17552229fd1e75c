//! The envelope of a send to a global name or to a handle on another node (upstream's
//! `struct remote_message` of `skynet_harbor.h`), shared by the runtime, which builds
//! it (`send_name` to a name that is neither `:hex` nor `.local`; `send` to a handle
//! whose high 8 bits name another harbor), and the native `harbor` service, which
//! delivers or forwards it (core.md §12, harbor.md).
//!
//! A leaf: payload blocks only, no runtime.
//!
//! Invariants: an envelope travels as the payload block of one `PTYPE_SYSTEM` message
//! to the harbor service and owns the original payload (`data`, a payload block or
//! null) until it is delivered (DONTCOPY) or freed. `cookie` is a per-process secret:
//! a script can send the harbor any 64 bytes as `PTYPE_SYSTEM`, and an envelope
//! carries a pointer that gets freed, so only envelopes built here are trusted.

use crate::message::{payload_alloc, payload_free, ptype, Message};

/// Longest global name + 1 (upstream's `GLOBALNAME_LENGTH`).
pub const GLOBALNAME_LENGTH: usize = 16;

/// The envelope, written into a payload block (so a drain can free it like any other).
#[repr(C)]
pub struct Envelope {
    pub cookie: u64,
    pub name: [u8; GLOBALNAME_LENGTH],
    pub name_len: usize,
    /// The destination handle on another node; 0 when `name` is the destination.
    pub handle: u32,
    pub source: u32,
    pub session: i32,
    pub ty: i32,
    pub data: *mut u8,
    pub size: usize,
}

impl Envelope {
    /// The `PTYPE_SYSTEM` message from `source` carrying an envelope for `name`
    /// (shorter than [`GLOBALNAME_LENGTH`]) around the payload block `data` (or null).
    ///
    /// # Safety
    /// `data` is null or a payload block of `size` bytes that the envelope owns from
    /// here on.
    pub unsafe fn message(
        name: &str,
        source: u32,
        session: i32,
        ty: i32,
        data: *mut u8,
        size: usize,
    ) -> Message {
        // SAFETY: the caller's contract, passed on.
        unsafe { Self::build(name, 0, source, session, ty, data, size) }
    }

    /// The `PTYPE_SYSTEM` message from `source` carrying an envelope for the remote
    /// handle `handle` (nonzero) around the payload block `data` (or null).
    ///
    /// # Safety
    /// As [`Envelope::message`].
    pub unsafe fn to_handle(
        handle: u32,
        source: u32,
        session: i32,
        ty: i32,
        data: *mut u8,
        size: usize,
    ) -> Message {
        // SAFETY: the caller's contract, passed on.
        unsafe { Self::build("", handle, source, session, ty, data, size) }
    }

    /// # Safety
    /// As [`Envelope::message`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn build(
        name: &str,
        handle: u32,
        source: u32,
        session: i32,
        ty: i32,
        data: *mut u8,
        size: usize,
    ) -> Message {
        let mut env = Envelope {
            cookie: cookie(),
            name: [0; GLOBALNAME_LENGTH],
            name_len: name.len(),
            handle,
            source,
            session,
            ty: ty & 0xff,
            data,
            size,
        };
        env.name[..name.len()].copy_from_slice(name.as_bytes());
        let block = payload_alloc(std::mem::size_of::<Envelope>());
        // SAFETY: block is large enough; alignment of malloc suffices for Envelope.
        unsafe { std::ptr::write(block as *mut Envelope, env) };
        // SAFETY: `block` is a fresh payload block of that size, handed over.
        unsafe {
            Message::new(
                source,
                0,
                ptype::SYSTEM,
                block,
                std::mem::size_of::<Envelope>(),
            )
        }
    }

    /// Free an undelivered envelope message and the payload it carries.
    ///
    /// # Safety
    /// `msg` was made by [`Envelope::message`] or [`Envelope::to_handle`].
    pub unsafe fn discard(mut msg: Message) {
        // SAFETY: per the contract the payload is an envelope owning `data`.
        unsafe {
            let e = std::ptr::read(msg.data as *const Envelope);
            if !e.data.is_null() {
                payload_free(e.data);
            }
        }
        msg.free();
    }
}

/// A per-process secret (never visible to scripts) stamped on every envelope.
pub fn cookie() -> u64 {
    static COOKIE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *COOKIE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(crate::timer::hpc());
        h.finish() | 1
    })
}
