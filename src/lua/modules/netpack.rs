//! `skynet.netpack` (2016 name `netpack`): 2-byte big-endian length framing over
//! `PTYPE_SOCKET` messages (`socket.md` §5).
//!
//! # Design
//!
//! The queue is a full userdata holding one pointer to a Rust `Queue` (freed by
//! `__gc`): per socket id a partial packet (or a lone first header byte), plus a FIFO
//! of completed packets for `pop`. Completed packets are `payload_alloc` blocks owned by
//! whoever pops them. `filter` always frees the DATA block it is given.
//!
//! # Invariants
//!
//! * Lua errors `longjmp`: every function raises only from a frame that holds no Rust
//!   value with a destructor (messages are formatted, pushed, dropped, then raised).
//! * The queue never holds a packet block twice; `clear` and `__gc` free everything.

#![allow(non_snake_case)]

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, CStr};

use mlua::ffi::{self, lua_State};

use crate::lua::ffi::{new_lib, push_str};
use crate::message::{payload_alloc, payload_free};
use crate::socket::{
    SocketMessage, HEADER_SIZE, SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_CONNECT, SOCKET_DATA,
    SOCKET_ERROR, SOCKET_WARNING,
};

const QUEUE_META: &CStr = c"skynet.netpack.queue";

struct Partial {
    /// A lone first length byte (the second has not arrived yet).
    lone: Option<u8>,
    buf: *mut u8,
    need: usize,
    got: usize,
}

impl Drop for Partial {
    fn drop(&mut self) {
        // SAFETY: buf is null or our payload block.
        unsafe { payload_free(self.buf) };
    }
}

struct Packet {
    fd: i32,
    buf: *mut u8,
    size: usize,
}

#[derive(Default)]
struct Queue {
    partial: HashMap<i32, Partial>,
    ready: VecDeque<Packet>,
}

impl Queue {
    fn clear(&mut self) {
        self.partial.clear();
        for p in self.ready.drain(..) {
            // SAFETY: our block.
            unsafe { payload_free(p.buf) };
        }
    }

    /// Feed `data` for `fd`; completed packets go to `ready`. Returns how many packets
    /// completed and whether a partial one remains.
    fn push_data(&mut self, fd: i32, data: &[u8]) -> (usize, bool) {
        let mut done = 0;
        let mut p = 0;
        if let Some(mut part) = self.partial.remove(&fd) {
            if let Some(hi) = part.lone {
                if data.is_empty() {
                    self.partial.insert(fd, part);
                    return (0, true);
                }
                part.need = (hi as usize) << 8 | data[0] as usize;
                part.lone = None;
                part.buf = payload_alloc(part.need);
                part.got = 0;
                p = 1;
            }
            let take = (part.need - part.got).min(data.len() - p);
            // SAFETY: buf holds need bytes; got + take <= need.
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr().add(p), part.buf.add(part.got), take)
            };
            part.got += take;
            p += take;
            if part.got < part.need {
                self.partial.insert(fd, part);
                return (0, true);
            }
            let buf = std::mem::replace(&mut part.buf, std::ptr::null_mut());
            self.ready.push_back(Packet {
                fd,
                buf,
                size: part.need,
            });
            done += 1;
        }
        while p < data.len() {
            let left = data.len() - p;
            if left == 1 {
                self.partial.insert(
                    fd,
                    Partial {
                        lone: Some(data[p]),
                        buf: std::ptr::null_mut(),
                        need: 0,
                        got: 0,
                    },
                );
                return (done, true);
            }
            let need = (data[p] as usize) << 8 | data[p + 1] as usize;
            p += 2;
            let avail = (data.len() - p).min(need);
            let buf = payload_alloc(need);
            // SAFETY: buf holds need >= avail bytes.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr().add(p), buf, avail) };
            p += avail;
            if avail < need {
                self.partial.insert(
                    fd,
                    Partial {
                        lone: None,
                        buf,
                        need,
                        got: avail,
                    },
                );
                return (done, true);
            }
            self.ready.push_back(Packet {
                fd,
                buf,
                size: need,
            });
            done += 1;
        }
        (done, false)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The queue behind a queue userdata at `idx`, or null (nil / not a queue).
unsafe fn queue_at(L: *mut lua_State, idx: c_int) -> *mut Queue {
    // SAFETY: `L` is the calling C function's valid state; a queue userdata holds a pointer
    // to its boxed `Queue` (or null once collected).
    unsafe {
        let ud = ffi::luaL_testudata(L, idx, QUEUE_META.as_ptr()) as *mut *mut Queue;
        if ud.is_null() {
            std::ptr::null_mut()
        } else {
            *ud
        }
    }
}

unsafe extern "C-unwind" fn queue_gc(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let ud = ffi::luaL_testudata(L, 1, QUEUE_META.as_ptr()) as *mut *mut Queue;
        if !ud.is_null() && !(*ud).is_null() {
            drop(Box::from_raw(*ud));
            *ud = std::ptr::null_mut();
        }
        0
    }
}

/// Push a new queue userdata; returns its queue.
unsafe fn new_queue(L: *mut lua_State) -> *mut Queue {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let ud = ffi::lua_newuserdatauv(L, std::mem::size_of::<*mut Queue>(), 0) as *mut *mut Queue;
        *ud = std::ptr::null_mut();
        if ffi::luaL_newmetatable(L, QUEUE_META.as_ptr()) != 0 {
            ffi::lua_pushcfunction(L, queue_gc);
            ffi::lua_setfield(L, -2, c"__gc".as_ptr());
        }
        ffi::lua_setmetatable(L, -2);
        let q = Box::into_raw(Box::<Queue>::default());
        *ud = q;
        q
    }
}

unsafe fn push_packet(L: *mut lua_State, p: Packet) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        ffi::lua_pushinteger(L, p.fd as ffi::lua_Integer);
        ffi::lua_pushlightuserdata(L, p.buf as *mut _);
        ffi::lua_pushinteger(L, p.size as ffi::lua_Integer);
    }
}

/// `filter(queue, msg, sz)` → `queue, type, ...`
unsafe extern "C-unwind" fn lfilter(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let msg = ffi::lua_touserdata(L, 2) as *const u8;
        let sz = usize::try_from(ffi::luaL_checkinteger(L, 3)).unwrap_or(0);
        if msg.is_null() || sz < HEADER_SIZE {
            ffi::lua_settop(L, 1);
            return 1;
        }
        let m = std::ptr::read_unaligned(msg as *const SocketMessage);
        let text = std::slice::from_raw_parts(msg.add(HEADER_SIZE), sz - HEADER_SIZE);
        // Keep (or create) the queue as the first result.
        let mut q = queue_at(L, 1);
        ffi::lua_settop(L, 1);
        if q.is_null() {
            ffi::lua_settop(L, 0);
            q = new_queue(L);
        }
        let q = &mut *q;
        match m.kind {
            SOCKET_DATA => {
                let data = if m.buffer.is_null() || m.ud <= 0 {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(m.buffer, m.ud as usize)
                };
                let before = q.ready.len();
                let (done, partial) = q.push_data(m.id, data);
                payload_free(m.buffer);
                if done == 1 && !partial && before == 0 {
                    // Push the (allocating, possibly raising) string before taking the
                    // packet out of the queue, so a memory error cannot lose the block.
                    ffi::lua_pushstring(L, c"data".as_ptr());
                    if let Some(p) = q.ready.pop_back() {
                        push_packet(L, p);
                        return 5;
                    }
                }
                if done > 0 {
                    ffi::lua_pushstring(L, c"more".as_ptr());
                    return 2;
                }
                1
            }
            SOCKET_CLOSE => {
                q.partial.remove(&m.id);
                ffi::lua_pushstring(L, c"close".as_ptr());
                ffi::lua_pushinteger(L, m.id as _);
                3
            }
            SOCKET_ACCEPT => {
                ffi::lua_pushstring(L, c"open".as_ptr());
                ffi::lua_pushinteger(L, m.ud as _);
                push_str(L, text);
                4
            }
            SOCKET_ERROR => {
                q.partial.remove(&m.id);
                ffi::lua_pushstring(L, c"error".as_ptr());
                ffi::lua_pushinteger(L, m.id as _);
                push_str(L, text);
                4
            }
            SOCKET_WARNING => {
                ffi::lua_pushstring(L, c"warning".as_ptr());
                ffi::lua_pushinteger(L, m.id as _);
                ffi::lua_pushinteger(L, m.ud as _);
                4
            }
            SOCKET_CONNECT => {
                ffi::lua_pushstring(L, c"init".as_ptr());
                ffi::lua_pushinteger(L, m.id as _);
                push_str(L, text);
                ffi::lua_pushinteger(L, m.ud as _);
                5
            }
            _ => {
                // UDP and unknown types: the data block (if any) is not ours to keep.
                if !m.buffer.is_null() && m.kind == crate::socket::SOCKET_UDP {
                    payload_free(m.buffer);
                }
                1
            }
        }
    }
}

/// `pop(queue)` → `fd, msg, sz` or nothing.
unsafe extern "C-unwind" fn lpop(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let q = queue_at(L, 1);
        if q.is_null() {
            return 0;
        }
        match (*q).ready.pop_front() {
            Some(p) => {
                push_packet(L, p);
                3
            }
            None => 0,
        }
    }
}

/// `pack(str)` / `pack(ptr, sz)` → `ptr, sz + 2`.
unsafe extern "C-unwind" fn lpack(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let mut len = 0usize;
        let src: *const u8 = if ffi::lua_isuserdata(L, 1) != 0 {
            // A negative size maps to "too long" below.
            len = usize::try_from(ffi::luaL_checkinteger(L, 2)).unwrap_or(usize::MAX);
            let p = ffi::lua_touserdata(L, 1) as *const u8;
            if p.is_null() && len > 0 {
                return ffi::luaL_error(L, c"netpack.pack: NULL pointer with a size".as_ptr());
            }
            p
        } else {
            // Strings and numbers (as text); anything else is an argument error. (A
            // table once fell through to a NULL pointer and sent uninitialised bytes.)
            ffi::luaL_checklstring(L, 1, &mut len) as *const u8
        };
        if len >= 0x10000 {
            return ffi::luaL_error(
                L,
                c"Invalid size (too long) of data : %d".as_ptr(),
                len.min(c_int::MAX as usize) as c_int,
            );
        }
        let out = payload_alloc(len + 2);
        *out = (len >> 8) as u8;
        *out.add(1) = len as u8;
        if len > 0 {
            std::ptr::copy_nonoverlapping(src, out.add(2), len);
        }
        ffi::lua_pushlightuserdata(L, out as *mut _);
        ffi::lua_pushinteger(L, (len + 2) as _);
        2
    }
}

/// `clear(queue)`: free every partial and queued packet.
unsafe extern "C-unwind" fn lclear(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let q = queue_at(L, 1);
        if !q.is_null() {
            (*q).clear();
        }
        0
    }
}

/// `tostring(ptr, sz)`: copy into a string and free `ptr`.
unsafe extern "C-unwind" fn ltostring(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let p = ffi::lua_touserdata(L, 1) as *mut u8;
        if p.is_null() {
            ffi::lua_pushstring(L, c"".as_ptr());
            return 1;
        }
        let Ok(sz) = usize::try_from(ffi::luaL_checkinteger(L, 2)) else {
            return ffi::luaL_error(L, c"netpack.tostring: negative size".as_ptr());
        };
        ffi::lua_pushlstring(L, p as *const _, sz);
        payload_free(p);
        1
    }
}

/// `require "skynet.netpack"` (also registered as `netpack`).
///
/// # Safety
/// Called by Lua with a valid state.
pub unsafe extern "C-unwind" fn luaopen_skynet_netpack(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        new_lib(
            L,
            &[
                (c"filter", lfilter),
                (c"pop", lpop),
                (c"pack", lpack),
                (c"clear", lclear),
                (c"tostring", ltostring),
            ],
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded random streams fed in random pieces (including empty ones) frame exactly
    /// like a one-shot reference parse, across sockets interleaved.
    #[test]
    fn random_splits_frame_like_the_reference() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..50 {
            let stream: Vec<u8> = (0..2000 + rnd(3000)).map(|_| rnd(256) as u8).collect();
            // Reference: complete packets of the whole stream, with small lengths
            // forced now and then so rounds see many packets.
            let mut stream = stream;
            let mut off = 0;
            let mut want = Vec::new();
            while stream.len() - off >= 2 {
                if round % 2 == 0 {
                    stream[off] = 0;
                }
                let len = (stream[off] as usize) << 8 | stream[off + 1] as usize;
                if stream.len() - off - 2 < len {
                    break;
                }
                want.push(stream[off + 2..off + 2 + len].to_vec());
                off += 2 + len;
            }
            let mut q = Queue::default();
            let mut p = 0;
            while p < stream.len() {
                let k = rnd(40).min(stream.len() - p);
                q.push_data(7, &stream[p..p + k]);
                q.push_data(8, &[0, 1, b'x']); // another socket in between
                p += k;
            }
            let got: Vec<Vec<u8>> = q
                .ready
                .iter()
                .filter(|pk| pk.fd == 7)
                // SAFETY: a ready packet owns a block of `size` bytes.
                .map(|pk| unsafe { std::slice::from_raw_parts(pk.buf, pk.size) }.to_vec())
                .collect();
            assert_eq!(got, want, "round {round}");
            assert!(q
                .ready
                .iter()
                .filter(|pk| pk.fd == 8)
                .all(|pk| pk.size == 1));
        }
    }
}
