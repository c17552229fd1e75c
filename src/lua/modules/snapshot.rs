//! `snapshot`: a map of every live Lua object reachable from the registry, for leak
//! hunting (upstream's debug protocol `SNAPSHOT` command requires it).
//!
//! `snapshot()` returns a table keyed by each object's address (a lightuserdata) whose
//! value describes the object and the first reference found to it:
//! `"<kind>\n0x<parent> : <key>\n"`, where kind is `table`, `func: <source>:<line>`,
//! `thread:` or `userdata`. The walk is breadth-first over an explicit work list kept
//! in a Lua table (no recursion, so deep structures cannot overflow the C stack), and
//! every object is described once.

use crate::lua::ffi::push_str;
use mlua::ffi::{self, lua_State};
use std::ffi::{c_int, c_void, CStr};

/// Stack slots of the walk's state.
const RESULT: c_int = 1;
const WORK: c_int = 2;

fn is_object(t: c_int) -> bool {
    matches!(
        t,
        ffi::LUA_TTABLE | ffi::LUA_TFUNCTION | ffi::LUA_TTHREAD | ffi::LUA_TUSERDATA
    )
}

/// How a key reads in a description.
unsafe fn key_text(L: *mut lua_State, idx: c_int) -> String {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match ffi::lua_type(L, idx) {
            ffi::LUA_TSTRING => {
                let mut len = 0;
                let p = ffi::lua_tolstring(L, idx, &mut len);
                String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len))
                    .into_owned()
            }
            ffi::LUA_TNUMBER => {
                if ffi::lua_isinteger(L, idx) != 0 {
                    format!("[{}]", ffi::lua_tointeger(L, idx))
                } else {
                    format!("[{}]", ffi::lua_tonumber(L, idx))
                }
            }
            ffi::LUA_TBOOLEAN => format!("[{}]", ffi::lua_toboolean(L, idx) != 0),
            t => format!(
                "[{} {:p}]",
                CStr::from_ptr(ffi::lua_typename(L, t)).to_string_lossy(),
                ffi::lua_topointer(L, idx)
            ),
        }
    }
}

/// The kind line of the object at `idx`.
unsafe fn kind_text(L: *mut lua_State, idx: c_int) -> String {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match ffi::lua_type(L, idx) {
            ffi::LUA_TTABLE => "table".to_string(),
            ffi::LUA_TTHREAD => "thread:".to_string(),
            ffi::LUA_TFUNCTION => {
                let mut ar: ffi::lua_Debug = std::mem::zeroed();
                ffi::lua_pushvalue(L, idx);
                if ffi::lua_getinfo(L, c">S".as_ptr(), &mut ar) != 0 && !ar.source.is_null() {
                    let src = CStr::from_ptr(ar.short_src.as_ptr()).to_string_lossy();
                    format!("func: {}:{}", src, ar.linedefined)
                } else {
                    "func: ?".to_string()
                }
            }
            _ => "userdata".to_string(),
        }
    }
}

/// Record the object on top of the stack (popping it) as referenced from `parent`
/// under `key`, and queue it for its own walk if it is new.
unsafe fn mark(L: *mut lua_State, parent: *const c_void, key: &str) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let top = ffi::lua_gettop(L);
        if !is_object(ffi::lua_type(L, top)) {
            ffi::lua_pop(L, 1);
            return;
        }
        let ptr = ffi::lua_topointer(L, top) as *mut c_void;
        if ffi::lua_rawgetp(L, RESULT, ptr) != ffi::LUA_TNIL {
            ffi::lua_pop(L, 2);
            return;
        }
        ffi::lua_pop(L, 1);
        let text = format!("{}\n{:p} : {}\n", kind_text(L, top), parent, key);
        push_str(L, text.as_bytes());
        drop(text);
        ffi::lua_rawsetp(L, RESULT, ptr);
        let n = ffi::lua_rawlen(L, WORK) as ffi::lua_Integer;
        ffi::lua_rawseti(L, WORK, n + 1); // pops the object
    }
}

unsafe fn walk_table(L: *mut lua_State, t: c_int) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let me = ffi::lua_topointer(L, t);
        if ffi::lua_getmetatable(L, t) != 0 {
            mark(L, me, "[metatable]");
        }
        ffi::lua_pushnil(L);
        while ffi::lua_next(L, t) != 0 {
            let key = key_text(L, -2);
            mark(L, me, &key); // the value
            drop(key);
            ffi::lua_pushvalue(L, -1);
            mark(L, me, "[key]");
        }
    }
}

unsafe fn walk_function(L: *mut lua_State, f: c_int) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let me = ffi::lua_topointer(L, f);
        let mut i = 1;
        loop {
            let name = ffi::lua_getupvalue(L, f, i);
            if name.is_null() {
                break;
            }
            let key = CStr::from_ptr(name).to_string_lossy().into_owned();
            let key = if key.is_empty() {
                format!("[upvalue {i}]")
            } else {
                key
            };
            mark(L, me, &key);
            i += 1;
        }
    }
}

unsafe fn walk_userdata(L: *mut lua_State, u: c_int) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let me = ffi::lua_topointer(L, u);
        if ffi::lua_getmetatable(L, u) != 0 {
            mark(L, me, "[metatable]");
        }
        let mut n = 1;
        while ffi::lua_getiuservalue(L, u, n) != ffi::LUA_TNONE {
            mark(L, me, "[uservalue]");
            n += 1;
        }
        ffi::lua_pop(L, 1);
    }
}

unsafe fn walk_thread(L: *mut lua_State, t: c_int) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let me = ffi::lua_topointer(L, t);
        let co = ffi::lua_tothread(L, t);
        if co == L {
            return;
        }
        // The values on the coroutine's stack (locals and temporaries).
        let n = ffi::lua_gettop(co);
        ffi::luaL_checkstack(L, 2, std::ptr::null());
        for i in 1..=n {
            ffi::lua_pushvalue(co, i);
            ffi::lua_xmove(co, L, 1);
            mark(L, me, "[stack]");
        }
    }
}

unsafe extern "C-unwind" fn l_snapshot(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::lua_settop(L, 0);
        ffi::lua_newtable(L); // RESULT
        ffi::lua_newtable(L); // WORK
        ffi::lua_pushvalue(L, ffi::LUA_REGISTRYINDEX);
        mark(L, std::ptr::null(), "[registry]");
        let mut i: ffi::lua_Integer = 1;
        while ffi::lua_rawgeti(L, WORK, i) != ffi::LUA_TNIL {
            let obj = ffi::lua_gettop(L);
            ffi::luaL_checkstack(L, 8, std::ptr::null());
            match ffi::lua_type(L, obj) {
                ffi::LUA_TTABLE => walk_table(L, obj),
                ffi::LUA_TFUNCTION => walk_function(L, obj),
                ffi::LUA_TUSERDATA => walk_userdata(L, obj),
                ffi::LUA_TTHREAD => walk_thread(L, obj),
                _ => {}
            }
            ffi::lua_settop(L, WORK);
            i += 1;
        }
        ffi::lua_settop(L, RESULT);
        1
    }
}

/// `require "snapshot"` returns the snapshot function itself.
///
/// # Safety
/// `L` must be a valid Lua state.
pub unsafe extern "C-unwind" fn luaopen_snapshot(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::lua_pushcfunction(L, l_snapshot);
        1
    }
}
