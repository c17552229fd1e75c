//! `skynet.cluster.core`: the framing of skynet's cluster protocol (contract:
//! docs/spec/cluster.md §2), byte for byte upstream's, with upstream's function set
//! (`packrequest`, `packpush`, `packtrace`, `unpackrequest`, `packresponse`,
//! `unpackresponse`, `append`, `concat`, `isname`, `nodename`), so upstream's own
//! `cluster.lua`/`clusterd.lua`/`clusteragent.lua` run over it as well as ours.
//!
//! Every frame is a 2-byte big-endian length followed by the body; integers inside a
//! body are little-endian. A request body starts with a type byte: `0` (numeric
//! address), `0x80` (name), `1`/`0x41`/`0x81`/`0xc1` (the head of a multi-part
//! request or push), `2`/`3` (a part / the last part), `4` (a trace tag). A response
//! body is `session(4) type(1) data`: type `0` error, `1` ok, `2` multi-part head
//! (data = total size), `3` part, `4` last part. Messages of 32 KiB (`MULTI_PART`) and
//! more travel as multi-part.
//!
//! Differences from upstream, on hostile or wrong input only: `concat` checks the
//! parts against the announced size *before* allocating (upstream allocates whatever
//! size the peer announced); `unpackrequest` checks that a frame is long enough for
//! every field it reads (upstream reads a trace tag of a 0-byte body and a part
//! header past the end). Extensions: `packrequest`/`packpush` also take the message
//! as a string, `unpackresponse` also takes a `(lightuserdata, size)` block (netpack's
//! frames, without making a string first); `queuelen(handle)` reads a local service's
//! queue length (the senders' bound, cluster.md §4).
//!
//! # Invariants
//!
//! * Frames are built in a `luaL_Buffer` (Lua's memory), so a memory error raised
//!   while building one leaks nothing; no frame holds a Rust value with a destructor
//!   when a Lua API call that can raise runs.
//! * A message block handed to `packrequest`/`packpush`/`append` is freed exactly once
//!   by the call, including on its error paths (as upstream).
//! * Blocks returned as lightuserdata (`unpackrequest`, `concat`) are payload blocks:
//!   the runtime (or `skynet.trash`) frees them.

#![allow(non_snake_case)]

use std::ffi::{c_char, c_int, c_void};

use mlua::ffi::{self, lua_State};

use crate::lua::ffi::{check_bytes, new_lib, push_str, raise, raise_string, type_name};
use crate::message::{payload_alloc, payload_free};

/// Messages of this size and more are split into parts of this size.
pub const MULTI_PART: usize = 0x8000;

/// Push the concatenation of `parts` as one Lua string (one copy, Lua's memory).
///
/// # Safety
/// `L` is a valid state with free stack slots (may raise a memory error).
unsafe fn push_frame(L: *mut lua_State, parts: &[&[u8]]) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    // SAFETY: the buffer is Lua's; prepbuffsize gives `total` writable bytes.
    unsafe {
        let mut b: ffi::luaL_Buffer = std::mem::zeroed();
        ffi::luaL_buffinit(L, &mut b);
        let dst = ffi::luaL_prepbuffsize(&mut b, total) as *mut u8;
        let mut off = 0;
        for p in parts {
            std::ptr::copy_nonoverlapping(p.as_ptr(), dst.add(off), p.len());
            off += p.len();
        }
        b.n += total;
        ffi::luaL_pushresult(&mut b);
    }
}

fn be16(n: usize) -> [u8; 2] {
    debug_assert!(n < 0x10000);
    [(n >> 8) as u8, n as u8]
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The message argument at 3 (and its size at 4): a block to free, or a string.
///
/// # Safety
/// Called from a Lua C function with its state.
unsafe fn message_arg<'a>(L: *mut lua_State) -> (&'a [u8], *mut u8) {
    // SAFETY: per the contract; the string stays on the stack for the call.
    unsafe {
        if ffi::lua_type(L, 3) == ffi::LUA_TSTRING {
            return (check_bytes(L, 3), std::ptr::null_mut());
        }
        let msg = ffi::lua_touserdata(L, 3) as *mut u8;
        if msg.is_null() {
            raise(L, "Invalid request message");
        }
        let sz = ffi::luaL_checkinteger(L, 4);
        let sz = usize::try_from(sz).unwrap_or(0);
        (std::slice::from_raw_parts(msg, sz), msg)
    }
}

/// packrequest / packpush: `(addr, session, msg, sz)` -> `request, next_session
/// [, parts]` (contract: cluster.md §2.1).
///
/// # Safety
/// Called from a Lua C function with its state.
unsafe fn pack_request(L: *mut lua_State, is_push: bool) -> c_int {
    // SAFETY: per the contract; `owned` is freed on every path after its last read.
    unsafe {
        let (msg, owned) = message_arg(L);
        let session = ffi::luaL_checkinteger(L, 2) as i32;
        if session <= 0 {
            payload_free(owned);
            raise_string(L, format!("Invalid request session {session}"));
        }
        let sz = msg.len();
        let multi = sz >= MULTI_PART;
        let wire_session = if is_push && !multi { 0 } else { session as u32 };
        let ws = wire_session.to_le_bytes();
        let size = (sz as u32).to_le_bytes();
        if ffi::lua_type(L, 1) == ffi::LUA_TNUMBER {
            let addr = (ffi::lua_tointeger(L, 1) as u32).to_le_bytes();
            if !multi {
                push_frame(L, &[&be16(sz + 9), &[0], &addr, &ws, msg]);
            } else {
                let kind = if is_push { 0x41 } else { 1 };
                push_frame(L, &[&be16(13), &[kind], &addr, &ws, &size]);
            }
        } else {
            let mut len = 0usize;
            let name = ffi::lua_tolstring(L, 1, &mut len);
            if name.is_null() {
                payload_free(owned);
                raise_string(
                    L,
                    format!("name is not a string, it's a {}", type_name(L, 1)),
                );
            }
            let name = std::slice::from_raw_parts(name as *const u8, len);
            if !(1..=255).contains(&len) {
                payload_free(owned);
                raise_string(
                    L,
                    format!(
                        "name length is invalid, must be between 1 and 255 characters: {}",
                        String::from_utf8_lossy(name)
                    ),
                );
            }
            if !multi {
                push_frame(
                    L,
                    &[&be16(sz + 6 + len), &[0x80, len as u8], name, &ws, msg],
                );
            } else {
                let kind = if is_push { 0xc1 } else { 0x81 };
                push_frame(L, &[&be16(10 + len), &[kind, len as u8], name, &ws, &size]);
            }
        }
        let next = (session as u32).wrapping_add(1);
        let next = if next > i32::MAX as u32 { 1 } else { next };
        ffi::lua_pushinteger(L, next as i64);
        if !multi {
            payload_free(owned);
            return 2;
        }
        let nparts = sz.div_ceil(MULTI_PART);
        ffi::lua_createtable(L, nparts as c_int, 0);
        let ss = (session as u32).to_le_bytes();
        for (i, part) in msg.chunks(MULTI_PART).enumerate() {
            let kind = if i + 1 == nparts { 3 } else { 2 };
            push_frame(L, &[&be16(part.len() + 5), &[kind], &ss, part]);
            ffi::lua_rawseti(L, -2, i as i64 + 1);
        }
        payload_free(owned);
        3
    }
}

unsafe extern "C-unwind" fn l_packrequest(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe { pack_request(L, false) }
}

unsafe extern "C-unwind" fn l_packpush(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe { pack_request(L, true) }
}

unsafe extern "C-unwind" fn l_packtrace(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; the tag stays on the stack.
    unsafe {
        let tag = check_bytes(L, 1);
        if tag.len() > MULTI_PART {
            raise_string(L, format!("trace tag is too long : {}", tag.len()));
        }
        push_frame(L, &[&be16(tag.len() + 1), &[4], tag]);
        1
    }
}

/// Push `bytes` as a fresh payload block and its size.
///
/// # Safety
/// `L` is a valid state with free stack slots.
unsafe fn push_block(L: *mut lua_State, bytes: &[u8]) {
    let p = payload_alloc(bytes.len());
    // SAFETY: p has room for bytes.len(); the pushes copy nothing.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        ffi::lua_pushlightuserdata(L, p as *mut c_void);
        ffi::lua_pushinteger(L, bytes.len() as i64);
    }
}

/// The frame body at 1 (a string, or a block and its size at 2).
///
/// # Safety
/// Called from a Lua C function with its state.
unsafe fn body_arg<'a>(L: *mut lua_State) -> &'a [u8] {
    // SAFETY: per the contract; a string stays on the stack for the call.
    unsafe {
        if ffi::lua_type(L, 1) == ffi::LUA_TLIGHTUSERDATA {
            let p = ffi::lua_touserdata(L, 1) as *const u8;
            let sz = ffi::luaL_checkinteger(L, 2);
            let sz = usize::try_from(sz).unwrap_or(0);
            if p.is_null() || sz == 0 {
                return &[];
            }
            std::slice::from_raw_parts(p, sz)
        } else {
            check_bytes(L, 1)
        }
    }
}

/// A request body in pieces: what unpackrequest returns (contract: cluster.md §2.1).
#[derive(Debug, PartialEq)]
pub enum Request<'a> {
    /// One frame: address (number or name), session (0 = push), message.
    Single {
        addr: Addr<'a>,
        session: u32,
        msg: &'a [u8],
    },
    /// The head of a multi-part request or push: address, session, total size.
    MultiHead {
        addr: Addr<'a>,
        session: u32,
        size: u32,
        is_push: bool,
    },
    /// A part (`last` for the final one).
    Part {
        session: u32,
        msg: &'a [u8],
        last: bool,
    },
    /// A trace tag for the next request.
    Trace(&'a [u8]),
}

/// A request's address.
#[derive(Debug, PartialEq)]
pub enum Addr<'a> {
    Id(u32),
    Name(&'a [u8]),
}

/// Parse a request body; the error is upstream's text.
pub fn parse_request(b: &[u8]) -> Result<Request<'_>, String> {
    let bad = || format!("Invalid cluster message (size={})", b.len());
    let Some(&kind) = b.first() else {
        return Err("Invalid req package. size == 0".into());
    };
    match kind {
        0 => {
            if b.len() < 9 {
                return Err(bad());
            }
            Ok(Request::Single {
                addr: Addr::Id(le32(&b[1..])),
                session: le32(&b[5..]),
                msg: &b[9..],
            })
        }
        1 | 0x41 => {
            if b.len() != 13 {
                return Err(format!(
                    "Invalid cluster message size {} (multi req must be 13)",
                    b.len()
                ));
            }
            Ok(Request::MultiHead {
                addr: Addr::Id(le32(&b[1..])),
                session: le32(&b[5..]),
                size: le32(&b[9..]),
                is_push: kind == 0x41,
            })
        }
        2 | 3 => {
            if b.len() < 5 {
                return Err("Invalid cluster multi part message".into());
            }
            Ok(Request::Part {
                session: le32(&b[1..]),
                msg: &b[5..],
                last: kind == 3,
            })
        }
        4 => Ok(Request::Trace(&b[1..])),
        0x80 | 0x81 | 0xc1 => {
            if b.len() < 2 {
                return Err(bad());
            }
            let n = b[1] as usize;
            let fixed = if kind == 0x80 { 6 } else { 10 };
            if b.len() < n + fixed {
                return Err(bad());
            }
            let addr = Addr::Name(&b[2..2 + n]);
            let session = le32(&b[2 + n..]);
            if kind == 0x80 {
                Ok(Request::Single {
                    addr,
                    session,
                    msg: &b[n + 6..],
                })
            } else {
                Ok(Request::MultiHead {
                    addr,
                    session,
                    size: le32(&b[n + 6..]),
                    is_push: kind == 0xc1,
                })
            }
        }
        // upstream prints the type byte as a C `char` (signed)
        _ => Err(format!("Invalid req package type {}", kind as i8)),
    }
}

unsafe extern "C-unwind" fn l_unpackrequest(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; `b` borrows the argument for the call and
    // the error text is raised after the parse result is dropped.
    unsafe {
        let b = body_arg(L);
        let req = match parse_request(b) {
            Ok(r) => r,
            Err(e) => raise_string(L, e),
        };
        let push_addr = |a: &Addr| match a {
            Addr::Id(n) => ffi::lua_pushinteger(L, *n as i64),
            Addr::Name(s) => push_str(L, *s),
        };
        match req {
            Request::Single { addr, session, msg } => {
                push_addr(&addr);
                ffi::lua_pushinteger(L, session as i64);
                push_block(L, msg);
                if session == 0 {
                    ffi::lua_pushnil(L);
                    ffi::lua_pushboolean(L, 1);
                    return 6;
                }
                4
            }
            Request::MultiHead {
                addr,
                session,
                size,
                is_push,
            } => {
                push_addr(&addr);
                ffi::lua_pushinteger(L, session as i64);
                ffi::lua_pushnil(L);
                ffi::lua_pushinteger(L, size as i64);
                ffi::lua_pushboolean(L, 1);
                ffi::lua_pushboolean(L, is_push as c_int);
                6
            }
            Request::Part { session, msg, last } => {
                ffi::lua_pushboolean(L, 0);
                ffi::lua_pushinteger(L, session as i64);
                push_block(L, msg);
                ffi::lua_pushboolean(L, (!last) as c_int);
                5
            }
            Request::Trace(tag) => {
                push_str(L, tag);
                1
            }
        }
    }
}

unsafe extern "C-unwind" fn l_packresponse(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; the message is borrowed (never freed: it
    // belongs to the caller, as upstream).
    unsafe {
        let session = (ffi::luaL_checkinteger(L, 1) as u32).to_le_bytes();
        let ok = ffi::lua_toboolean(L, 2) != 0;
        let msg: &[u8] = if ffi::lua_type(L, 3) == ffi::LUA_TSTRING {
            check_bytes(L, 3)
        } else {
            let p = ffi::lua_touserdata(L, 3) as *const u8;
            let sz = usize::try_from(ffi::luaL_checkinteger(L, 4)).unwrap_or(0);
            if p.is_null() || sz == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(p, sz)
            }
        };
        if !ok {
            // an error text longer than a part is truncated (upstream)
            let m = &msg[..msg.len().min(MULTI_PART)];
            push_frame(L, &[&be16(m.len() + 5), &session, &[0], m]);
            return 1;
        }
        if msg.len() <= MULTI_PART {
            push_frame(L, &[&be16(msg.len() + 5), &session, &[1], msg]);
            return 1;
        }
        let nparts = msg.len().div_ceil(MULTI_PART);
        ffi::lua_createtable(L, nparts as c_int + 1, 0);
        push_frame(
            L,
            &[&be16(9), &session, &[2], &(msg.len() as u32).to_le_bytes()],
        );
        ffi::lua_rawseti(L, -2, 1);
        for (i, part) in msg.chunks(MULTI_PART).enumerate() {
            let kind = if i + 1 == nparts { 4 } else { 3 };
            push_frame(L, &[&be16(part.len() + 5), &session, &[kind], part]);
            ffi::lua_rawseti(L, -2, i as i64 + 2);
        }
        1
    }
}

unsafe extern "C-unwind" fn l_unpackresponse(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; `b` borrows the argument for the call.
    unsafe {
        let b = body_arg(L);
        if b.len() < 5 {
            return 0;
        }
        ffi::lua_pushinteger(L, le32(b) as i64);
        let data = &b[5..];
        match b[4] {
            0 => {
                ffi::lua_pushboolean(L, 0);
                push_str(L, data);
                3
            }
            1 | 4 => {
                ffi::lua_pushboolean(L, 1);
                push_str(L, data);
                3
            }
            2 => {
                if b.len() != 9 {
                    return 0;
                }
                ffi::lua_pushboolean(L, 1);
                ffi::lua_pushinteger(L, le32(data) as i64);
                ffi::lua_pushboolean(L, 1);
                4
            }
            3 => {
                ffi::lua_pushboolean(L, 1);
                push_str(L, data);
                ffi::lua_pushboolean(L, 1);
                4
            }
            _ => 0,
        }
    }
}

unsafe extern "C-unwind" fn l_append(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; the block is copied then freed once.
    unsafe {
        ffi::luaL_checktype(L, 1, ffi::LUA_TTABLE);
        let n = ffi::lua_rawlen(L, 1) as i64;
        if ffi::lua_isnil(L, 2) != 0 {
            ffi::lua_settop(L, 3);
            ffi::lua_seti(L, 1, n + 1);
            return 0;
        }
        let p = ffi::lua_touserdata(L, 2) as *mut u8;
        if p.is_null() {
            raise(L, "Need lightuserdata");
        }
        let sz = ffi::luaL_checkinteger(L, 3);
        let sz = usize::try_from(sz).unwrap_or(0);
        ffi::lua_pushlstring(L, p as *const c_char, sz);
        payload_free(p);
        ffi::lua_seti(L, 1, n + 1);
        0
    }
}

unsafe extern "C-unwind" fn l_concat(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; strings are read while on the stack.
    unsafe {
        if ffi::lua_istable(L, 1) == 0 || ffi::lua_geti(L, 1, 1) != ffi::LUA_TNUMBER {
            return 0;
        }
        let Ok(sz) = usize::try_from(ffi::lua_tointeger(L, -1)) else {
            return 0;
        };
        ffi::lua_pop(L, 1);
        // Check the parts against the announced size before allocating anything.
        let mut total = 0usize;
        let mut idx = 2;
        while ffi::lua_geti(L, 1, idx) == ffi::LUA_TSTRING {
            total += ffi::lua_rawlen(L, -1);
            ffi::lua_pop(L, 1);
            idx += 1;
        }
        ffi::lua_pop(L, 1);
        if total != sz {
            return 0;
        }
        let buf = payload_alloc(sz);
        let mut off = 0;
        for i in 2..idx {
            ffi::lua_geti(L, 1, i);
            let mut len = 0usize;
            let s = ffi::lua_tolstring(L, -1, &mut len);
            std::ptr::copy_nonoverlapping(s as *const u8, buf.add(off), len);
            off += len;
            ffi::lua_pop(L, 1);
        }
        ffi::lua_pushlightuserdata(L, buf as *mut c_void);
        ffi::lua_pushinteger(L, sz as i64);
        2
    }
}

unsafe extern "C-unwind" fn l_isname(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        if ffi::lua_type(L, 1) == ffi::LUA_TSTRING && check_bytes(L, 1).first() == Some(&b'@') {
            ffi::lua_pushboolean(L, 1);
            return 1;
        }
        0
    }
}

/// Host name (bytes <= ' ' replaced by '_') followed by the pid, as upstream.
fn nodename() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut c_char, buf.len()) };
    let pid = std::process::id();
    if r != 0 {
        return format!("noname{pid}");
    }
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    let host: String = buf[..end]
        .iter()
        .map(|&c| if c <= b' ' { '_' } else { c as char })
        .collect();
    format!("{host}{pid}")
}

unsafe extern "C-unwind" fn l_nodename(L: *mut lua_State) -> c_int {
    let name = nodename();
    // SAFETY: called by Lua with its state; a memory error here only leaks `name`.
    unsafe { push_str(L, &name) };
    1
}

/// `queuelen(handle)` (ours): messages waiting for local service `handle`, or nothing
/// if there is no such service. `cluster.send` uses it to refuse work for a sender that
/// is too far behind instead of letting its queue grow without bound.
unsafe extern "C-unwind" fn l_queuelen(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        let h = ffi::luaL_checkinteger(L, 1);
        match u32::try_from(h).ok().and_then(crate::api::queue_len) {
            Some(n) => {
                ffi::lua_pushinteger(L, n as i64);
                1
            }
            None => 0,
        }
    }
}

/// `require "skynet.cluster.core"`.
///
/// # Safety
/// Called by Lua as a `lua_CFunction`.
pub unsafe extern "C-unwind" fn luaopen_skynet_cluster_core(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        new_lib(
            L,
            &[
                (c"packrequest", l_packrequest as ffi::lua_CFunction),
                (c"packpush", l_packpush),
                (c"packtrace", l_packtrace),
                (c"unpackrequest", l_unpackrequest),
                (c"packresponse", l_packresponse),
                (c"unpackresponse", l_unpackresponse),
                (c"append", l_append),
                (c"concat", l_concat),
                (c"isname", l_isname),
                (c"nodename", l_nodename),
                (c"queuelen", l_queuelen),
            ],
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_request_bodies_are_errors_not_panics() {
        assert!(parse_request(&[]).is_err());
        assert!(parse_request(&[0, 1, 2]).is_err());
        assert!(parse_request(&[1; 12]).is_err());
        assert!(parse_request(&[2, 1]).is_err());
        assert!(parse_request(&[0x80, 200, 1, 2, 3]).is_err());
        assert!(parse_request(&[0x81, 0, 1, 2, 3, 4, 5, 6, 7]).is_err());
        assert_eq!(
            parse_request(&[0x90]).unwrap_err(),
            "Invalid req package type -112"
        );
        assert_eq!(parse_request(&[4]), Ok(Request::Trace(b"")));
        assert!(nodename().ends_with(&std::process::id().to_string()));
    }
}
