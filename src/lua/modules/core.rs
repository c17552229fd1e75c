//! `skynet.core`: messaging, commands, logging and time for Lua services (core.md §8).
//!
//! Functions that act on the calling service find its [`LuaService`] through upvalue 1
//! (a lightuserdata), set once when the module is opened: no registry lookup per call.
//! Raising a Lua error is a longjmp, so each function does its Rust work in a scope
//! that ends before any raise.

use crate::api::{self, ptype, SendError};
use crate::lua::ffi::{push_str, raise, raise_string, to_bytes, type_name};
use crate::lua::host::{lua_service, LuaService};
use crate::lua::modules::seri;
use mlua::ffi::{self, lua_State};
use std::ffi::{c_char, c_int, c_void, CStr};

#[inline]
unsafe fn svc<'a>(L: *mut lua_State) -> &'a mut LuaService {
    // SAFETY: `L` is the valid state of the calling C function, and upvalue 1 of every
    // `skynet.core` function that uses this is the service's boxed `LuaService` (set in
    // `luaopen_skynet_core`), which outlives the state's calls.
    unsafe { &mut *(ffi::lua_touserdata(L, ffi::lua_upvalueindex(1)) as *mut LuaService) }
}

/// Where a send goes.
enum Dest<'a> {
    Handle(u32),
    Name(&'a str),
}

/// Read the destination argument; `Err` is the error text to raise.
unsafe fn dest_arg<'a>(L: *mut lua_State, idx: c_int) -> Result<Dest<'a>, String> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let mut isnum = 0;
        let n = ffi::lua_tointegerx(L, idx, &mut isnum);
        if isnum != 0 && n != 0 {
            return Ok(Dest::Handle(n as u32));
        }
        match ffi::lua_type(L, idx) {
            ffi::LUA_TNUMBER => Err("Invalid service address 0".into()),
            ffi::LUA_TSTRING => {
                let b = to_bytes(L, idx).unwrap_or(&[]);
                Ok(Dest::Name(std::str::from_utf8(b).unwrap_or("")))
            }
            _ => Err(format!(
                "dest address type ({}) must be a string or number.",
                type_name(L, idx)
            )),
        }
    }
}

/// Shared body of send and redirect: args from `first` are type, session, msg[, sz].
unsafe fn send_common(L: *mut lua_State, source_idx: Option<c_int>, first: c_int) -> c_int {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let result = {
            let me = svc(L);
            let outcome = (|| -> Result<Result<i32, SendError>, String> {
                let dest = dest_arg(L, 1)?;
                let source = match source_idx {
                    Some(i) => match ffi::lua_tointeger(L, i) as u32 {
                        0 => me.handle,
                        s => s,
                    },
                    None => me.handle,
                };
                let mut ty = ffi::luaL_checkinteger(L, first) as i32;
                let session = if ffi::lua_isnil(L, first + 1) != 0 {
                    ty |= ptype::TAG_ALLOCSESSION;
                    0
                } else {
                    ffi::luaL_checkinteger(L, first + 1) as i32
                };
                let (data, size) = match ffi::lua_type(L, first + 2) {
                    ffi::LUA_TSTRING => {
                        let b = to_bytes(L, first + 2).unwrap_or(&[]);
                        if b.is_empty() {
                            (std::ptr::null_mut(), 0)
                        } else {
                            (b.as_ptr() as *mut u8, b.len())
                        }
                    }
                    ffi::LUA_TLIGHTUSERDATA => {
                        ty |= ptype::TAG_DONTCOPY;
                        let p = ffi::lua_touserdata(L, first + 2) as *mut u8;
                        (p, ffi::luaL_checkinteger(L, first + 3) as usize)
                    }
                    _ => return Err(format!("invalid param {}", type_name(L, first + 2))),
                };
                // SAFETY: `data` is a Lua string borrowed for the copy, or (DONTCOPY) a
                // lightuserdata payload block the script hands over (upstream's contract);
                // `me` is the calling service, running on its worker.
                Ok(match dest {
                    Dest::Handle(h) => {
                        api::send(Some(me.ctx()), source, h, ty, session, data, size)
                    }
                    Dest::Name(name) => {
                        api::send_name(Some(me.ctx()), source, name, ty, session, data, size)
                    }
                })
            })();
            outcome
        };
        match result {
            Ok(Ok(session)) => {
                ffi::lua_pushinteger(L, session as ffi::lua_Integer);
                1
            }
            Ok(Err(SendError::TooLarge)) => {
                ffi::lua_pushboolean(L, 0);
                1
            }
            Ok(Err(SendError::NoDestination)) => 0,
            Err(msg) => raise_string(L, msg),
        }
    }
}

unsafe extern "C-unwind" fn l_send(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe { send_common(L, None, 2) }
}

unsafe extern "C-unwind" fn l_redirect(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe { send_common(L, Some(2), 3) }
}

unsafe extern "C-unwind" fn l_genid(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let s = svc(L).ctx().new_session();
        ffi::lua_pushinteger(L, s as ffi::lua_Integer);
        1
    }
}

unsafe extern "C-unwind" fn l_callback(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::luaL_checktype(L, 1, ffi::LUA_TFUNCTION);
        let forward = ffi::lua_toboolean(L, 2) != 0;
        let me = svc(L);
        // The registry is shared by all threads of the state.
        ffi::lua_pushvalue(L, 1);
        if me.callback_ref == ffi::LUA_NOREF {
            me.callback_ref = ffi::luaL_ref(L, ffi::LUA_REGISTRYINDEX);
        } else {
            ffi::lua_rawseti(
                L,
                ffi::LUA_REGISTRYINDEX,
                me.callback_ref as ffi::lua_Integer,
            );
        }
        me.forward = forward;
        0
    }
}

unsafe extern "C-unwind" fn l_trash(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        match ffi::lua_type(L, 1) {
            ffi::LUA_TLIGHTUSERDATA => {
                let p = ffi::lua_touserdata(L, 1) as *mut u8;
                ffi::luaL_checkinteger(L, 2);
                crate::message::payload_free(p);
                0
            }
            ffi::LUA_TSTRING => 0,
            _ => {
                let msg = format!("skynet.trash invalid param {}", type_name(L, 1));
                raise_string(L, msg)
            }
        }
    }
}

unsafe extern "C-unwind" fn l_tostring(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        if ffi::lua_isnoneornil(L, 1) != 0 {
            return 0;
        }
        let p = ffi::lua_touserdata(L, 1) as *const c_char;
        let Ok(sz) = usize::try_from(ffi::luaL_checkinteger(L, 2)) else {
            raise(L, "skynet.tostring: negative size");
        };
        if p.is_null() {
            ffi::lua_pushstring(L, c"".as_ptr());
        } else {
            ffi::lua_pushlstring(L, p, sz);
        }
        1
    }
}

/// Run a command; `None` is no result.
unsafe fn run_command(L: *mut lua_State, param: Option<&str>) -> Option<String> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let me = svc(L);
        let cmd = std::str::from_utf8(to_bytes(L, 1).unwrap_or(&[])).unwrap_or("");
        api::command(me.ctx(), cmd, param)
    }
}

unsafe fn string_param<'a>(L: *mut lua_State, idx: c_int) -> Result<Option<&'a str>, String> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match ffi::lua_type(L, idx) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => Ok(None),
            ffi::LUA_TSTRING | ffi::LUA_TNUMBER => Ok(Some(
                std::str::from_utf8(to_bytes(L, idx).unwrap_or(&[])).unwrap_or(""),
            )),
            _ => Err(format!(
                "bad argument #{idx} (string expected, got {})",
                type_name(L, idx)
            )),
        }
    }
}

unsafe extern "C-unwind" fn l_command(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::luaL_checkstring(L, 1);
        let result = match string_param(L, 2) {
            Ok(p) => run_command(L, p),
            Err(e) => raise_string(L, e),
        };
        match result {
            Some(s) => {
                push_str(L, s.as_bytes());
                1
            }
            None => 0,
        }
    }
}

/// `strtoll(s, 0)` if it consumes everything, else `strtod`, else None.
fn parse_number(s: &str) -> Option<NumberResult> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| b.is_ascii_digit()) {
        i64::from_str_radix(&body[1..], 8).ok()
    } else {
        body.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return Some(NumberResult::Int(if neg { -i } else { i }));
    }
    t.parse::<f64>().ok().map(NumberResult::Float)
}

enum NumberResult {
    Int(i64),
    Float(f64),
}

unsafe extern "C-unwind" fn l_intcommand(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::luaL_checkstring(L, 1);
        let result = {
            let param = match ffi::lua_type(L, 2) {
                ffi::LUA_TNUMBER => Ok(Some((ffi::lua_tointeger(L, 2) as i32).to_string())),
                _ => string_param(L, 2).map(|p| p.map(str::to_string)),
            };
            match param {
                Ok(param) => run_command(L, param.as_deref()).map(|r| match parse_number(&r) {
                    Some(n) => Ok(n),
                    None => Err(format!("Invalid result {r}")),
                }),
                Err(e) => Some(Err(e)),
            }
        };
        match result {
            Some(Ok(NumberResult::Int(i))) => {
                ffi::lua_pushinteger(L, i);
                1
            }
            Some(Ok(NumberResult::Float(f))) => {
                ffi::lua_pushnumber(L, f);
                1
            }
            Some(Err(e)) => raise_string(L, e),
            None => 0,
        }
    }
}

unsafe extern "C-unwind" fn l_addresscommand(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::luaL_checkstring(L, 1);
        let result = match string_param(L, 2) {
            Ok(p) => run_command(L, p).and_then(|r| api::parse_hex_address(&r)),
            Err(e) => raise_string(L, e),
        };
        match result {
            Some(h) => {
                ffi::lua_pushinteger(L, h as ffi::lua_Integer);
                1
            }
            None => 0,
        }
    }
}

unsafe extern "C-unwind" fn l_error(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let n = ffi::lua_gettop(L);
        if n == 0 {
            ffi::lua_pushstring(L, c"nil".as_ptr());
        } else {
            // The second loop pushes n values and n - 1 separators above the n
            // arguments: room for 2n - 1 more slots (a C function is only promised
            // LUA_MINSTACK = 20, so ten or more arguments overflowed the stack).
            ffi::luaL_checkstack(L, 2 * n, c"too many arguments to skynet.error".as_ptr());
            for i in 1..=n {
                ffi::luaL_tolstring(L, i, std::ptr::null_mut());
                ffi::lua_replace(L, i);
            }
            // Interleave separators: build "a b c" with lua_concat.
            for i in 1..=n {
                ffi::lua_pushvalue(L, i);
                if i < n {
                    ffi::lua_pushstring(L, c" ".as_ptr());
                }
            }
            ffi::lua_concat(L, 2 * n - 1);
        }
        let line = to_bytes(L, -1).unwrap_or(&[]);
        api::log_bytes(svc(L).handle, line);
        0
    }
}

unsafe extern "C-unwind" fn l_trace(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let tag = ffi::luaL_checklstring(L, 1, std::ptr::null_mut());
        let user = ffi::luaL_checklstring(L, 2, std::ptr::null_mut());
        let (co, level) = if ffi::lua_isthread(L, 3) != 0 {
            (
                ffi::lua_tothread(L, 3),
                ffi::luaL_optinteger(L, 4, 1) as c_int,
            )
        } else if ffi::lua_isnoneornil(L, 3) == 0 {
            (L, ffi::luaL_optinteger(L, 3, 1) as c_int)
        } else {
            (std::ptr::null_mut(), 0)
        };
        let mut line = format!(
            "<TRACE {}> {} {}",
            CStr::from_ptr(tag).to_string_lossy(),
            api::hpc(),
            CStr::from_ptr(user).to_string_lossy()
        );
        if !co.is_null() {
            // Up to three Lua frames from `level` up (C frames, with no current line,
            // are skipped), each as its full chunk name: `@path:line` for a file, as
            // upstream prints them.
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            let mut shown = 0;
            let mut lv = level;
            while shown < 3
                && ffi::lua_getstack(co, lv, &mut ar) != 0
                && ffi::lua_getinfo(co, c"Sl".as_ptr(), &mut ar) != 0
            {
                lv += 1;
                if ar.currentline < 0 {
                    continue;
                }
                let src = if ar.source.is_null() {
                    std::borrow::Cow::Borrowed("?")
                } else {
                    CStr::from_ptr(ar.source).to_string_lossy()
                };
                line.push_str(if shown == 0 { " : " } else { " " });
                shown += 1;
                line.push_str(&format!("{}:{}", src, ar.currentline));
            }
        }
        api::log(svc(L).handle, &line);
        0
    }
}

/// `timeout(ticks)` -> session: the `TIMEOUT` command without its text round trip
/// (an extra of ours; upstream's skynet.lua uses `intcommand("TIMEOUT", ti)`).
unsafe extern "C-unwind" fn l_timeout(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        // Lenient like TIMEOUT's strtol: floats truncate, non-numbers count as 0.
        let ticks = if ffi::lua_isinteger(L, 1) != 0 {
            ffi::lua_tointeger(L, 1)
        } else {
            ffi::lua_tonumber(L, 1) as i64
        };
        let session = api::timeout(svc(L).ctx(), ticks);
        ffi::lua_pushinteger(L, session as ffi::lua_Integer);
        1
    }
}

unsafe extern "C-unwind" fn l_now(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::lua_pushinteger(L, api::now() as ffi::lua_Integer);
        1
    }
}

unsafe extern "C-unwind" fn l_hpc(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::lua_pushinteger(L, api::hpc() as ffi::lua_Integer);
        1
    }
}

unsafe extern "C-unwind" fn l_harbor(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let addr = ffi::luaL_checkinteger(L, 1) as u32;
        let (harbor, remote) = api::is_remote(addr);
        ffi::lua_pushinteger(L, harbor as ffi::lua_Integer);
        ffi::lua_pushboolean(L, remote as c_int);
        2
    }
}

/// `require "skynet.core"`.
///
/// # Safety
/// `L` must be a valid Lua state of this runtime.
pub unsafe extern "C-unwind" fn luaopen_skynet_core(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let with_ctx: &[(&CStr, ffi::lua_CFunction)] = &[
            (c"send", l_send),
            (c"redirect", l_redirect),
            (c"genid", l_genid),
            (c"timeout", l_timeout),
            (c"callback", l_callback),
            (c"command", l_command),
            (c"intcommand", l_intcommand),
            (c"addresscommand", l_addresscommand),
            (c"error", l_error),
            (c"trace", l_trace),
            (c"harbor", l_harbor),
        ];
        let plain: &[(&CStr, ffi::lua_CFunction)] = &[
            (c"trash", l_trash),
            (c"tostring", l_tostring),
            (c"pack", seri::l_pack),
            (c"unpack", seri::l_unpack),
            (c"packstring", seri::l_packstring),
            (c"now", l_now),
            (c"hpc", l_hpc),
        ];
        let me = lua_service(L);
        if me.is_null() {
            raise(L, "Init skynet context first");
        }
        ffi::lua_createtable(L, 0, (with_ctx.len() + plain.len()) as c_int);
        for (name, f) in with_ctx {
            ffi::lua_pushlightuserdata(L, me as *mut c_void);
            ffi::lua_pushcclosure(L, *f, 1);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
        for (name, f) in plain {
            ffi::lua_pushcfunction(L, *f);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
        1
    }
}
