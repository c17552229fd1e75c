//! `client.socket`: upstream's demo socket library for command-line clients
//! (`examples/client.lua`, `examples/login/client.lua`), for `skynet-lua`. Same
//! function set and results:
//!
//! * `connect(addr, port)` -> fd (a blocking connect, then the fd is made
//!   non-blocking); raises `Connect <addr> <port> failed`.
//! * `recv(fd)` -> up to 4096 bytes | `""` when the peer closed | nothing when no data
//!   is ready; raises `socket error: <why>`.
//! * `send(fd, s)`: writes all of `s` (waiting for the socket when it is full).
//! * `shutdown(fd, "r"|"w"|"rw")`, `close(fd)`, `usleep(microseconds)`.
//! * `readstdin()` -> the next line typed on stdin without its line end | nil.
//!
//! Differences from upstream: `connect` resolves host names (upstream only takes a
//! dotted IPv4 address); `send` waits with `poll` instead of spinning on EAGAIN; the
//! stdin reader thread starts at the first `readstdin` (not at `require`, so a script
//! that never reads stdin leaves it alone) and its queue is unbounded instead of
//! exiting the process after 1024 unread lines; `shutdown` prints nothing. As
//! upstream, the process exits when stdin ends (that is how the demo client stops).

#![allow(non_snake_case)]

use std::collections::VecDeque;
use std::ffi::c_int;
use std::io::BufRead;
use std::net::ToSocketAddrs;
use std::os::fd::IntoRawFd;
use std::sync::{Mutex, OnceLock};

use crate::lua::ffi::{check_bytes, new_lib, push_str, raise_string};
use mlua::ffi::{self, lua_State};

fn fd_arg(L: *mut lua_State, idx: c_int) -> c_int {
    // SAFETY: `L` is the calling function's state (every caller is a lua_CFunction).
    let v = unsafe { ffi::luaL_checkinteger(L, idx) };
    v.clamp(-1, c_int::MAX as ffi::lua_Integer) as c_int
}

fn connect_blocking(host: &str, port: u16) -> std::io::Result<c_int> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "address not found");
    for addr in (host, port).to_socket_addrs()? {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                return Ok(s.into_raw_fd());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

unsafe extern "C-unwind" fn lconnect(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let host = String::from_utf8_lossy(check_bytes(L, 1)).into_owned();
        let port = ffi::luaL_checkinteger(L, 2);
        let fd = u16::try_from(port)
            .ok()
            .and_then(|p| connect_blocking(&host, p).ok());
        match fd {
            Some(fd) => {
                drop(host);
                ffi::lua_pushinteger(L, fd as ffi::lua_Integer);
                1
            }
            None => {
                let msg = format!("Connect {host} {port} failed");
                drop(host);
                raise_string(L, msg)
            }
        }
    }
}

unsafe extern "C-unwind" fn lclose(L: *mut lua_State) -> c_int {
    let fd = fd_arg(L, 1);
    // SAFETY: closing an fd the script owns; a wrong number fails with EBADF.
    unsafe { libc::close(fd) };
    0
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

unsafe extern "C-unwind" fn lsend(L: *mut lua_State) -> c_int {
    let fd = fd_arg(L, 1);
    // SAFETY: Lua calls this C function with a valid `L`; `msg` lives on its stack.
    unsafe {
        let mut msg = check_bytes(L, 2);
        while !msg.is_empty() {
            let r = libc::send(fd, msg.as_ptr() as *const _, msg.len(), libc::MSG_NOSIGNAL);
            if r >= 0 {
                msg = &msg[r as usize..];
                continue;
            }
            let e = errno();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => {
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    libc::poll(&mut p, 1, -1);
                }
                _ => raise_string(L, format!("socket error: {e}")),
            }
        }
    }
    0
}

unsafe extern "C-unwind" fn lrecv(L: *mut lua_State) -> c_int {
    let fd = fd_arg(L, 1);
    let mut buf = [0u8; 4096];
    // SAFETY: a read into a local buffer; `L` is the caller's valid state.
    unsafe {
        let r = libc::recv(fd, buf.as_mut_ptr() as *mut _, buf.len(), 0);
        if r < 0 {
            let e = errno();
            if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                return 0;
            }
            raise_string(L, format!("socket error: {e}"));
        }
        push_str(L, &buf[..r as usize]);
    }
    1
}

unsafe extern "C-unwind" fn lusleep(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`.
    let n = unsafe { ffi::luaL_checknumber(L, 1) };
    if n > 0.0 {
        std::thread::sleep(std::time::Duration::from_micros(n as u64));
    }
    0
}

unsafe extern "C-unwind" fn lshutdown(L: *mut lua_State) -> c_int {
    let fd = fd_arg(L, 1);
    // SAFETY: Lua calls this C function with a valid `L`.
    unsafe {
        let mode = check_bytes(L, 2);
        let (mut r, mut w) = (false, false);
        for &c in mode {
            match c {
                b'r' => r = true,
                b'w' => w = true,
                _ => raise_string(L, format!("Invalid mode {}", c as char)),
            }
        }
        let how = match (r, w) {
            (true, true) => libc::SHUT_RDWR,
            (true, false) => libc::SHUT_RD,
            (false, true) => libc::SHUT_WR,
            (false, false) => raise_string(L, "mode should be r or/and w".into()),
        };
        libc::shutdown(fd, how);
    }
    0
}

/// Lines read from stdin by the reader thread, oldest first.
fn stdin_queue() -> &'static Mutex<VecDeque<String>> {
    static Q: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    Q.get_or_init(|| {
        std::thread::spawn(|| {
            let stdin = std::io::stdin();
            let mut line = String::new();
            loop {
                line.clear();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => std::process::exit(1), // as upstream: no more input
                    Ok(_) => {
                        let l = line.trim_end_matches(['\n', '\r']).to_string();
                        if let Ok(mut q) = stdin_queue().lock() {
                            q.push_back(l);
                        }
                    }
                }
            }
        });
        Mutex::new(VecDeque::new())
    })
}

unsafe extern "C-unwind" fn lreadstdin(L: *mut lua_State) -> c_int {
    let line = stdin_queue().lock().ok().and_then(|mut q| q.pop_front());
    match line {
        // SAFETY: `L` is the caller's valid state; a raise in the push leaks `l` only.
        Some(l) => unsafe {
            let l = std::mem::ManuallyDrop::new(l);
            push_str(L, l.as_bytes());
            drop(std::mem::ManuallyDrop::into_inner(l));
            1
        },
        None => 0,
    }
}

/// `require "client.socket"`.
///
/// # Safety
/// Called by Lua as a C function with a valid state.
pub unsafe extern "C-unwind" fn luaopen_client_socket(L: *mut lua_State) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        new_lib(
            L,
            &[
                (c"connect", lconnect),
                (c"recv", lrecv),
                (c"send", lsend),
                (c"shutdown", lshutdown),
                (c"close", lclose),
                (c"usleep", lusleep),
                (c"readstdin", lreadstdin),
            ],
        );
    }
    1
}
