//! `skynet.socketdriver` (2016 name `socketdriver`): the Lua face of the socket server
//! (`socket.md` §3).
//!
//! # Design
//!
//! * Connection functions forward to the process's [`SocketServer`]; the owner of new
//!   sockets is the calling service ([`owner`]). Strings given to `send` are passed
//!   borrowed: the server writes them directly when it can and copies only a leftover.
//! * A *buffer* (`buffer()`) is a full userdata holding a pointer to a Rust
//!   [`SockBuffer`]: a FIFO of received DATA blocks plus a read offset into the first
//!   one, freed by `__gc`. The `pool` arguments of the upstream API are accepted and
//!   ignored, except that `readline` treats a non-table pool as "check only".
//!
//! # Invariants
//!
//! * Lua errors `longjmp`: every function raises only when no Rust value with a
//!   destructor is alive in its frame (see `fail`).
//! * A received block is owned by exactly one party: the buffer after `push`, the
//!   caller after `pop`/`readall` copies it out (then it is freed), or the socket
//!   server after a `send` of a lightuserdata.

#![allow(non_snake_case)]

use std::collections::VecDeque;
use std::ffi::{c_int, CStr};

use mlua::ffi::{self, lua_State};

use crate::lua::ffi::{
    check_bytes, new_lib, protected, push_str, raise, raise_string, reraise, to_bytes,
};
use crate::message::payload_free;
use crate::socket::{
    sys, udp_address_decode, Buffer, SocketMessage, SocketServer, HEADER_SIZE, SOCKET_UDP,
};

// ---------------------------------------------------------------- adapters

/// The calling service's handle (raises "Init skynet context first" outside one).
unsafe fn owner(L: *mut lua_State) -> u32 {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe { crate::lua::host::service_handle(L) }
}

/// The process's socket server.
#[inline]
fn server() -> &'static SocketServer {
    crate::api::socket_server()
}

/// Raise `msg` as a Lua error. Only call with no destructor-bearing value alive.
unsafe fn fail(L: *mut lua_State, msg: &str) -> ! {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe { raise(L, msg) }
}

// ---------------------------------------------------------------- helpers

/// `(addr [, port])` at `idx`: host text (on the stack) and port (§3.1).
/// Errors are returned as messages to raise by the caller.
unsafe fn address<'a>(L: *mut lua_State, idx: c_int) -> Result<(&'a str, u16), String> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let a = check_bytes(L, idx);
        let a = std::str::from_utf8(a).map_err(|_| "Invalid address".to_string())?;
        if ffi::lua_isnoneornil(L, idx + 1) != 0 {
            let (host, port) = if let Some(rest) = a.strip_prefix('[') {
                let close = rest
                    .find(']')
                    .ok_or_else(|| format!("Invalid address {a}."))?;
                let port = rest[close + 1..]
                    .strip_prefix(':')
                    .ok_or_else(|| format!("Invalid address {a}."))?;
                (&rest[..close], port)
            } else {
                let c = a.find(':').ok_or_else(|| format!("Invalid address {a}."))?;
                (&a[..c], &a[c + 1..])
            };
            let port: u32 = port
                .parse()
                .map_err(|_| format!("Invalid port in address {a}."))?;
            if port > 65535 {
                return Err(format!("Invalid port in address {a}."));
            }
            Ok((host, port as u16))
        } else {
            let port = ffi::luaL_checkinteger(L, idx + 1);
            if !(0..=65535).contains(&port) {
                return Err(format!("Invalid port {port}"));
            }
            Ok((a, port as u16))
        }
    }
}

/// Raise the error of an `address` result or return its value.
macro_rules! addr_or_raise {
    ($L:expr, $idx:expr) => {
        match address($L, $idx) {
            Ok(v) => v,
            Err(msg) => raise_string($L, msg),
        }
    };
}

unsafe fn check_id(L: *mut lua_State, idx: c_int) -> i32 {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe { ffi::luaL_checkinteger(L, idx) as i32 }
}

/// The data argument(s) of `send`/`lsend`/`udp_send` starting at `idx` (§3.2).
unsafe fn send_buffer<'a>(L: *mut lua_State, idx: c_int) -> Result<Buffer<'a>, &'static str> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match ffi::lua_type(L, idx) {
            ffi::LUA_TSTRING => Ok(Buffer::Slice(to_bytes(L, idx).unwrap())),
            ffi::LUA_TLIGHTUSERDATA => {
                let p = ffi::lua_touserdata(L, idx) as *mut u8;
                if ffi::lua_isinteger(L, idx + 1) == 0 {
                    return Err("Unsupported user object (lightuserdata without size)");
                }
                let sz = ffi::lua_tointegerx(L, idx + 1, std::ptr::null_mut());
                Ok(Buffer::Raw {
                    ptr: p,
                    len: sz.max(0) as usize,
                })
            }
            ffi::LUA_TUSERDATA => {
                let p = ffi::lua_touserdata(L, idx) as *const u8;
                let mut sz = ffi::lua_rawlen(L, idx);
                if ffi::lua_isinteger(L, idx + 1) != 0 {
                    sz = sz
                        .min(ffi::lua_tointegerx(L, idx + 1, std::ptr::null_mut()).max(0) as usize);
                }
                Ok(Buffer::Slice(std::slice::from_raw_parts(p, sz)))
            }
            ffi::LUA_TTABLE => {
                // Concatenated in a Lua buffer, not a Vec: converting a number element
                // allocates and may raise, and nothing Rust-owned may be alive then. The
                // result string stays on the stack until the caller returns.
                let n = ffi::lua_rawlen(L, idx);
                let mut lb: ffi::luaL_Buffer = std::mem::zeroed();
                ffi::luaL_buffinit(L, &mut lb);
                for i in 1..=n {
                    let t = ffi::lua_rawgeti(L, idx, i as ffi::lua_Integer);
                    if t != ffi::LUA_TSTRING && t != ffi::LUA_TNUMBER {
                        return Err("Invalid strings table");
                    }
                    ffi::luaL_addvalue(&mut lb);
                }
                ffi::luaL_pushresult(&mut lb);
                Ok(Buffer::Slice(to_bytes(L, -1).unwrap_or(&[])))
            }
            _ => Err("Unsupported send data type"),
        }
    }
}

// ---------------------------------------------------------------- connections

unsafe extern "C-unwind" fn lconnect(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let (host, port) = addr_or_raise!(L, 1);
        if port == 0 {
            fail(L, "Invalid port");
        }
        let me = owner(L);
        match server().connect(me, host, port) {
            Some(id) => {
                ffi::lua_pushinteger(L, id as _);
                1
            }
            None => fail(L, "reach skynet socket number limit"),
        }
    }
}

unsafe extern "C-unwind" fn lclose(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let id = check_id(L, 1);
        server().close(id);
        0
    }
}

unsafe extern "C-unwind" fn lshutdown(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let id = check_id(L, 1);
        server().shutdown(id);
        0
    }
}

unsafe extern "C-unwind" fn llisten(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let (host, port) = addr_or_raise!(L, 1);
        let backlog = ffi::luaL_optinteger(L, 3, 32) as i32;
        let me = owner(L);
        let r = server().listen(me, host, port, backlog).ok();
        match r {
            Some(id) => {
                ffi::lua_pushinteger(L, id as _);
                1
            }
            None => fail(L, "Listen error"),
        }
    }
}

unsafe extern "C-unwind" fn lbind(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let fd = ffi::luaL_checkinteger(L, 1) as i32;
        let me = owner(L);
        match server().bind(me, fd) {
            Some(id) => {
                ffi::lua_pushinteger(L, id as _);
                1
            }
            None => fail(L, "reach skynet socket number limit"),
        }
    }
}

unsafe extern "C-unwind" fn lstart(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let id = check_id(L, 1);
        let me = owner(L);
        server().start(me, id);
        0
    }
}

unsafe extern "C-unwind" fn lpause(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let id = check_id(L, 1);
        server().pause(id);
        0
    }
}

unsafe extern "C-unwind" fn lnodelay(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let id = check_id(L, 1);
        server().nodelay(id);
        0
    }
}

unsafe fn do_send(L: *mut lua_State, low: bool) -> c_int {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let id = check_id(L, 1);
        let ok = match send_buffer(L, 2) {
            Ok(b) if low => server().send_lowpriority(id, b),
            Ok(b) => server().send(id, b),
            Err(msg) => fail(L, msg),
        };
        ffi::lua_pushboolean(L, ok as c_int);
        1
    }
}

unsafe extern "C-unwind" fn lsend(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe { do_send(L, false) }
}

unsafe extern "C-unwind" fn lsendlow(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe { do_send(L, true) }
}

unsafe extern "C-unwind" fn ludp(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let (host, port) = if ffi::lua_isnoneornil(L, 1) != 0 {
            ("", 0)
        } else {
            addr_or_raise!(L, 1)
        };
        let me = owner(L);
        let r = server().udp(me, host, port).ok();
        match r {
            Some(id) => {
                ffi::lua_pushinteger(L, id as _);
                1
            }
            None => fail(L, "udp init failed"),
        }
    }
}

unsafe extern "C-unwind" fn ludp_connect(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let id = check_id(L, 1);
        let (host, port) = addr_or_raise!(L, 2);
        let ok = server().udp_connect(id, host, port).is_ok();
        if !ok {
            fail(L, "udp connect failed");
        }
        0
    }
}

unsafe extern "C-unwind" fn ludp_dial(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let (host, port) = addr_or_raise!(L, 1);
        let me = owner(L);
        let r = server().udp_dial(me, host, port).ok();
        match r {
            Some(id) => {
                ffi::lua_pushinteger(L, id as _);
                1
            }
            None => fail(L, "udp dial host failed"),
        }
    }
}

unsafe extern "C-unwind" fn ludp_listen(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let (host, port) = addr_or_raise!(L, 1);
        let me = owner(L);
        let r = if port == 0 {
            None
        } else {
            server().udp(me, host, port).ok()
        };
        match r {
            Some(id) => {
                ffi::lua_pushinteger(L, id as _);
                1
            }
            None => fail(L, "udp listen host failed"),
        }
    }
}

unsafe extern "C-unwind" fn ludp_send(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let id = check_id(L, 1);
        let addr = check_bytes(L, 2);
        let ok = match send_buffer(L, 3) {
            Ok(b) => server().udp_send(id, addr, b),
            Err(msg) => fail(L, msg),
        };
        ffi::lua_pushboolean(L, ok as c_int);
        1
    }
}

unsafe extern "C-unwind" fn ludp_address(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let a = check_bytes(L, 1);
        match udp_address_decode(a) {
            Some(sa) => {
                // Formatted on the stack: the push may raise, so no heap String here.
                let mut text = [0u8; 64];
                let mut w = &mut text[..];
                let _ = std::io::Write::write_fmt(&mut w, format_args!("{}", sa.ip()));
                let n = 64 - w.len();
                push_str(L, &text[..n]);
                ffi::lua_pushinteger(L, sa.port() as _);
                2
            }
            None => fail(L, "Invalid udp address"),
        }
    }
}

unsafe extern "C-unwind" fn lresolve(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let host = std::str::from_utf8(check_bytes(L, 1)).unwrap_or("");
        let ips: Vec<String> = match sys::resolve(host, 0, false, false) {
            Ok(addrs) => {
                let mut ips = Vec::with_capacity(addrs.len());
                for a in &addrs {
                    let ip = a.ip().to_string();
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                ips
            }
            Err(msg) => raise_string(L, msg),
        };
        // Table building allocates (may raise): protected, `ips` is dropped here either way.
        let r = protected(L, 0, &mut |L| {
            ffi::lua_createtable(L, ips.len() as c_int, 0);
            for (n, ip) in ips.iter().enumerate() {
                push_str(L, ip.as_bytes());
                ffi::lua_rawseti(L, -2, n as ffi::lua_Integer + 1);
            }
            1
        });
        drop(ips);
        r.unwrap_or_else(|_| reraise(L))
    }
}

unsafe fn set_int(L: *mut lua_State, k: &CStr, v: i64) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        ffi::lua_pushinteger(L, v);
        ffi::lua_setfield(L, -2, k.as_ptr());
    }
}

unsafe fn set_str(L: *mut lua_State, k: &CStr, v: &str) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        push_str(L, v.as_bytes());
        ffi::lua_setfield(L, -2, k.as_ptr());
    }
}

unsafe fn set_bool(L: *mut lua_State, k: &CStr, v: bool) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        ffi::lua_pushboolean(L, v as c_int);
        ffi::lua_setfield(L, -2, k.as_ptr());
    }
}

/// `info()`: netstat entries (§3.4); times are centiseconds since the process started.
unsafe extern "C-unwind" fn linfo(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let all = server().info();
        // Table building allocates (may raise): protected, `all` is dropped here either way.
        let r = protected(L, 0, &mut |L| info_table(L, &all));
        drop(all);
        r.unwrap_or_else(|_| reraise(L))
    }
}

unsafe fn info_table(L: *mut lua_State, all: &[crate::socket::SocketInfo]) -> c_int {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        ffi::lua_createtable(L, all.len() as c_int, 0);
        for (n, i) in all.iter().enumerate() {
            ffi::lua_createtable(L, 0, 12);
            set_int(L, c"id", i.id as i64);
            set_int(L, c"address", i.owner as i64);
            set_str(L, c"type", i.kind);
            set_int(L, c"rtime", i.rtime as i64);
            if i.kind == "LISTEN" {
                set_int(L, c"accept", i.accept as i64);
                if let Some(s) = &i.sock {
                    set_str(L, c"sock", s);
                }
            } else {
                set_int(L, c"read", i.read as i64);
                set_int(L, c"write", i.write as i64);
                set_int(L, c"wbuffer", i.wbuffer as i64);
                set_int(L, c"wtime", i.wtime as i64);
                set_bool(L, c"reading", i.reading);
                set_bool(L, c"writing", i.writing);
                if let Some(p) = &i.peer {
                    set_str(L, c"peer", p);
                }
            }
            ffi::lua_rawseti(L, -2, n as ffi::lua_Integer + 1);
        }
        1
    }
}

// ---------------------------------------------------------------- buffers

const BUFFER_META: &CStr = c"skynet.socketdriver.buffer";

/// Received bytes waiting to be read by Lua.
#[derive(Default)]
struct SockBuffer {
    chunks: VecDeque<(*mut u8, usize)>,
    /// Bytes of the first chunk already consumed.
    offset: usize,
    size: usize,
}

impl SockBuffer {
    fn clear(&mut self) {
        for (p, _) in self.chunks.drain(..) {
            // SAFETY: owned blocks.
            unsafe { payload_free(p) };
        }
        self.offset = 0;
        self.size = 0;
    }

    /// The unread bytes of each chunk in order.
    fn slices(&self) -> impl Iterator<Item = &[u8]> + Clone {
        self.chunks.iter().enumerate().map(move |(i, &(p, n))| {
            let off = if i == 0 { self.offset } else { 0 };
            // SAFETY: chunk i holds n bytes.
            unsafe { std::slice::from_raw_parts(p.add(off), n - off) }
        })
    }

    /// Copy the first `n` bytes to `dst` and consume them.
    ///
    /// # Safety
    /// `dst` is writable for `n` bytes and `n <= self.size`.
    unsafe fn take(&mut self, mut dst: *mut u8, mut n: usize) {
        // SAFETY: the contract above; each chunk is an owned block of `len` bytes, read
        // from `offset`, freed once consumed.
        unsafe {
            self.size -= n;
            while n > 0 {
                let (p, len) = *self.chunks.front().unwrap();
                let avail = len - self.offset;
                let k = avail.min(n);
                std::ptr::copy_nonoverlapping(p.add(self.offset), dst, k);
                dst = dst.add(k);
                n -= k;
                if k == avail {
                    payload_free(p);
                    self.chunks.pop_front();
                    self.offset = 0;
                } else {
                    self.offset += k;
                }
            }
        }
    }

    /// Drop the first `n` bytes.
    fn skip(&mut self, mut n: usize) {
        self.size -= n;
        while n > 0 {
            let (p, len) = *self.chunks.front().unwrap();
            let avail = len - self.offset;
            if n >= avail {
                n -= avail;
                // SAFETY: owned block.
                unsafe { payload_free(p) };
                self.chunks.pop_front();
                self.offset = 0;
            } else {
                self.offset += n;
                n = 0;
            }
        }
    }

    /// Position of the first occurrence of `sep`.
    fn find(&self, sep: &[u8]) -> Option<usize> {
        if sep.is_empty() {
            return Some(0);
        }
        if self.chunks.len() == 1 {
            let s = self.slices().next().unwrap();
            return s.windows(sep.len()).position(|w| w == sep);
        }
        // Across chunks: try each start position, probing with a cloned iterator (no
        // copy of the buffered bytes; separators are short).
        let mut it = self.slices().flatten().copied();
        let mut pos = 0;
        loop {
            let mut probe = it.clone();
            if sep.iter().all(|&c| probe.next() == Some(c)) {
                return Some(pos);
            }
            it.next()?;
            pos += 1;
        }
    }
}

impl Drop for SockBuffer {
    fn drop(&mut self) {
        self.clear();
    }
}

unsafe extern "C-unwind" fn buffer_gc(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let ud = ffi::luaL_testudata(L, 1, BUFFER_META.as_ptr()) as *mut *mut SockBuffer;
        if !ud.is_null() && !(*ud).is_null() {
            drop(Box::from_raw(*ud));
            *ud = std::ptr::null_mut();
        }
        0
    }
}

unsafe fn buffer_at(L: *mut lua_State, idx: c_int) -> *mut SockBuffer {
    // SAFETY: `L` is the calling C function's valid state; a buffer userdata holds a
    // pointer to its boxed `SockBuffer` (or null once collected).
    unsafe {
        let ud = ffi::luaL_testudata(L, idx, BUFFER_META.as_ptr()) as *mut *mut SockBuffer;
        if ud.is_null() {
            std::ptr::null_mut()
        } else {
            *ud
        }
    }
}

unsafe fn check_buffer(L: *mut lua_State, idx: c_int) -> &'static mut SockBuffer {
    // SAFETY: as `buffer_at`; the buffer lives while its userdata is on the stack, which is
    // for the whole call using the reference.
    unsafe {
        let b = buffer_at(L, idx);
        if b.is_null() {
            fail(L, "need buffer object at param 1");
        }
        &mut *b
    }
}

unsafe extern "C-unwind" fn lbuffer(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let ud = ffi::lua_newuserdatauv(L, std::mem::size_of::<*mut SockBuffer>(), 0)
            as *mut *mut SockBuffer;
        *ud = std::ptr::null_mut();
        if ffi::luaL_newmetatable(L, BUFFER_META.as_ptr()) != 0 {
            ffi::lua_pushcfunction(L, buffer_gc);
            ffi::lua_setfield(L, -2, c"__gc".as_ptr());
        }
        ffi::lua_setmetatable(L, -2);
        *ud = Box::into_raw(Box::<SockBuffer>::default());
        1
    }
}

unsafe extern "C-unwind" fn lpush(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let b = check_buffer(L, 1);
        let msg = ffi::lua_touserdata(L, 3) as *mut u8;
        if msg.is_null() {
            fail(L, "need message block at param 3");
        }
        let sz = ffi::luaL_checkinteger(L, 4).max(0) as usize;
        if sz == 0 {
            payload_free(msg);
        } else {
            b.chunks.push_back((msg, sz));
            b.size += sz;
        }
        ffi::lua_pushinteger(L, b.size as _);
        1
    }
}

/// Push the first `n` bytes of `b` as a string and consume them.
unsafe fn push_take(L: *mut lua_State, b: &mut SockBuffer, n: usize) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        if n == 0 {
            ffi::lua_pushstring(L, c"".as_ptr());
            return;
        }
        let (p, len) = *b.chunks.front().unwrap();
        if len - b.offset >= n {
            // Contiguous: no staging copy.
            ffi::lua_pushlstring(L, p.add(b.offset) as *const _, n);
            b.skip(n);
            return;
        }
        let mut lb: ffi::luaL_Buffer = std::mem::zeroed();
        let dst = ffi::luaL_buffinitsize(L, &mut lb, n) as *mut u8;
        b.take(dst, n);
        ffi::luaL_pushresultsize(&mut lb, n);
    }
}

unsafe extern "C-unwind" fn lpop(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let b = check_buffer(L, 1);
        let sz = ffi::luaL_checkinteger(L, 3);
        if sz <= 0 || (b.size as i64) < sz {
            ffi::lua_pushnil(L);
        } else {
            push_take(L, b, sz as usize);
        }
        ffi::lua_pushinteger(L, b.size as _);
        2
    }
}

unsafe extern "C-unwind" fn lreadall(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let b = check_buffer(L, 1);
        let n = b.size;
        push_take(L, b, n);
        1
    }
}

unsafe extern "C-unwind" fn lclear(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let b = buffer_at(L, 1);
        if !b.is_null() {
            (*b).clear();
        }
        0
    }
}

unsafe extern "C-unwind" fn lreadline(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let b = check_buffer(L, 1);
        let check_only = ffi::lua_type(L, 2) != ffi::LUA_TTABLE;
        let sep = check_bytes(L, 3);
        let Some(pos) = b.find(sep) else { return 0 };
        if check_only {
            ffi::lua_pushboolean(L, 1);
            return 1;
        }
        push_take(L, b, pos);
        b.skip(sep.len());
        1
    }
}

unsafe extern "C-unwind" fn ldrop(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let p = ffi::lua_touserdata(L, 1) as *mut u8;
        payload_free(p);
        0
    }
}

unsafe extern "C-unwind" fn lstr2p(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let s = check_bytes(L, 1);
        let p = crate::message::payload_from(s);
        ffi::lua_pushlightuserdata(L, p as *mut _);
        ffi::lua_pushinteger(L, s.len() as _);
        2
    }
}

unsafe extern "C-unwind" fn lheader(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let s = check_bytes(L, 1);
        if s.is_empty() || s.len() > 4 {
            let msg = format!("Invalid read {}", String::from_utf8_lossy(s));
            raise_string(L, msg);
        }
        let v = s.iter().fold(0u64, |acc, &c| acc << 8 | c as u64);
        ffi::lua_pushinteger(L, v as _);
        1
    }
}

unsafe extern "C-unwind" fn lunpack(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let msg = ffi::lua_touserdata(L, 1) as *const u8;
        let sz = usize::try_from(ffi::luaL_checkinteger(L, 2)).unwrap_or(0);
        if msg.is_null() || sz < HEADER_SIZE {
            fail(L, "Invalid socket message");
        }
        let m = std::ptr::read_unaligned(msg as *const SocketMessage);
        ffi::lua_pushinteger(L, m.kind as _);
        ffi::lua_pushinteger(L, m.id as _);
        ffi::lua_pushinteger(L, m.ud as _);
        if m.buffer.is_null() {
            ffi::lua_pushlstring(L, msg.add(HEADER_SIZE) as *const _, sz - HEADER_SIZE);
            return 4;
        }
        ffi::lua_pushlightuserdata(L, m.buffer as *mut _);
        if m.kind == SOCKET_UDP {
            let a = m.buffer.add(m.ud.max(0) as usize);
            let alen = match *a {
                1 => 7,
                2 => 19,
                _ => 0,
            };
            ffi::lua_pushlstring(L, a as *const _, alen);
            return 5;
        }
        4
    }
}

/// `require "skynet.socketdriver"` (also registered as `socketdriver`).
///
/// # Safety
/// Called by Lua with a valid state.
pub unsafe extern "C-unwind" fn luaopen_skynet_socketdriver(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        new_lib(
            L,
            &[
                (c"connect", lconnect),
                (c"close", lclose),
                (c"shutdown", lshutdown),
                (c"listen", llisten),
                (c"send", lsend),
                (c"lsend", lsendlow),
                (c"bind", lbind),
                (c"start", lstart),
                (c"pause", lpause),
                (c"nodelay", lnodelay),
                (c"udp", ludp),
                (c"udp_connect", ludp_connect),
                (c"udp_dial", ludp_dial),
                (c"udp_listen", ludp_listen),
                (c"udp_send", ludp_send),
                (c"udp_address", ludp_address),
                (c"resolve", lresolve),
                (c"info", linfo),
                (c"buffer", lbuffer),
                (c"push", lpush),
                (c"pop", lpop),
                (c"readall", lreadall),
                (c"clear", lclear),
                (c"readline", lreadline),
                (c"drop", ldrop),
                (c"str2p", lstr2p),
                (c"header", lheader),
                (c"unpack", lunpack),
            ],
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::payload_from;

    fn buffer(chunks: &[&[u8]]) -> SockBuffer {
        let mut b = SockBuffer::default();
        for c in chunks {
            b.chunks.push_back((payload_from(c), c.len()));
            b.size += c.len();
        }
        b
    }

    #[test]
    fn find_spans_chunks_and_honours_the_offset() {
        let mut b = buffer(&[b"ab\r", b"\ncd", b"e\r", b"\n"]);
        assert_eq!(b.find(b"\r\n"), Some(2));
        assert_eq!(b.find(b"cde\r\n"), Some(4));
        assert_eq!(b.find(b"x"), None);
        assert_eq!(b.find(b"\n\n"), None);
        b.skip(4); // consumes "ab\r\n", leaves "cde\r\n"
        assert_eq!(b.find(b"\r\n"), Some(3));
        b.skip(1);
        assert_eq!(b.find(b"e"), Some(1));
        assert_eq!(b.find(b"de\r\n"), Some(0));
        assert_eq!(b.find(b"de\r\n!"), None);
    }
}
