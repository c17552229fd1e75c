//! `skynet-lua`: the sample's client interpreter. A plain Lua 5.4 interpreter with
//! `lsocket` and `client.socket` (`src/sample/`), `sproto.core` and `client.crypt` (also as `skynet.crypt`)
//! built in, and the framework's Lua embedded as a `require` fallback (as in the
//! server), so the sample's command-line client (`client/simpleclient.lua`) runs on a
//! fresh machine that has only cargo, with no skynet tree beside it.
//!
//! Usage (a subset of the stock `lua` command):
//!
//! ```text
//! skynet-lua [-e CHUNK]... [SCRIPT [ARGS...]]     (SCRIPT "-" = stdin)
//! ```
//!
//! Like `lua`: the script gets its arguments in the global `arg` (`arg[0]` = script,
//! `arg[-1]` = this program); an uncaught error prints `<program>: <message>` (plus a
//! traceback when the message is a string) to stderr and exits with status 1; an
//! error object with `__tostring` is printed through it without a traceback.
//! Without a script, the chunk is read from stdin.

#![allow(non_snake_case)]

use std::ffi::{c_int, CStr, CString};
use std::process::ExitCode;

use mlua::ffi::{self, lua_State};
use skynet::lua::ffi::push_str;
use skynet::lua::modules::{crypt, sproto};
use skynet::sample::{clientsocket, lsocket};

/// lua.c's message handler: string messages get a traceback; other objects are
/// shown through `__tostring` when they have one.
unsafe extern "C-unwind" fn msghandler(L: *mut lua_State) -> c_int {
    let msg = ffi::lua_tostring(L, 1);
    if msg.is_null() {
        if ffi::luaL_callmeta(L, 1, c"__tostring".as_ptr()) != 0
            && ffi::lua_type(L, -1) == ffi::LUA_TSTRING
        {
            return 1;
        }
        let tname = CStr::from_ptr(ffi::luaL_typename(L, 1)).to_string_lossy();
        let text = CString::new(format!("(error object is a {tname} value)")).unwrap_or_default();
        ffi::lua_pushstring(L, text.as_ptr());
        let m = ffi::lua_tostring(L, -1);
        ffi::luaL_traceback(L, L, m, 1);
        return 1;
    }
    ffi::luaL_traceback(L, L, msg, 1);
    1
}

/// Run the function on top of the stack with `nargs` arguments under `msghandler`;
/// on error print it and return false.
unsafe fn docall(L: *mut lua_State, nargs: c_int, progname: &str) -> bool {
    let base = ffi::lua_gettop(L) - nargs;
    ffi::lua_pushcfunction(L, msghandler);
    ffi::lua_insert(L, base);
    let status = ffi::lua_pcall(L, nargs, 0, base);
    ffi::lua_remove(L, base);
    if status != ffi::LUA_OK {
        report(L, progname);
        return false;
    }
    true
}

unsafe fn report(L: *mut lua_State, progname: &str) {
    let msg = ffi::lua_tostring(L, -1);
    let text = if msg.is_null() {
        "(error object is not a string)".to_string()
    } else {
        CStr::from_ptr(msg).to_string_lossy().into_owned()
    };
    eprintln!("{progname}: {text}");
    ffi::lua_settop(L, -2);
}

unsafe fn preload(L: *mut lua_State, name: &CStr, f: ffi::lua_CFunction) {
    ffi::lua_getglobal(L, c"package".as_ptr());
    ffi::lua_getfield(L, -1, c"preload".as_ptr());
    ffi::lua_pushcfunction(L, f);
    ffi::lua_setfield(L, -2, name.as_ptr());
    ffi::lua_settop(L, -3);
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let progname = argv.first().cloned().unwrap_or_else(|| "skynet-lua".into());
    let mut chunks = Vec::new();
    let mut i = 1;
    while i < argv.len() {
        match argv[i].as_str() {
            "-e" if i + 1 < argv.len() => {
                chunks.push(argv[i + 1].clone());
                i += 2;
            }
            "--" => {
                i += 1;
                break;
            }
            _ => break,
        }
    }
    let script = argv.get(i).cloned();
    // SAFETY: a fresh state used only by this thread; every call follows the C API.
    unsafe {
        let L = ffi::luaL_newstate();
        if L.is_null() {
            eprintln!("{progname}: cannot create state: not enough memory");
            return ExitCode::from(1);
        }
        ffi::luaL_openlibs(L);
        preload(L, c"lsocket", lsocket::luaopen_lsocket);
        // Upstream's demo client library (examples/client.lua).
        preload(L, c"client.socket", clientsocket::luaopen_client_socket);
        preload(L, c"sproto.core", sproto::luaopen_sproto_core);
        // Upstream's client library carries skynet.crypt under this name too.
        preload(L, c"client.crypt", crypt::luaopen_skynet_crypt);
        preload(L, c"skynet.crypt", crypt::luaopen_skynet_crypt);
        // The framework's Lua (sproto.lua, ...) as a fallback, like the server's.
        skynet::lua::host::append_embedded_searcher(L);
        // Users' C modules on package.cpath (issue 11): a clear error for a wrong Lua.
        skynet::lua::host::wrap_c_searchers(L);

        // arg table: script at 0, its arguments from 1, the interpreter before
        ffi::lua_createtable(L, argv.len() as c_int, 2);
        let zero = script.as_ref().map(|_| i).unwrap_or(argv.len());
        for (k, a) in argv.iter().enumerate() {
            push_str(L, a);
            ffi::lua_rawseti(L, -2, k as ffi::lua_Integer - zero as ffi::lua_Integer);
        }
        ffi::lua_setglobal(L, c"arg".as_ptr());

        let mut ok = true;
        for chunk in &chunks {
            let code = CString::new(chunk.as_str()).unwrap_or_default();
            if ffi::luaL_loadbufferx(
                L,
                code.as_ptr(),
                chunk.len(),
                c"=(command line)".as_ptr(),
                std::ptr::null(),
            ) != ffi::LUA_OK
            {
                report(L, &progname);
                ok = false;
                break;
            }
            if !docall(L, 0, &progname) {
                ok = false;
                break;
            }
        }
        if ok && (script.is_some() || chunks.is_empty()) {
            let path = script.clone().filter(|s| s != "-");
            let cpath = path
                .as_ref()
                .map(|p| CString::new(p.as_str()).unwrap_or_default());
            let status = ffi::luaL_loadfilex(
                L,
                cpath
                    .as_ref()
                    .map(|c| c.as_ptr())
                    .unwrap_or(std::ptr::null()),
                std::ptr::null(),
            );
            if status != ffi::LUA_OK {
                report(L, &progname);
                ok = false;
            } else {
                let args = if script.is_some() {
                    &argv[i + 1..]
                } else {
                    &argv[argv.len()..]
                };
                for a in args {
                    push_str(L, a);
                }
                ok = docall(L, args.len() as c_int, &progname);
            }
        }
        ffi::lua_close(L);
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}
