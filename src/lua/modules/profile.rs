//! `skynet.profile` (2016: `profile`): per-coroutine CPU timing, and the timing
//! `coroutine.resume` / `coroutine.wrap` installed as globals in every service.
//!
//! The resume wrapper also records which Lua thread is running, so that `SIGNAL 0`
//! (from another thread) can arm its hook on the right coroutine. Timing costs one
//! table lookup per resume unless the coroutine is being profiled.

use crate::lua::ffi::{raise, raise_string};
use crate::lua::host::{lua_service, LuaService};
use mlua::ffi::{self, lua_State};
use std::ffi::c_int;
use std::sync::atomic::Ordering;

/// Registry keys: start times and totals, weak-keyed by coroutine.
const START_KEY: &std::ffi::CStr = c"skynet.profile.start";
const TOTAL_KEY: &std::ffi::CStr = c"skynet.profile.total";
/// The original `coroutine.resume` C function, kept in the registry.
const RESUME_KEY: &std::ffi::CStr = c"skynet.profile.resume";

/// Thread CPU time in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

unsafe fn weak_table(L: *mut lua_State, key: &std::ffi::CStr) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        if ffi::lua_getfield(L, ffi::LUA_REGISTRYINDEX, key.as_ptr()) != ffi::LUA_TTABLE {
            ffi::lua_pop(L, 1);
            ffi::lua_newtable(L);
            ffi::lua_newtable(L);
            ffi::lua_pushstring(L, c"k".as_ptr());
            ffi::lua_setfield(L, -2, c"__mode".as_ptr());
            ffi::lua_setmetatable(L, -2);
            ffi::lua_pushvalue(L, -1);
            ffi::lua_setfield(L, ffi::LUA_REGISTRYINDEX, key.as_ptr());
        }
    }
}

/// Push the coroutine argument at `idx` (or the running thread when absent).
unsafe fn push_co(L: *mut lua_State, idx: c_int) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        if ffi::lua_isnoneornil(L, idx) != 0 {
            ffi::lua_pushthread(L);
        } else {
            ffi::luaL_checktype(L, idx, ffi::LUA_TTHREAD);
            ffi::lua_pushvalue(L, idx);
        }
    }
}

unsafe extern "C-unwind" fn l_start(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        push_co(L, 1);
        let co = ffi::lua_gettop(L);
        weak_table(L, START_KEY);
        ffi::lua_pushvalue(L, co);
        if ffi::lua_rawget(L, -2) != ffi::LUA_TNIL {
            let p = ffi::lua_topointer(L, co);
            raise_string(L, format!("Thread {p:p} start profile more than once"));
        }
        ffi::lua_pop(L, 1);
        ffi::lua_pushvalue(L, co);
        ffi::lua_pushnumber(L, thread_cpu_seconds());
        ffi::lua_rawset(L, -3);
        weak_table(L, TOTAL_KEY);
        ffi::lua_pushvalue(L, co);
        ffi::lua_pushnumber(L, 0.0);
        ffi::lua_rawset(L, -3);
        count_profiled(L, true);
        0
    }
}

unsafe extern "C-unwind" fn l_stop(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        push_co(L, 1);
        let co = ffi::lua_gettop(L);
        weak_table(L, START_KEY);
        let start_t = ffi::lua_gettop(L);
        ffi::lua_pushvalue(L, co);
        if ffi::lua_rawget(L, start_t) == ffi::LUA_TNIL {
            raise(L, "Call profile.start() before profile.stop()");
        }
        let started = ffi::lua_tonumber(L, -1);
        ffi::lua_pop(L, 1);
        weak_table(L, TOTAL_KEY);
        let total_t = ffi::lua_gettop(L);
        ffi::lua_pushvalue(L, co);
        ffi::lua_rawget(L, total_t);
        let mut total = ffi::lua_tonumber(L, -1);
        ffi::lua_pop(L, 1);
        // Still running (stop from inside the profiled coroutine): add the current slice.
        if ffi::lua_tothread(L, co) == L {
            total += thread_cpu_seconds() - started;
        }
        for t in [start_t, total_t] {
            ffi::lua_pushvalue(L, co);
            ffi::lua_pushnil(L);
            ffi::lua_rawset(L, t);
        }
        count_profiled(L, false);
        ffi::lua_pushnumber(L, total);
        1
    }
}

/// The timing resume: `resume(co, ...)`.
unsafe extern "C-unwind" fn l_resume(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let co = ffi::lua_tothread(L, 1);
        if co.is_null() {
            ffi::luaL_checktype(L, 1, ffi::LUA_TTHREAD);
        }
        let svc = ffi::lua_touserdata(L, ffi::lua_upvalueindex(4)) as *mut LuaService;
        let shared = if svc.is_null() {
            None
        } else {
            Some(&(*svc).shared)
        };
        // Is `co` profiled? (upvalue 1: start table; no lookup while nothing is profiled)
        let profiled = if shared.is_some_and(|s| s.profiling.load(Ordering::Relaxed) == 0) {
            false
        } else {
            ffi::lua_pushvalue(L, 1);
            let hit = ffi::lua_rawget(L, ffi::lua_upvalueindex(1)) != ffi::LUA_TNIL;
            ffi::lua_pop(L, 1);
            hit
        };
        let t0 = if profiled {
            let t = thread_cpu_seconds();
            ffi::lua_pushvalue(L, 1);
            ffi::lua_pushnumber(L, t);
            ffi::lua_rawset(L, ffi::lua_upvalueindex(1));
            t
        } else {
            0.0
        };
        // Single writer (the thread running this service): plain load/store.
        let previous = shared.map(|s| {
            let prev = s.active.load(Ordering::Relaxed);
            s.active.store(co, Ordering::Release);
            prev
        });
        let orig: ffi::lua_CFunction =
            std::mem::transmute(ffi::lua_touserdata(L, ffi::lua_upvalueindex(3)));
        let n = orig(L);
        if let (Some(s), Some(prev)) = (shared, previous) {
            s.active.store(prev, Ordering::Release);
        }
        if profiled {
            let diff = thread_cpu_seconds() - t0;
            ffi::lua_pushvalue(L, 1);
            ffi::lua_rawget(L, ffi::lua_upvalueindex(2));
            let total = ffi::lua_tonumber(L, -1) + diff;
            ffi::lua_pop(L, 1);
            ffi::lua_pushvalue(L, 1);
            ffi::lua_pushnumber(L, total);
            ffi::lua_rawset(L, ffi::lua_upvalueindex(2));
        }
        n
    }
}

/// Count a coroutine in or out of profiling for the calling service.
unsafe fn count_profiled(L: *mut lua_State, started: bool) {
    // SAFETY: `L` is the calling C function's valid state; its registry's `LuaService` (if
    // any) outlives the state's calls.
    unsafe {
        let svc = lua_service(L);
        if !svc.is_null() {
            let svc = &*svc;
            let p = &svc.shared.profiling;
            let n = p.load(Ordering::Relaxed);
            p.store(
                if started { n + 1 } else { n.saturating_sub(1) },
                Ordering::Relaxed,
            );
        }
    }
}

/// Push the timing resume closure (upvalues: start table, total table, original
/// resume, the service record or null).
unsafe fn push_resume(L: *mut lua_State) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        weak_table(L, START_KEY);
        weak_table(L, TOTAL_KEY);
        ffi::lua_getfield(L, ffi::LUA_REGISTRYINDEX, RESUME_KEY.as_ptr());
        ffi::lua_pushlightuserdata(L, lua_service(L) as *mut std::ffi::c_void);
        ffi::lua_pushcclosure(L, l_resume, 4);
    }
}

/// The function returned by the timing `wrap`: upvalue 1 is the coroutine, upvalue 2
/// the timing resume. Errors propagate like `coroutine.wrap`'s (a dead coroutine is
/// closed; string errors get the caller's position prepended).
unsafe extern "C-unwind" fn l_wrap_call(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let n = ffi::lua_gettop(L);
        ffi::lua_pushvalue(L, ffi::lua_upvalueindex(2));
        ffi::lua_insert(L, 1);
        ffi::lua_pushvalue(L, ffi::lua_upvalueindex(1));
        ffi::lua_insert(L, 2);
        ffi::lua_call(L, n + 1, ffi::LUA_MULTRET);
        if ffi::lua_toboolean(L, 1) != 0 {
            return ffi::lua_gettop(L) - 1;
        }
        let co = ffi::lua_tothread(L, ffi::lua_upvalueindex(1));
        ffi::lua_settop(L, 2); // false, error object
        if ffi::lua_status(co) != ffi::LUA_OK && ffi::lua_status(co) != ffi::LUA_YIELD {
            skynet_lua54::lua_closethread(co as *mut _, L as *mut _);
        }
        if ffi::lua_type(L, 2) == ffi::LUA_TSTRING {
            ffi::luaL_where(L, 1);
            ffi::lua_insert(L, 2);
            ffi::lua_concat(L, 2);
        }
        ffi::lua_error(L)
    }
}

/// The timing `wrap(f)` (upvalue 1: the timing resume).
unsafe extern "C-unwind" fn l_wrap(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::luaL_checktype(L, 1, ffi::LUA_TFUNCTION);
        let co = ffi::lua_newthread(L);
        ffi::lua_pushvalue(L, 1);
        ffi::lua_xmove(L, co, 1);
        ffi::lua_pushvalue(L, ffi::lua_upvalueindex(1));
        ffi::lua_pushcclosure(L, l_wrap_call, 2);
        1
    }
}

/// Push the timing `wrap`, built on the timing resume at the stack top (kept there).
unsafe fn push_wrap(L: *mut lua_State) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        ffi::lua_pushvalue(L, -1);
        ffi::lua_pushcclosure(L, l_wrap, 1);
    }
}

/// Called at state creation: keep the original resume, install the timing versions.
///
/// # Safety
/// `L` must be a valid Lua state of this runtime.
pub unsafe fn install_globals(L: *mut lua_State) {
    // SAFETY: the `# Safety` contract above covers every call below.
    unsafe {
        ffi::lua_getglobal(L, c"coroutine".as_ptr());
        ffi::lua_getfield(L, -1, c"resume".as_ptr());
        let orig = ffi::lua_tocfunction(L, -1);
        ffi::lua_pop(L, 1);
        let Some(orig) = orig else {
            ffi::lua_pop(L, 1);
            return;
        };
        ffi::lua_pushlightuserdata(L, orig as *mut std::ffi::c_void);
        ffi::lua_setfield(L, ffi::LUA_REGISTRYINDEX, RESUME_KEY.as_ptr());
        push_resume(L);
        ffi::lua_pushvalue(L, -1);
        ffi::lua_setfield(L, -3, c"resume".as_ptr());
        push_wrap(L);
        ffi::lua_setfield(L, -3, c"wrap".as_ptr());
        ffi::lua_pop(L, 2);
    }
}

/// `require "skynet.profile"`.
///
/// # Safety
/// `L` must be a valid Lua state of this runtime.
pub unsafe extern "C-unwind" fn luaopen_skynet_profile(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::lua_createtable(L, 0, 8);
        ffi::lua_pushcfunction(L, l_start);
        ffi::lua_setfield(L, -2, c"start".as_ptr());
        ffi::lua_pushcfunction(L, l_stop);
        ffi::lua_setfield(L, -2, c"stop".as_ptr());
        push_resume(L);
        ffi::lua_pushvalue(L, -1);
        ffi::lua_setfield(L, -3, c"resume".as_ptr());
        ffi::lua_pushvalue(L, -1);
        ffi::lua_setfield(L, -3, c"resume_co".as_ptr());
        push_wrap(L);
        ffi::lua_setfield(L, -3, c"wrap".as_ptr());
        ffi::lua_pop(L, 1);
        ffi::lua_getglobal(L, c"coroutine".as_ptr());
        ffi::lua_getfield(L, -1, c"yield".as_ptr());
        ffi::lua_pushvalue(L, -1);
        ffi::lua_setfield(L, -4, c"yield".as_ptr());
        ffi::lua_setfield(L, -3, c"yield_co".as_ptr());
        ffi::lua_pop(L, 1);
        1
    }
}
