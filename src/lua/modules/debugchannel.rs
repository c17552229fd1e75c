//! `skynet.debugchannel`: the command pipe of upstream's remote debugger
//! (`service/debug_agent.lua` creates it, `lualib/skynet/remotedebug.lua` in the
//! debugged service connects and polls it from a hook), and `sethook`, a
//! `debug.sethook` whose hook may yield.
//!
//! Functions: `create()` → channel, handle (a light userdata naming it);
//! `connect(handle)` → channel (once per channel: a second connection fails);
//! `release(channel)`; `sethook([thread,] f, mask[, count])` (`sethook([thread])`
//! clears it). Channel methods: `write(s)`, `read([timeout])` → the oldest string, or
//! nothing after sleeping `timeout * 0.1` seconds when the queue is empty (upstream's
//! units). The hook is called as `f(event, line)`; a true result yields the running
//! coroutine from the hook.
//!
//! Differences from upstream: a handle is checked against the live channels (a stale
//! or forged pointer raises `Invalid channel pointer` instead of being dereferenced),
//! and releasing a channel object twice (`release` then `__gc`) counts once.
//!
//! # Invariants
//!
//! * Channels live in a process-wide table keyed by handle; a channel object holds its
//!   key (0 once released). The lock is never held across a Lua API call.
//! * The hook owns nothing with a destructor while it calls into Lua.

#![allow(non_snake_case)]

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, c_void, CStr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use mlua::ffi::{self, lua_Debug, lua_State};

use crate::lua::ffi::{check_bytes, new_lib, push_str, raise};

const META: &CStr = c"debugchannel";

#[derive(Default)]
struct Chan {
    refs: usize,
    queue: VecDeque<Vec<u8>>,
}

type Table = HashMap<usize, Arc<Mutex<Chan>>>;

fn table() -> MutexGuard<'static, Table> {
    static T: OnceLock<Mutex<Table>> = OnceLock::new();
    T.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn chan(key: usize) -> Option<Arc<Mutex<Chan>>> {
    table().get(&key).cloned()
}

fn lock(c: &Mutex<Chan>) -> MutexGuard<'_, Chan> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drops one reference; the channel is forgotten at zero.
fn release_key(key: usize) {
    let mut t = table();
    let gone = match t.get(&key) {
        Some(c) => {
            let mut c = lock(c);
            c.refs -= 1;
            c.refs == 0
        }
        None => false,
    };
    if gone {
        t.remove(&key);
    }
}

/// The channel key stored in the object at `idx` (`luaL_checkudata`).
unsafe fn check_box(L: *mut lua_State, idx: c_int) -> *mut usize {
    // SAFETY: `L` is valid; a `debugchannel` userdata holds one usize.
    unsafe { ffi::luaL_checkudata(L, idx, META.as_ptr()) as *mut usize }
}

/// Pushes a channel object for `key` (whose reference the object now owns).
unsafe fn push_box(L: *mut lua_State, key: usize) {
    // SAFETY: `L` is valid. If an allocation below raises, the reference leaks (a
    // few bytes, memory errors only).
    unsafe {
        let p = ffi::lua_newuserdatauv(L, std::mem::size_of::<usize>(), 0) as *mut usize;
        p.write(key);
        if ffi::luaL_newmetatable(L, META.as_ptr()) != 0 {
            new_lib(
                L,
                &[(c"read", l_read as ffi::lua_CFunction), (c"write", l_write)],
            );
            ffi::lua_setfield(L, -2, c"__index".as_ptr());
            ffi::lua_pushcfunction(L, l_release);
            ffi::lua_setfield(L, -2, c"__gc".as_ptr());
        }
        ffi::lua_setmetatable(L, -2);
    }
}

unsafe extern "C-unwind" fn l_create(L: *mut lua_State) -> c_int {
    let c = Arc::new(Mutex::new(Chan {
        refs: 1,
        queue: VecDeque::new(),
    }));
    let key = Arc::as_ptr(&c) as usize;
    table().insert(key, c);
    // SAFETY: called by Lua with its state; nothing with a destructor is alive.
    unsafe {
        push_box(L, key);
        ffi::lua_pushlightuserdata(L, key as *mut c_void);
    }
    2
}

unsafe extern "C-unwind" fn l_connect(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    let key = unsafe { ffi::lua_touserdata(L, 1) } as usize;
    if key == 0 {
        // SAFETY: as above.
        unsafe { raise(L, "Invalid channel pointer") }
    }
    let ok = match table().get(&key) {
        Some(c) => {
            let mut c = lock(c);
            if c.refs == 1 {
                c.refs += 1;
                true
            } else {
                false
            }
        }
        None => false,
    };
    // SAFETY: as above; the guards are dropped.
    unsafe {
        if !ok {
            raise(L, "new channel failed");
        }
        push_box(L, key);
    }
    1
}

unsafe extern "C-unwind" fn l_release(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; a `debugchannel` object holds a usize.
    unsafe {
        let p = ffi::luaL_testudata(L, 1, META.as_ptr()) as *mut usize;
        if !p.is_null() && *p != 0 {
            release_key(*p);
            *p = 0;
        }
    }
    0
}

unsafe extern "C-unwind" fn l_write(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    let (key, s) = unsafe { (*check_box(L, 1), check_bytes(L, 2)) };
    let written = match chan(key) {
        Some(c) => {
            lock(&c).queue.push_back(s.to_vec());
            true
        }
        None => false,
    };
    if !written {
        // SAFETY: as above; nothing with a destructor is alive.
        unsafe { raise(L, "debugchannel released") }
    }
    0
}

unsafe extern "C-unwind" fn l_read(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    let (key, timeout) = unsafe { (*check_box(L, 1), ffi::luaL_optnumber(L, 2, 0.0)) };
    let msg = chan(key).and_then(|c| lock(&c).queue.pop_front());
    match msg {
        Some(m) => {
            // Copied to Lua, then dropped before anything else can raise.
            let m = std::mem::ManuallyDrop::new(m);
            // SAFETY: as above; if the push raises (memory), `m` leaks.
            unsafe { push_str(L, &m[..]) };
            drop(std::mem::ManuallyDrop::into_inner(m));
            1
        }
        None => {
            let us = (timeout * 100_000.0) as i64;
            if us > 0 {
                std::thread::sleep(Duration::from_micros(us as u64));
            }
            0
        }
    }
}

/// The registry key of the per-thread hook table.
static HOOKKEY: u8 = 0;

fn hookkey() -> *const c_void {
    &HOOKKEY as *const u8 as *const c_void
}

unsafe extern "C-unwind" fn hookf(L: *mut lua_State, ar: *mut lua_Debug) {
    const NAMES: [&str; 5] = ["call", "return", "line", "count", "tail call"];
    // SAFETY: called by Lua as a hook with its state and a filled `ar`.
    unsafe {
        ffi::lua_rawgetp(L, ffi::LUA_REGISTRYINDEX, hookkey());
        ffi::lua_pushthread(L);
        if ffi::lua_rawget(L, -2) == ffi::LUA_TFUNCTION {
            let ev = usize::try_from((*ar).event).unwrap_or(0);
            push_str(L, NAMES.get(ev).copied().unwrap_or("?"));
            if (*ar).currentline >= 0 {
                ffi::lua_pushinteger(L, i64::from((*ar).currentline));
            } else {
                ffi::lua_pushnil(L);
            }
            ffi::lua_call(L, 2, 1);
            let y = ffi::lua_toboolean(L, -1) != 0;
            ffi::lua_pop(L, 2);
            if y {
                ffi::lua_yield(L, 0);
            }
        } else {
            ffi::lua_pop(L, 2);
        }
    }
}

unsafe extern "C-unwind" fn l_sethook(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; `L1` is a thread value on our stack.
    unsafe {
        let (L1, arg) = if ffi::lua_type(L, 1) == ffi::LUA_TTHREAD {
            (ffi::lua_tothread(L, 1), 1)
        } else {
            (L, 0)
        };
        let (func, mask, count): (Option<ffi::lua_Hook>, c_int, c_int) =
            if ffi::lua_type(L, arg + 1) <= ffi::LUA_TNIL {
                ffi::lua_settop(L, arg + 1);
                (None, 0, 0)
            } else {
                let smask = check_bytes(L, arg + 2);
                ffi::luaL_checktype(L, arg + 1, ffi::LUA_TFUNCTION);
                let count = ffi::luaL_optinteger(L, arg + 3, 0) as c_int;
                let mut mask = 0;
                if smask.contains(&b'c') {
                    mask |= ffi::LUA_MASKCALL;
                }
                if smask.contains(&b'r') {
                    mask |= ffi::LUA_MASKRET;
                }
                if smask.contains(&b'l') {
                    mask |= ffi::LUA_MASKLINE;
                }
                if count > 0 {
                    mask |= ffi::LUA_MASKCOUNT;
                }
                (Some(hookf as ffi::lua_Hook), mask, count)
            };
        if ffi::lua_rawgetp(L, ffi::LUA_REGISTRYINDEX, hookkey()) == ffi::LUA_TNIL {
            ffi::lua_pop(L, 1);
            ffi::lua_createtable(L, 0, 2);
            ffi::lua_pushvalue(L, -1);
            ffi::lua_rawsetp(L, ffi::LUA_REGISTRYINDEX, hookkey());
            push_str(L, "k");
            ffi::lua_setfield(L, -2, c"__mode".as_ptr());
            ffi::lua_pushvalue(L, -1);
            ffi::lua_setmetatable(L, -2);
        }
        ffi::lua_pushthread(L1);
        ffi::lua_xmove(L1, L, 1);
        ffi::lua_pushvalue(L, arg + 1);
        ffi::lua_rawset(L, -3);
        ffi::lua_sethook(L1, func, mask, count);
    }
    0
}

/// `require "skynet.debugchannel"`.
///
/// # Safety
/// Called by Lua as a `lua_CFunction`.
pub unsafe extern "C-unwind" fn luaopen_skynet_debugchannel(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        new_lib(
            L,
            &[
                (c"create", l_create as ffi::lua_CFunction),
                (c"connect", l_connect),
                (c"release", l_release),
                (c"sethook", l_sethook),
            ],
        );
    }
    1
}
