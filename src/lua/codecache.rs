//! The process-wide code cache: every Lua file is compiled once per process, and every
//! state runs that one compiled copy.
//!
//! Upstream shares function prototypes between states with a patched Lua
//! (`skynet.codecache`). So do we, with our own patch (crates/lua54): a file is loaded
//! into a private *master* state whose collector never runs, its prototype tree is
//! flagged shared and immutable, and a service that loads the file gets a closure over
//! that tree. A service start therefore neither parses nor undumps the framework, and an
//! idle service holds no copy of its code.
//!
//! Invariants: the master state is only touched under [`MASTER`]'s lock and never runs
//! code; a root in the cache stays valid for the life of the process (an edited file
//! gets a new root; the old one is kept, as running closures may still use it). Entries
//! are keyed by path and validated by size and modification time on every load, so an
//! edited file is picked up by the next service that loads it. Embedded files are keyed
//! by their chunk name and never change.

use mlua::ffi::{self, lua_State};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::time::SystemTime;

/// A shared prototype root (immutable, immortal: see the module doc).
#[derive(Clone, Copy)]
struct Root(*const c_void);
// SAFETY: a root is never written after publication and never freed.
unsafe impl Send for Root {}

struct Entry {
    modified: SystemTime,
    len: u64,
    root: Root,
}

struct Master {
    L: *mut lua_State,
    files: HashMap<Vec<u8>, Entry>,
}
// SAFETY: the master state is only used under the MASTER lock.
unsafe impl Send for Master {}

static MASTER: Mutex<Option<Master>> = Mutex::new(None);

impl Master {
    fn get(slot: &mut Option<Master>) -> Option<&mut Master> {
        if slot.is_none() {
            // SAFETY: a fresh state, owned by the cache from here on.
            let L = unsafe { ffi::luaL_newstate() };
            if L.is_null() {
                return None;
            }
            // SAFETY: L is valid; stopping its collector keeps shared objects black.
            // The names every state creates (libraries, their functions, metamethods)
            // are shared first, so states created later intern them at one address.
            unsafe {
                ffi::lua_gc(L, ffi::LUA_GCSTOP, 0);
                ffi::luaL_openlibs(L);
                ffi::lua_settop(L, 0);
                skynet_lua54::skynet_lua_sharestrings(L as *mut c_void);
            }
            *slot = Some(Master {
                L,
                files: HashMap::new(),
            });
        }
        slot.as_mut()
    }

    /// Compiles with `load` (which pushes a function or an error message on the master
    /// stack) and publishes the result; on error, returns the status and message.
    unsafe fn compile(
        &mut self,
        load: impl FnOnce(*mut lua_State) -> c_int,
    ) -> Result<Root, (c_int, Vec<u8>)> {
        let L = self.L;
        // SAFETY: L is the master state, used under the lock (caller holds it).
        unsafe {
            let top = ffi::lua_gettop(L);
            let status = load(L);
            if status != ffi::LUA_OK {
                let mut n = 0usize;
                let p = ffi::lua_tolstring(L, -1, &mut n);
                let msg = if p.is_null() {
                    b"?".to_vec()
                } else {
                    std::slice::from_raw_parts(p as *const u8, n).to_vec()
                };
                ffi::lua_settop(L, top);
                return Err((status, msg));
            }
            let root = skynet_lua54::skynet_lua_shareproto(L as *mut c_void, -1);
            // Anchored for good: the collector is stopped, but this keeps the roots
            // reachable should anything ever run it.
            ffi::luaL_ref(L, ffi::LUA_REGISTRYINDEX);
            ffi::lua_settop(L, top);
            Ok(Root(root))
        }
    }
}

/// Sets up the master state (once): call before creating the first service state, so
/// that every state resolves common names to the shared strings.
pub fn prepare() {
    let mut slot = MASTER.lock();
    let _ = Master::get(&mut slot);
}

/// Bytes held by the master state: the compiled code every state shares.
pub fn shared_bytes() -> usize {
    match MASTER.lock().as_ref() {
        // SAFETY: the master state, under its lock.
        Some(m) => unsafe {
            let kb = ffi::lua_gc(m.L, ffi::LUA_GCCOUNT, 0) as usize;
            let b = ffi::lua_gc(m.L, ffi::LUA_GCCOUNTB, 0) as usize;
            kb * 1024 + b
        },
        None => 0,
    }
}

/// Pushes a closure over `root`, or the error message; returns the status.
unsafe fn push(L: *mut lua_State, r: Result<Root, (c_int, Vec<u8>)>) -> c_int {
    // SAFETY: L is a valid state (caller's contract); roots are immortal.
    unsafe {
        match r {
            Ok(root) => {
                skynet_lua54::skynet_lua_pushshared(L as *mut c_void, root.0);
                ffi::LUA_OK
            }
            Err((status, msg)) => {
                ffi::lua_pushlstring(L, msg.as_ptr() as *const c_char, msg.len());
                status
            }
        }
    }
}

/// Like `luaL_loadfilex`: pushes the chunk (or an error message) and returns the
/// status. Text-only `mode` bypasses the cache.
///
/// # Safety
/// `L` is a valid Lua state; `path` a NUL-terminated file name.
pub unsafe fn load_file(L: *mut lua_State, path: &CStr, mode: *const c_char) -> c_int {
    // SAFETY: the `# Safety` contract above covers every call below.
    unsafe {
        let text_only = !mode.is_null() && !CStr::from_ptr(mode).to_bytes().contains(&b'b');
        let key = path.to_bytes();
        let meta = std::str::from_utf8(key)
            .ok()
            .and_then(|p| std::fs::metadata(p).ok());
        let cache_mode = state_mode(L);
        let Some(meta) = meta.filter(|m| m.is_file() && !text_only && cache_mode != Mode::Off)
        else {
            return ffi::luaL_loadfilex(L, path.as_ptr(), mode);
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let r = {
            let mut slot = MASTER.lock();
            let Some(master) = Master::get(&mut slot) else {
                drop(slot);
                return ffi::luaL_loadfilex(L, path.as_ptr(), mode);
            };
            match master.files.get(key) {
                Some(e) if e.modified == modified && e.len == meta.len() => Ok(e.root),
                _ if cache_mode == Mode::Exist => {
                    drop(slot);
                    return ffi::luaL_loadfilex(L, path.as_ptr(), mode);
                }
                _ => {
                    let r = master.compile(|M| ffi::luaL_loadfilex(M, path.as_ptr(), mode));
                    if let Ok(root) = r {
                        master.files.insert(
                            key.to_vec(),
                            Entry {
                                modified,
                                len: meta.len(),
                                root,
                            },
                        );
                    }
                    r
                }
            }
        };
        push(L, r)
    }
}

/// Loads `code`, a file compiled into the binary, as chunk `chunkname` (e.g.
/// `@[embedded]/lualib/skynet.lua`), through the cache. Pushes the function or an
/// error message; returns the status.
///
/// # Safety
/// `L` is a valid Lua state.
pub unsafe fn load_static(L: *mut lua_State, chunkname: &CStr, code: &'static [u8]) -> c_int {
    // SAFETY: the `# Safety` contract above covers every call below.
    unsafe {
        let r = {
            let mut slot = MASTER.lock();
            let Some(master) = Master::get(&mut slot) else {
                drop(slot);
                return ffi::luaL_loadbufferx(
                    L,
                    code.as_ptr() as *const c_char,
                    code.len(),
                    chunkname.as_ptr(),
                    std::ptr::null(),
                );
            };
            let key = chunkname.to_bytes();
            match master.files.get(key) {
                Some(e) => Ok(e.root),
                None => {
                    let r = master.compile(|M| {
                        ffi::luaL_loadbufferx(
                            M,
                            code.as_ptr() as *const c_char,
                            code.len(),
                            chunkname.as_ptr(),
                            std::ptr::null(),
                        )
                    });
                    if let Ok(root) = r {
                        master.files.insert(
                            key.to_vec(),
                            Entry {
                                modified: SystemTime::UNIX_EPOCH,
                                len: code.len() as u64,
                                root,
                            },
                        );
                    }
                    r
                }
            }
        };
        push(L, r)
    }
}

/// `package.searchers[2]` replacement: search `package.path`, load through the cache.
///
/// # Safety
/// Called by Lua as a C function.
pub unsafe extern "C-unwind" fn lua_file_searcher(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::luaL_checkstring(L, 1);
        ffi::lua_getglobal(L, c"package".as_ptr());
        ffi::lua_getfield(L, -1, c"searchpath".as_ptr());
        ffi::lua_pushvalue(L, 1);
        ffi::lua_getfield(L, -3, c"path".as_ptr());
        if ffi::lua_type(L, -1) != ffi::LUA_TSTRING {
            ffi::luaL_error(L, c"'package.path' must be a string".as_ptr());
        }
        ffi::lua_call(L, 2, 2); // filename | nil, message
        if ffi::lua_isnil(L, -2) != 0 {
            return 1; // the "no file ..." message
        }
        ffi::lua_pop(L, 1);
        let filename = ffi::lua_tostring(L, -1);
        if load_file(L, CStr::from_ptr(filename), std::ptr::null()) != ffi::LUA_OK {
            ffi::luaL_error(
                L,
                c"error loading module '%s' from file '%s':\n\t%s".as_ptr(),
                ffi::lua_tostring(L, 1),
                filename,
                ffi::lua_tostring(L, -1),
            );
        }
        ffi::lua_insert(L, -2); // loader, filename
        2
    }
}

/// A state's use of the cache (upstream's `codecache.mode`): `ON` loads through it,
/// `EXIST` uses what is cached but adds nothing, `OFF` bypasses it (e.g. a service that
/// loads data files which change: each version would stay in memory for good).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    On = 0,
    Exist = 1,
    Off = 2,
}

const MODE_NAMES: [&CStr; 3] = [c"ON", c"EXIST", c"OFF"];
const MODE_KEY: &CStr = c"skynet.codecache.mode";

unsafe fn state_mode(L: *mut lua_State) -> Mode {
    // SAFETY: L is a valid state (caller's contract).
    unsafe {
        let m = if ffi::lua_getfield(L, ffi::LUA_REGISTRYINDEX, MODE_KEY.as_ptr())
            == ffi::LUA_TNUMBER
        {
            ffi::lua_tointegerx(L, -1, std::ptr::null_mut())
        } else {
            0
        };
        ffi::lua_pop(L, 1);
        match m {
            1 => Mode::Exist,
            2 => Mode::Off,
            _ => Mode::On,
        }
    }
}

/// `codecache.mode([name])`: returns the state's mode, setting it first when given.
unsafe extern "C-unwind" fn l_mode(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        if ffi::lua_isnoneornil(L, 1) == 0 {
            let name = ffi::luaL_checklstring(L, 1, std::ptr::null_mut());
            let name = CStr::from_ptr(name);
            let Some(i) = MODE_NAMES.iter().position(|m| *m == name) else {
                crate::lua::ffi::raise_string(
                    L,
                    format!(
                        "bad argument #1 to 'mode' (invalid option '{}': ON, EXIST or OFF)",
                        name.to_string_lossy()
                    ),
                );
            };
            ffi::lua_pushinteger(L, i as ffi::lua_Integer);
            ffi::lua_setfield(L, ffi::LUA_REGISTRYINDEX, MODE_KEY.as_ptr());
        }
        ffi::lua_pushstring(L, MODE_NAMES[state_mode(L) as usize].as_ptr());
        1
    }
}

/// `codecache.clear()`: forget every cached file, so the next load of each compiles it
/// again (compiled code still in use stays valid: roots are never freed).
unsafe extern "C-unwind" fn l_clear(_L: *mut lua_State) -> c_int {
    if let Some(master) = MASTER.lock().as_mut() {
        master.files.clear();
    }
    0
}

/// `codecache.shared(f)`: true when the Lua function `f` runs cached, shared code.
unsafe extern "C-unwind" fn l_shared(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let shared = skynet_lua54::skynet_lua_isshared(L as *mut c_void, 1);
        ffi::lua_pushboolean(L, shared);
        1
    }
}

/// `require "skynet.codecache"`: upstream's module (`clear`, `mode`, `loadfile`), plus
/// `shared`.
///
/// # Safety
/// `L` must be a valid Lua state of this runtime.
pub unsafe extern "C-unwind" fn luaopen_skynet_codecache(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::lua_createtable(L, 0, 4);
        ffi::lua_pushcfunction(L, l_clear);
        ffi::lua_setfield(L, -2, c"clear".as_ptr());
        ffi::lua_pushcfunction(L, l_mode);
        ffi::lua_setfield(L, -2, c"mode".as_ptr());
        ffi::lua_pushcfunction(L, l_shared);
        ffi::lua_setfield(L, -2, c"shared".as_ptr());
        ffi::lua_getglobal(L, c"loadfile".as_ptr());
        ffi::lua_setfield(L, -2, c"loadfile".as_ptr());
        1
    }
}
