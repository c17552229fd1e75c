#![allow(non_snake_case)]
//! `snlua`: the Lua service host (core.md §6).
//!
//! `init` only sends the launch parameters to the service itself; the first message
//! (guaranteed first: the queue is not scheduled during init) creates the Lua state and
//! runs the loader on a worker thread. After that each message is one `lua_pcall` of
//! the callback registered by `skynet.core.callback`, with a traceback handler.
//!
//! `SIGNAL 0` arms a count hook on the Lua thread now running so its next instruction
//! raises `signal 0` (breaking endless loops); `SIGNAL 1` logs the memory in use.

use crate::api::{self, ptype, Context, Message, NativeService};
use crate::lua::embedded;
use crate::lua::ffi::{push_str, to_bytes};
use crate::lua::host::{LuaService, Shared};
use mlua::ffi::{self, lua_State};
use std::ffi::{c_int, CStr, CString};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub struct Snlua {
    shared: Option<Arc<Shared>>,
    lua: Option<Box<LuaService>>,
    started: bool,
}

impl Default for Snlua {
    fn default() -> Self {
        Self::new()
    }
}

impl Snlua {
    pub fn new() -> Snlua {
        Snlua {
            shared: None,
            lua: None,
            started: false,
        }
    }
}

/// Message handler for `lua_pcall`: the error with a traceback.
unsafe extern "C-unwind" fn traceback(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let msg = ffi::lua_tostring(L, 1);
        if msg.is_null() {
            if ffi::luaL_callmeta(L, 1, c"__tostring".as_ptr()) != 0
                && ffi::lua_type(L, -1) == ffi::LUA_TSTRING
            {
                return 1;
            }
            ffi::lua_pushstring(L, c"(no error message)".as_ptr());
            return 1;
        }
        ffi::luaL_traceback(L, L, msg, 1);
        1
    }
}

unsafe extern "C-unwind" fn signal_hook(L: *mut lua_State, _ar: *mut ffi::lua_Debug) {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        ffi::lua_sethook(L, None, 0, 0);
        ffi::lua_pushstring(L, c"signal 0".as_ptr());
        ffi::lua_error(L);
    }
}

fn optenv(key: &str, default: &str) -> String {
    api::getenv(key).unwrap_or_else(|| default.to_string())
}

unsafe fn set_global(L: *mut lua_State, name: &CStr, value: Option<&str>) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match value {
            Some(v) => push_str(L, v.as_bytes()),
            None => ffi::lua_pushnil(L),
        }
        ffi::lua_setglobal(L, name.as_ptr());
    }
}

unsafe fn error_text(L: *mut lua_State) -> String {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match to_bytes(L, -1) {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => "(error object is not a string)".into(),
        }
    }
}

impl Snlua {
    /// Create the state and run the loader; Err carries the log line.
    fn start(&mut self, ctx: &Arc<Context>, args: &[u8]) -> Result<(), String> {
        let shared = self
            .shared
            .clone()
            .unwrap_or_else(|| Shared::new(ctx.handle()));
        let lua = LuaService::new(ctx, shared)?;
        let L = lua.L;
        self.lua = Some(lua);
        // SAFETY: L is the state just created, used by this thread only.
        unsafe {
            let service_path = format!(
                "{};{}service/?.lua",
                optenv("luaservice", "./service/?.lua"),
                embedded::VIRTUAL_ROOT
            );
            set_global(
                L,
                c"LUA_PATH",
                Some(&optenv("lua_path", "./lualib/?.lua;./lualib/?/init.lua")),
            );
            set_global(
                L,
                c"LUA_CPATH",
                Some(&optenv("lua_cpath", "./luaclib/?.so")),
            );
            set_global(L, c"LUA_SERVICE", Some(&service_path));
            set_global(L, c"LUA_PRELOAD", api::getenv("preload").as_deref());

            ffi::lua_pushcfunction(L, traceback);
            let loader = optenv("lualoader", "./lualib/loader.lua");
            let status = if std::path::Path::new(&loader).is_file() {
                let c = CString::new(loader.clone()).unwrap_or_default();
                crate::lua::codecache::load_file(L, &c, std::ptr::null())
            } else {
                let code = embedded::file("lualib/loader.lua").unwrap_or(b"error 'no loader'");
                let name = format!("@{}lualib/loader.lua", embedded::VIRTUAL_ROOT);
                let c = CString::new(name).unwrap_or_default();
                crate::lua::codecache::load_static(L, &c, code)
            };
            if status != ffi::LUA_OK {
                return Err(format!("Can't load {} : {}", loader, error_text(L)));
            }
            push_str(L, args);
            let r = ffi::lua_pcall(L, 1, 0, 1);
            if r != ffi::LUA_OK {
                return Err(format!("lua loader error : {}", error_text(L)));
            }
            ffi::lua_settop(L, 0);
            if ffi::lua_getfield(L, ffi::LUA_REGISTRYINDEX, c"memlimit".as_ptr())
                == ffi::LUA_TNUMBER
            {
                let limit = ffi::lua_tointeger(L, -1).max(0) as usize;
                if let Some(lua) = &self.lua {
                    lua.shared.alloc.limit.store(limit, Ordering::Relaxed);
                }
                api::log(
                    ctx.handle(),
                    &format!(
                        "Set memory limit to {:.2} M",
                        limit as f64 / (1024.0 * 1024.0)
                    ),
                );
                ffi::lua_pushnil(L);
                ffi::lua_setfield(L, ffi::LUA_REGISTRYINDEX, c"memlimit".as_ptr());
            }
            ffi::lua_settop(L, 0);
            ffi::lua_gc(L, ffi::LUA_GCRESTART, 0);
            // The message handler stays at index 1 of the main thread for every call.
            ffi::lua_pushcfunction(L, traceback);
        }
        Ok(())
    }

    /// One message through the Lua callback; returns whether the payload was kept.
    fn call(&mut self, ctx: &Arc<Context>, msg: &Message) -> bool {
        let Some(lua) = self.lua.as_ref() else {
            return false;
        };
        if lua.callback_ref == ffi::LUA_NOREF {
            return false;
        }
        let L = lua.L;
        // SAFETY: this worker holds the service; L is its main thread, whose stack
        // holds only the traceback handler (index 1).
        unsafe {
            ffi::lua_rawgeti(
                L,
                ffi::LUA_REGISTRYINDEX,
                lua.callback_ref as ffi::lua_Integer,
            );
            ffi::lua_pushinteger(L, msg.ty as ffi::lua_Integer);
            ffi::lua_pushlightuserdata(L, msg.data as *mut _);
            ffi::lua_pushinteger(L, msg.size as ffi::lua_Integer);
            ffi::lua_pushinteger(L, msg.session as ffi::lua_Integer);
            ffi::lua_pushinteger(L, msg.source as ffi::lua_Integer);
            lua.shared.active.store(L, Ordering::Relaxed);
            let r = ffi::lua_pcall(L, 5, 0, 1);
            lua.shared
                .active
                .store(std::ptr::null_mut(), Ordering::Relaxed);
            if r != ffi::LUA_OK {
                let me = ctx.handle();
                let line = match r {
                    ffi::LUA_ERRRUN => format!(
                        "lua call [{:x} to :{:x} : {} msgsz = {}] error : \x1b[31m{}\x1b[0m",
                        msg.source,
                        me,
                        msg.session,
                        msg.size,
                        error_text(L)
                    ),
                    ffi::LUA_ERRMEM => format!(
                        "lua memory error : [{:x} to :{:x} : {}]",
                        msg.source, me, msg.session
                    ),
                    _ => format!(
                        "lua error in error : [{:x} to :{:x} : {}]",
                        msg.source, me, msg.session
                    ),
                };
                api::log(me, &line);
            }
            ffi::lua_settop(L, 1);
        }
        self.lua.as_ref().map(|l| l.forward).unwrap_or(false)
    }
}

impl NativeService for Snlua {
    fn init(&mut self, ctx: &Arc<Context>, param: Option<&str>) -> Result<(), String> {
        let shared = Shared::new(ctx.handle());
        let for_signal = shared.clone();
        let handle = ctx.handle();
        api::set_signal_handler(ctx, move |sig| signal(&for_signal, handle, sig));
        self.shared = Some(shared);
        let args = param.unwrap_or("").as_bytes();
        // To itself, so it is the first message (the queue is not scheduled yet).
        // SAFETY: `args` is borrowed for the copy; no sending service.
        unsafe {
            api::send(
                None,
                ctx.handle(),
                ctx.handle(),
                ptype::TEXT as i32,
                0,
                args.as_ptr() as *mut u8,
                args.len(),
            )
        }
        .map(|_| ())
        .map_err(|_| "snlua: can't queue the start message".to_string())
    }

    fn dispatch(&mut self, ctx: &Arc<Context>, msg: &mut Message) -> bool {
        if self.started {
            return self.call(ctx, msg);
        }
        self.started = true;
        let args = msg.bytes().to_vec();
        if let Err(line) = self.start(ctx, &args) {
            api::log(ctx.handle(), &line);
            let err = b"ERROR";
            // SAFETY: `err` is borrowed for the copy; `ctx` is this service.
            let _ = unsafe {
                api::send_name(
                    Some(ctx),
                    ctx.handle(),
                    ".launcher",
                    ptype::TEXT as i32,
                    0,
                    err.as_ptr() as *mut u8,
                    err.len(),
                )
            };
            api::command(ctx, "EXIT", None);
        }
        false
    }
}

/// `SIGNAL` for a Lua service, from any thread.
fn signal(shared: &Shared, handle: u32, sig: i32) {
    api::log(handle, &format!("recv a signal {sig}"));
    match sig {
        0 => {
            let _guard = shared.close_lock.lock();
            let mut L = shared.active.load(Ordering::Acquire);
            if L.is_null() {
                L = shared.main.load(Ordering::Acquire);
            }
            if !L.is_null() {
                // SAFETY: lua_sethook may be called asynchronously; the state is kept
                // open while we hold close_lock.
                unsafe { ffi::lua_sethook(L, Some(signal_hook), ffi::LUA_MASKCOUNT, 1) };
            }
        }
        1 => api::log(
            handle,
            &format!("Current Memory {:.3}K", shared.memory() as f64 / 1024.0),
        ),
        _ => {}
    }
}
