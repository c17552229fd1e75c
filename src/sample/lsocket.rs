//! `lsocket`: the subset of Gunnar Zötl's lsocket API that the sample's command-line
//! client needs (`sample.md` §8), for the standalone interpreter `skynet-lua`.
//!
//! Module functions:
//!
//! * `lsocket.connect([type,] address, port)` -> socket | nil, err. Only `"tcp"`. The
//!   socket is non-blocking and the connect is started, not finished: wait for it to
//!   become writable with `select`, then check `sock:status()`.
//! * `lsocket.select([read [, write]] [, timeout])` -> readable, writable (arrays of
//!   the socket objects given) | false on timeout | nil, err. `timeout` in seconds
//!   (fractions allowed); absent or negative = wait forever.
//!
//! Socket methods: `recv([size])` -> string | false (nothing to read now) | nil (EOF)
//! | nil, err; `send(string)` -> bytes sent | false (would block) | nil, err;
//! `status()` -> true | false (still connecting) | nil, err (connect failed);
//! `close()` -> true; `getfd()` -> fd or -1. Sockets close when collected.
//!
//! Invariants: a socket userdata holds one fd or -1 (closed); an fd is closed exactly
//! once (by `close` or `__gc`). Lua errors are raised only from frames without live
//! Rust values that need dropping.

#![allow(non_snake_case)]

use std::ffi::{c_int, CStr};
use std::net::{SocketAddr, ToSocketAddrs};

use crate::lua::ffi::{check_bytes, protected, push_str, reraise};
use mlua::ffi::{self, lua_State};
use socket2::{Domain, Protocol, Socket, Type};
use std::os::fd::IntoRawFd;

const SOCKET_META: &CStr = c"lsocket.socket";

#[repr(C)]
struct Sock {
    fd: c_int,
}

unsafe fn check_sock(L: *mut lua_State, idx: c_int) -> *mut Sock {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe { ffi::luaL_checkudata(L, idx, SOCKET_META.as_ptr()) as *mut Sock }
}

/// Push `nil, msg`; returns 2.
unsafe fn push_fail(L: *mut lua_State, msg: &str) -> c_int {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        ffi::lua_pushnil(L);
        push_str(L, msg);
        2
    }
}

/// Push `nil, <error text>`; the text is formatted on the stack (the push may raise,
/// so no heap String may be alive then).
unsafe fn push_errno(L: *mut lua_State, err: std::io::Error) -> c_int {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let mut text = [0u8; 256];
        let mut w = &mut text[..];
        let _ = std::io::Write::write_fmt(&mut w, format_args!("{err}"));
        let n = 256 - w.len();
        drop(err);
        ffi::lua_pushnil(L);
        ffi::lua_pushlstring(L, text.as_ptr() as *const _, n);
        2
    }
}

fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "address not found"))
}

fn start_connect(host: &str, port: u16) -> std::io::Result<c_int> {
    let addr = resolve(host, port)?;
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(sock.into_raw_fd())
}

/// `connect([type,] address, port)`.
unsafe extern "C-unwind" fn lconnect(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let mut base = 1;
        if ffi::lua_gettop(L) >= 3 {
            if check_bytes(L, 1) != b"tcp" {
                return push_fail(L, "only tcp sockets are supported");
            }
            base = 2;
        }
        let port = ffi::luaL_checkinteger(L, base + 1);
        let host = check_bytes(L, base);
        if !(0..=65535).contains(&port) {
            return push_fail(L, "invalid port");
        }
        // The userdata first (allocation may raise), so a connected fd is never lost.
        let ud = ffi::lua_newuserdata(L, std::mem::size_of::<Sock>()) as *mut Sock;
        (*ud).fd = -1;
        ffi::luaL_setmetatable(L, SOCKET_META.as_ptr());
        let r = match std::str::from_utf8(host) {
            Ok(host) => start_connect(host, port as u16),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "address is not UTF-8",
            )),
        };
        match r {
            Ok(fd) => {
                (*ud).fd = fd;
                1
            }
            Err(e) => push_errno(L, e),
        }
    }
}

/// Collect the socket objects of the table at `idx` (nil = none) into `out` as
/// (fd, table index); non-socket entries and closed sockets are skipped.
unsafe fn collect(L: *mut lua_State, idx: c_int, out: &mut Vec<(c_int, ffi::lua_Integer)>) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        if ffi::lua_type(L, idx) != ffi::LUA_TTABLE {
            return;
        }
        let n = ffi::lua_rawlen(L, idx) as ffi::lua_Integer;
        for i in 1..=n {
            ffi::lua_rawgeti(L, idx, i);
            let ud = ffi::luaL_testudata(L, -1, SOCKET_META.as_ptr()) as *mut Sock;
            if !ud.is_null() && (*ud).fd >= 0 {
                out.push(((*ud).fd, i));
            }
            ffi::lua_settop(L, -2);
        }
    }
}

/// `select([read [, write]] [, timeout])`.
unsafe extern "C-unwind" fn lselect(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let top = ffi::lua_gettop(L);
        let mut timeout_ms: c_int = -1;
        let mut ntables = top;
        if top >= 1 && ffi::lua_type(L, top) == ffi::LUA_TNUMBER {
            let t = ffi::lua_tonumber(L, top);
            if t >= 0.0 {
                timeout_ms = (t * 1000.0).ceil().min(c_int::MAX as f64) as c_int;
            }
            ntables = top - 1;
        }
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        if ntables >= 1 {
            collect(L, 1, &mut reads);
        }
        if ntables >= 2 {
            collect(L, 2, &mut writes);
        }
        let mut pfds: Vec<libc::pollfd> = reads
            .iter()
            .map(|&(fd, _)| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .chain(writes.iter().map(|&(fd, _)| libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            }))
            .collect();
        let n = loop {
            let r = libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms);
            if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break r;
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return push_errno(L, e);
        }
        if n == 0 {
            ffi::lua_pushboolean(L, 0);
            return 1;
        }
        let ready = |p: &libc::pollfd| p.revents != 0;
        let rready: Vec<ffi::lua_Integer> = reads
            .iter()
            .zip(&pfds)
            .filter(|(_, p)| ready(p))
            .map(|(r, _)| r.1)
            .collect();
        let wready: Vec<ffi::lua_Integer> = writes
            .iter()
            .zip(&pfds[reads.len()..])
            .filter(|(_, p)| ready(p))
            .map(|(w, _)| w.1)
            .collect();
        drop(pfds);
        // Building the result tables allocates (may raise): protected, with the argument
        // tables handed to the body; the index lists are dropped here either way.
        ffi::lua_settop(L, 2);
        let r = protected(L, 2, &mut |L| {
            for (list, arg) in [(&rready, 1), (&wready, 2)] {
                ffi::lua_createtable(L, list.len() as c_int, 0);
                for (k, i) in list.iter().enumerate() {
                    ffi::lua_rawgeti(L, arg, *i);
                    ffi::lua_rawseti(L, -2, k as ffi::lua_Integer + 1);
                }
            }
            2
        });
        drop((reads, writes, rready, wready));
        r.unwrap_or_else(|_| reraise(L))
    }
}

/// `sock:recv([size])`.
unsafe extern "C-unwind" fn lrecv(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let s = check_sock(L, 1);
        let size = ffi::luaL_optinteger(L, 2, 4096).clamp(1, 1 << 20) as usize;
        if (*s).fd < 0 {
            return push_fail(L, "socket is closed");
        }
        // Received straight into a Lua buffer: no Rust allocation alive across the push.
        let mut lb: ffi::luaL_Buffer = std::mem::zeroed();
        let buf = ffi::luaL_buffinitsize(L, &mut lb, size);
        let n = libc::recv((*s).fd, buf as *mut _, size, 0);
        if n > 0 {
            ffi::luaL_pushresultsize(&mut lb, n as usize);
            return 1;
        }
        if n == 0 {
            ffi::lua_pushnil(L);
            return 1;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => {
                ffi::lua_pushboolean(L, 0);
                1
            }
            _ => push_errno(L, e),
        }
    }
}

/// `sock:send(string)`.
unsafe extern "C-unwind" fn lsend(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let s = check_sock(L, 1);
        let mut len = 0usize;
        let p = ffi::luaL_checklstring(L, 2, &mut len);
        if (*s).fd < 0 {
            return push_fail(L, "socket is closed");
        }
        let n = libc::send((*s).fd, p as *const _, len, libc::MSG_NOSIGNAL);
        if n >= 0 {
            ffi::lua_pushinteger(L, n as ffi::lua_Integer);
            return 1;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => {
                ffi::lua_pushboolean(L, 0);
                1
            }
            _ => push_errno(L, e),
        }
    }
}

/// `sock:status()`.
unsafe extern "C-unwind" fn lstatus(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let s = check_sock(L, 1);
        if (*s).fd < 0 {
            return push_fail(L, "socket is closed");
        }
        let mut err: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        if libc::getsockopt(
            (*s).fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut c_int as *mut _,
            &mut len,
        ) < 0
        {
            let e = std::io::Error::last_os_error();
            return push_errno(L, e);
        }
        if err != 0 {
            return push_errno(L, std::io::Error::from_raw_os_error(err));
        }
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut alen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let connected = libc::getpeername((*s).fd, &mut addr as *mut _ as *mut _, &mut alen) == 0;
        ffi::lua_pushboolean(L, connected as c_int);
        1
    }
}

/// Close the socket's fd once.
///
/// # Safety
/// `s` is a live socket userdata (from `check_sock` or `__gc`).
unsafe fn close_sock(s: *mut Sock) {
    // SAFETY: the contract above.
    unsafe {
        if (*s).fd >= 0 {
            libc::close((*s).fd);
            (*s).fd = -1;
        }
    }
}

/// `sock:close()`.
unsafe extern "C-unwind" fn lclose(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        close_sock(check_sock(L, 1));
        ffi::lua_pushboolean(L, 1);
        1
    }
}

/// `sock:getfd()`.
unsafe extern "C-unwind" fn lgetfd(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let s = check_sock(L, 1);
        ffi::lua_pushinteger(L, (*s).fd as ffi::lua_Integer);
        1
    }
}

unsafe extern "C-unwind" fn ltostring(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let s = check_sock(L, 1);
        ffi::lua_pushfstring(L, c"lsocket: %p".as_ptr(), s as *const std::ffi::c_void);
        1
    }
}

unsafe extern "C-unwind" fn lgc(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        close_sock(check_sock(L, 1));
        0
    }
}

/// `require "lsocket"`.
///
/// # Safety
/// Called by Lua with a valid state.
pub unsafe extern "C-unwind" fn luaopen_lsocket(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        if ffi::luaL_newmetatable(L, SOCKET_META.as_ptr()) != 0 {
            let methods: [(&CStr, ffi::lua_CFunction); 5] = [
                (c"recv", lrecv),
                (c"send", lsend),
                (c"status", lstatus),
                (c"close", lclose),
                (c"getfd", lgetfd),
            ];
            ffi::lua_createtable(L, 0, methods.len() as c_int);
            for (name, f) in methods {
                ffi::lua_pushcfunction(L, f);
                ffi::lua_setfield(L, -2, name.as_ptr());
            }
            ffi::lua_setfield(L, -2, c"__index".as_ptr());
            ffi::lua_pushcfunction(L, lgc);
            ffi::lua_setfield(L, -2, c"__gc".as_ptr());
            ffi::lua_pushcfunction(L, lgc);
            ffi::lua_setfield(L, -2, c"__close".as_ptr());
            ffi::lua_pushcfunction(L, ltostring);
            ffi::lua_setfield(L, -2, c"__tostring".as_ptr());
        }
        ffi::lua_settop(L, -2);
        ffi::lua_createtable(L, 0, 2);
        ffi::lua_pushcfunction(L, lconnect);
        ffi::lua_setfield(L, -2, c"connect".as_ptr());
        ffi::lua_pushcfunction(L, lselect);
        ffi::lua_setfield(L, -2, c"select".as_ptr());
        1
    }
}
