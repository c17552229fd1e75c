//! `skynet.memory` (2016: `memory`): memory figures. Without jemalloc, "total" is the
//! bytes held by every Lua state of the process (with the compiled code they share) and
//! "current" this service's own.

use crate::lua::host::{lua_service, TOTAL_LUA_MEMORY};
use mlua::ffi::{self, lua_State};
use std::ffi::c_int;
use std::sync::atomic::Ordering;

unsafe extern "C-unwind" fn l_total(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let total =
            TOTAL_LUA_MEMORY.load(Ordering::Relaxed) + crate::lua::codecache::shared_bytes();
        ffi::lua_pushinteger(L, total as ffi::lua_Integer);
        1
    }
}

unsafe extern "C-unwind" fn l_current(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let svc = lua_service(L);
        let n = if svc.is_null() {
            0
        } else {
            (*svc).shared.memory()
        };
        ffi::lua_pushinteger(L, n as ffi::lua_Integer);
        1
    }
}

unsafe extern "C-unwind" fn l_zero(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::lua_pushinteger(L, 0);
        1
    }
}

unsafe extern "C-unwind" fn l_info(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::lua_newtable(L);
        1
    }
}

unsafe extern "C-unwind" fn l_dump(_L: *mut lua_State) -> c_int {
    0
}

/// 2016 `memory.ssexpand(n)`: sized the short-string table upstream's patched Lua
/// shared between states (the 2016 bootstrap calls it); stock Lua has none, so it
/// only checks its argument.
unsafe extern "C-unwind" fn l_ssexpand(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe { ffi::luaL_checkinteger(L, 1) };
    0
}

/// `profactive([on])`: jemalloc heap profiling, not available: always false.
unsafe extern "C-unwind" fn l_false(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe { ffi::lua_pushboolean(L, 0) };
    1
}

/// `require "skynet.memory"`.
///
/// # Safety
/// `L` must be a valid Lua state of this runtime.
pub unsafe extern "C-unwind" fn luaopen_skynet_memory(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let fns: &[(&std::ffi::CStr, ffi::lua_CFunction)] = &[
            (c"total", l_total),
            (c"current", l_current),
            (c"block", l_zero),
            (c"info", l_info),
            (c"dumpinfo", l_dump),
            (c"dump", l_dump),
            (c"ssinfo", l_dump),
            (c"ssexpand", l_ssexpand),
            (c"jestat", l_info),
            (c"dumpheap", l_dump),
            (c"profactive", l_false),
        ];
        ffi::lua_createtable(L, 0, fns.len() as c_int);
        for (name, f) in fns {
            ffi::lua_pushcfunction(L, *f);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
        1
    }
}
