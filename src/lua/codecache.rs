//! A process-wide bytecode cache for Lua source files.
//!
//! Upstream shares function prototypes between states with a patched Lua
//! (`skynet.codecache`); we run a stock Lua, so instead each file is parsed once per
//! process and its bytecode (`lua_dump`, debug info kept) is reused by every later
//! state: loading bytecode skips the lexer and parser, which dominated service start-up.
//! Entries are keyed by path and validated by size and modification time on every
//! load, so an edited file is picked up by the next service that loads it.

use mlua::ffi::{self, lua_State};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

struct Entry {
    modified: SystemTime,
    len: u64,
    bytecode: Arc<[u8]>,
}

fn cache() -> &'static Mutex<HashMap<Vec<u8>, Entry>> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<u8>, Entry>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

unsafe extern "C-unwind" fn collect(
    _L: *mut lua_State,
    p: *const c_void,
    sz: usize,
    ud: *mut c_void,
) -> c_int {
    // SAFETY: lua_dump's writer: `ud` is the `Vec<u8>` that `load_file` passes, alive for
    // the whole dump, and `p` points at `sz` bytes.
    unsafe {
        let out = &mut *(ud as *mut Vec<u8>);
        out.extend_from_slice(std::slice::from_raw_parts(p as *const u8, sz));
        0
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
        let Some(meta) = meta.filter(|m| m.is_file() && !text_only) else {
            return ffi::luaL_loadfilex(L, path.as_ptr(), mode);
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let hit = cache()
            .lock()
            .get(key)
            .filter(|e| e.modified == modified && e.len == meta.len())
            .map(|e| e.bytecode.clone());
        if let Some(code) = hit {
            let r = ffi::luaL_loadbufferx(
                L,
                code.as_ptr() as *const c_char,
                code.len(),
                path.as_ptr(),
                c"b".as_ptr(),
            );
            drop(code);
            return r;
        }
        let r = ffi::luaL_loadfilex(L, path.as_ptr(), mode);
        if r == ffi::LUA_OK {
            let mut out: Vec<u8> = Vec::new();
            if ffi::lua_dump(L, collect, &mut out as *mut Vec<u8> as *mut c_void, 0) == 0 {
                cache().lock().insert(
                    key.to_vec(),
                    Entry {
                        modified,
                        len: meta.len(),
                        bytecode: out.into(),
                    },
                );
            }
        }
        r
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
