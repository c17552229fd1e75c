//! The shared-prototype patch on its own: code compiled once in a master state runs in
//! other states (on other threads, through their collectors), and strings compare
//! alike whichever state made them.

use skynet_lua54::{skynet_lua_isshared, skynet_lua_pushshared, skynet_lua_shareproto, LuaState};
use std::ffi::{c_char, c_int, c_void, CStr, CString};

type L = *mut LuaState;

extern "C-unwind" {
    fn luaL_newstate() -> L;
    fn luaL_openlibs(l: L);
    fn luaL_loadstring(l: L, s: *const c_char) -> c_int;
    fn lua_pcallk(
        l: L,
        nargs: c_int,
        nres: c_int,
        errf: c_int,
        ctx: isize,
        k: *const c_void,
    ) -> c_int;
    fn lua_gc(l: L, what: c_int, ...) -> c_int;
    fn lua_close(l: L);
    fn lua_settop(l: L, idx: c_int);
    fn lua_tolstring(l: L, idx: c_int, len: *mut usize) -> *const c_char;
    fn lua_setglobal(l: L, name: *const c_char);
    fn lua_getglobal(l: L, name: *const c_char) -> c_int;
    fn lua_pushstring(l: L, s: *const c_char) -> *const c_char;
}

const LUA_GCSTOP: c_int = 0;
const LUA_GCCOLLECT: c_int = 2;

struct Root(*const c_void);
unsafe impl Send for Root {}
unsafe impl Sync for Root {}

/// The shared-string set takes one writer at a time (the runtime's master state is
/// behind a lock); these tests run in parallel, so their masters take turns.
static MASTER_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Compiles `src` in a fresh master state (collector stopped) and shares it.
unsafe fn master_compile(src: &str) -> Root {
    let _one_writer = MASTER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    unsafe {
        let m = luaL_newstate();
        lua_gc(m, LUA_GCSTOP, 0);
        luaL_openlibs(m);
        let c = CString::new(src).unwrap();
        assert_eq!(luaL_loadstring(m, c.as_ptr()), 0);
        let root = skynet_lua_shareproto(m, -1);
        assert!(!root.is_null());
        // the master stays alive for the process: leak it on purpose
        Root(root)
    }
}

unsafe fn run(l: L, what: &str) -> String {
    unsafe {
        let r = lua_pcallk(l, 0, 1, 0, 0, std::ptr::null());
        let s = lua_tolstring(l, -1, std::ptr::null_mut());
        let out = if s.is_null() {
            String::from("(nil)")
        } else {
            CStr::from_ptr(s).to_string_lossy().into_owned()
        };
        lua_settop(l, 0);
        assert_eq!(r, 0, "{what}: {out}");
        out
    }
}

const MODULE: &str = r#"
local M = {}
function M.make(n)
    local t = { alpha = n, ["a key that is longer than forty characters, so a long one"] = n }
    t.list = {}
    for i = 1, n do t.list[i] = { name = "item" .. i, alpha = i } end
    return t
end
function M.check(t, key, long)
    assert(t.alpha == t[key], "shared constant vs state string")
    assert(t[long] == t.alpha, "long key")
    local u = {}
    u[key] = 1
    assert(u.alpha == 1, "state key, shared lookup")
    assert(rawequal(key, "alpha") and key == "alpha", "equality")
    local ok = pcall(next, t, key)
    assert(ok, "next from a state string")
    return true
end
return M
"#;

#[test]
fn shared_code_runs_in_other_states_and_threads() {
    // SAFETY: each state is used by one thread; the root is immutable and immortal.
    unsafe {
        let root = master_compile(MODULE);
        let root = &root;
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    let l = luaL_newstate();
                    luaL_openlibs(l);
                    skynet_lua_pushshared(l, root.0);
                    assert_eq!(skynet_lua_isshared(l, -1), 1);
                    let c = CString::new("M").unwrap();
                    lua_pcallk(l, 0, 1, 0, 0, std::ptr::null());
                    lua_setglobal(l, c.as_ptr());
                    for round in 0..200 {
                        let code = CString::new(format!(
                            "local key = ('al'):rep(1) .. 'pha'
                             local long = ('a key that is longer than forty characters, '):rep(1) .. 'so a long one'
                             local t = M.make({n})
                             M.check(t, key, long)
                             collectgarbage()
                             return tostring(#t.list) .. ' ' .. t.list[1].name",
                            n = 50 + round % 7 + t
                        ))
                        .unwrap();
                        assert_eq!(luaL_loadstring(l, code.as_ptr()), 0);
                        let out = run(l, "round");
                        assert_eq!(out, format!("{} item1", 50 + round % 7 + t));
                        lua_gc(l, LUA_GCCOLLECT, 0);
                    }
                    lua_getglobal(l, c"M".as_ptr());
                    lua_settop(l, 0);
                    lua_close(l);
                });
            }
        });
    }
}

#[test]
fn closing_a_state_leaves_shared_code_intact() {
    // SAFETY: single-threaded use of each state.
    unsafe {
        let root = master_compile("return function(x) return 'v' .. x end");
        for i in 0..50 {
            let l = luaL_newstate();
            luaL_openlibs(l);
            skynet_lua_pushshared(l, root.0);
            lua_setglobal(l, c"mk".as_ptr());
            let code = CString::new(format!("local f = mk() return f({i})")).unwrap();
            assert_eq!(luaL_loadstring(l, code.as_ptr()), 0);
            assert_eq!(run(l, "call"), format!("v{i}"));
            lua_gc(l, LUA_GCCOLLECT, 0);
            lua_close(l);
        }
    }
}

#[test]
fn c_strings_resolve_to_shared_strings_and_never_to_stale_ones() {
    // SAFETY: single-threaded use of each state; buf outlives every push.
    unsafe {
        // "sharedname" becomes a shared constant of the master's code.
        let _root = master_compile("return 'sharedname'");
        let mut buf = *b"sharedname\0";
        let first = {
            let l = luaL_newstate();
            let p = lua_pushstring(l, buf.as_ptr() as *const c_char);
            assert_eq!(CStr::from_ptr(p).to_bytes(), b"sharedname");
            // a shared string: it lives outside this state, so it survives its close
            lua_close(l);
            p
        };
        let l = luaL_newstate();
        // The same address and text: the very same (shared) string.
        let p = lua_pushstring(l, buf.as_ptr() as *const c_char);
        assert_eq!(
            p, first,
            "a C string known to be shared resolves to the shared copy"
        );
        // The same address now holding other text: that text, not the remembered one.
        buf[..6].copy_from_slice(b"SHARED");
        let p = lua_pushstring(l, buf.as_ptr() as *const c_char);
        assert_eq!(CStr::from_ptr(p).to_bytes(), b"SHAREDname");
        buf[..6].copy_from_slice(b"shared");
        let p = lua_pushstring(l, buf.as_ptr() as *const c_char);
        assert_eq!(p, first);
        lua_close(l);
    }
}
