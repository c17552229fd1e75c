//! Lua states for snlua services: creation with a memory-accounting allocator, the
//! native-module preload table, the embedded-framework fallback, and the per-service
//! record (`LuaService`) that native functions reach through an upvalue or the
//! registry key `skynet_context`.
//!
//! Native modules are found through `package.preload`'s `__index` over one static
//! table, so a service pays nothing for modules it never requires. Files on disk win
//! over the embedded framework: the embedded searcher runs after the standard ones, and
//! the embedded service pattern comes last in `LUA_SERVICE`.
//!
//! Users' own Lua 5.4 C modules load through the standard C searchers (the binaries
//! export the Lua C API, see build.rs and docs/C-MODULES.md); they run after
//! `package.preload`, so a preloaded native module wins over a `.so` of the same name.

// The crate denies `unsafe_op_in_unsafe_fn`; this file allows it for the
// embedded-framework searcher functions only (`find_embedded_module` to
// `install_embedded_fallback`), which are being reworked with the Lua tree's move and
// get explicit `unsafe` blocks after that lands. Everything else here has them.
#![allow(unsafe_op_in_unsafe_fn)]

use crate::api::Context;
use crate::lua::ffi::{push_str, raise, to_bytes};
use libmimalloc_sys as mi;
use mlua::ffi::{self, lua_State};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

/// 32 MiB: the first memory warning threshold.
pub(crate) const MEMORY_WARNING_REPORT: usize = 32 * 1024 * 1024;

/// Bytes held by all Lua states of the process.
pub(crate) static TOTAL_LUA_MEMORY: AtomicUsize = AtomicUsize::new(0);

/// Allocator bookkeeping of one Lua state.
pub(crate) struct AllocState {
    pub used: AtomicUsize,
    unreported: std::sync::atomic::AtomicIsize,
    pub limit: AtomicUsize,
    report: AtomicUsize,
    handle: u32,
}

/// Bytes not yet added to [`TOTAL_LUA_MEMORY`]: the global counter is shared by every
/// worker, so each state folds its changes in once they exceed this much.
const TOTAL_BATCH: isize = 16 * 1024;

unsafe extern "C" fn lua_alloc(
    ud: *mut c_void,
    ptr: *mut c_void,
    osize: usize,
    nsize: usize,
) -> *mut c_void {
    // SAFETY: `ud` is the state's `AllocState` (see `LuaService::new`), which outlives it.
    let st = unsafe { &*(ud as *const AllocState) };
    let old = if ptr.is_null() { 0 } else { osize };
    let used = st.used.load(Ordering::Relaxed);
    if nsize == 0 {
        // SAFETY: Lua frees a block this allocator returned (or null).
        unsafe { mi::mi_free(ptr) };
        st.account(used - old, -(old as isize));
        return std::ptr::null_mut();
    }
    let limit = st.limit.load(Ordering::Relaxed);
    if nsize > old && limit != 0 && used + nsize - old > limit {
        return std::ptr::null_mut();
    }
    // SAFETY: `ptr` is null or a block this allocator returned.
    let p = unsafe { mi::mi_realloc(ptr, nsize) };
    if p.is_null() {
        return p;
    }
    let now = used + nsize - old;
    st.account(now, nsize as isize - old as isize);
    let report = st.report.load(Ordering::Relaxed);
    if now > report {
        st.report.store(report * 2, Ordering::Relaxed);
        crate::api::log(
            st.handle,
            &format!("Memory warning {:.2} M", now as f64 / (1024.0 * 1024.0)),
        );
    }
    p
}

impl AllocState {
    pub(crate) fn new(handle: u32) -> AllocState {
        AllocState {
            used: AtomicUsize::new(0),
            unreported: std::sync::atomic::AtomicIsize::new(0),
            limit: AtomicUsize::new(0),
            report: AtomicUsize::new(MEMORY_WARNING_REPORT),
            handle,
        }
    }

    /// Take over the bytes `other` counted (a state made ahead of time, see
    /// `prestart`): they are already in the process total (`other` reports its pending
    /// part when dropped), so only this service's own count changes.
    fn adopt(&self, other: &AllocState) {
        self.used.store(
            self.used.load(Ordering::Relaxed) + other.used.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// Add what is not yet reported to the process total.
    fn flush(&self) {
        let pending = self.unreported.swap(0, Ordering::Relaxed);
        TOTAL_LUA_MEMORY.fetch_add(pending as usize, Ordering::Relaxed);
    }

    /// Record the new usage (single writer: the thread running the state).
    #[inline]
    fn account(&self, now: usize, delta: isize) {
        self.used.store(now, Ordering::Relaxed);
        let pending = self.unreported.load(Ordering::Relaxed) + delta;
        if pending.abs() >= TOTAL_BATCH {
            TOTAL_LUA_MEMORY.fetch_add(pending as usize, Ordering::Relaxed);
            self.unreported.store(0, Ordering::Relaxed);
        } else {
            self.unreported.store(pending, Ordering::Relaxed);
        }
    }
}

impl Drop for AllocState {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What a Lua service shares with other threads (the SIGNAL handler, `memory.info`).
pub(crate) struct Shared {
    /// The Lua thread now running in this service (null when idle).
    pub active: AtomicPtr<lua_State>,
    /// The main thread (null once closed).
    pub main: AtomicPtr<lua_State>,
    pub alloc: AllocState,
    /// Coroutines being profiled (`skynet.profile.start` without `stop`): while 0,
    /// the timing resume skips its table lookup.
    pub profiling: AtomicUsize,
    /// Held while another thread touches `main`/`active` and while the state closes.
    pub close_lock: parking_lot::Mutex<()>,
}

impl Shared {
    pub fn new(handle: u32) -> Arc<Shared> {
        Arc::new(Shared {
            active: AtomicPtr::new(std::ptr::null_mut()),
            main: AtomicPtr::new(std::ptr::null_mut()),
            alloc: AllocState::new(handle),
            profiling: AtomicUsize::new(0),
            close_lock: parking_lot::Mutex::new(()),
        })
    }

    pub fn memory(&self) -> usize {
        self.alloc.used.load(Ordering::Relaxed)
    }
}

/// A new state with everything a service needs that does not depend on the service:
/// the standard libraries, the preloads, the framework's searchers, GC stopped.
/// Null if Lua cannot allocate one.
///
/// # Safety
/// `alloc` outlives the state (or the state is moved to another counter with
/// `lua_setallocf` first).
pub(crate) unsafe fn blank_state(alloc: &AllocState) -> Option<*mut lua_State> {
    // The shared strings exist before any state: see codecache::prepare.
    static PREPARED: std::sync::Once = std::sync::Once::new();
    PREPARED.call_once(crate::lua::codecache::prepare);
    // SAFETY: the caller keeps `alloc` alive as long as the state uses it.
    let L = unsafe { ffi::lua_newstate(lua_alloc, alloc as *const AllocState as *mut c_void) };
    if L.is_null() {
        return None;
    }
    // SAFETY: `L` is the fresh state, used by this thread only.
    unsafe {
        // Generational mode is entered now, while the heap is empty: switching
        // later runs a full collection of everything the service has loaded
        // (~5% of a service's start-up). Then no GC at all until the loader is done.
        ffi::lua_gc(L, ffi::LUA_GCGEN, 0, 0);
        ffi::lua_gc(L, ffi::LUA_GCSTOP, 0);
        ffi::lua_pushboolean(L, 1);
        ffi::lua_setfield(L, ffi::LUA_REGISTRYINDEX, c"LUA_NOENV".as_ptr());
        // The globals and `package.loaded`, sized up front for what every service
        // puts there (~45 and ~12 names): grown one rehash at a time they cost
        // ~8% of a service's start-up.
        ffi::lua_createtable(L, 0, 64);
        ffi::lua_rawseti(L, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_GLOBALS);
        ffi::lua_createtable(L, 0, 32);
        ffi::lua_setfield(L, ffi::LUA_REGISTRYINDEX, c"_LOADED".as_ptr());
        ffi::luaL_openlibs(L);
        register_preloads(L);
        install_embedded_fallback(L);
    }
    Some(L)
}

/// A Lua service's state, boxed so its address is stable for lightuserdata upvalues.
pub(crate) struct LuaService {
    pub ctx: *const Context,
    pub handle: u32,
    pub L: *mut lua_State,
    pub shared: Arc<Shared>,
    /// Registry ref of the message callback (LUA_NOREF until `callback`).
    pub callback_ref: c_int,
    pub forward: bool,
}

const CONTEXT_KEY: &CStr = c"skynet_context";

impl LuaService {
    /// Create a Lua state for the service `ctx`: stdlibs, GC stopped, preloads.
    pub fn new(ctx: &Arc<Context>, shared: Arc<Shared>) -> Result<Box<LuaService>, String> {
        let L = match crate::lua::prestart::take() {
            // SAFETY: a blank state no one else holds; from now on it allocates through
            // this service's counter, which outlives it.
            Some(blank) => unsafe {
                let (L, alloc) = blank.into_parts();
                ffi::lua_setallocf(
                    L,
                    lua_alloc,
                    &shared.alloc as *const AllocState as *mut c_void,
                );
                shared.alloc.adopt(&alloc);
                L
            },
            // SAFETY: `shared` (and so the allocator state) outlives the Lua state.
            None => unsafe { blank_state(&shared.alloc) }.ok_or("lua_newstate failed")?,
        };
        shared.main.store(L, Ordering::Release);
        let mut svc = Box::new(LuaService {
            ctx: Arc::as_ptr(ctx),
            handle: ctx.handle(),
            L,
            shared,
            callback_ref: ffi::LUA_NOREF,
            forward: false,
        });
        // SAFETY: `L` is the fresh state, used by this thread only; the registry keeps a
        // pointer to the boxed `svc`, whose address is stable and which closes the state
        // before it goes away (Drop).
        unsafe {
            let p = &mut *svc as *mut LuaService as *mut c_void;
            ffi::lua_pushlightuserdata(L, p);
            ffi::lua_setfield(L, ffi::LUA_REGISTRYINDEX, CONTEXT_KEY.as_ptr());
            // After CONTEXT_KEY: the timing resume keeps the service as an upvalue
            // (without it, every resume looks the profiling tables up).
            crate::lua::modules::profile::install_globals(L);
        }
        Ok(svc)
    }

    /// The context this service belongs to.
    pub fn ctx(&self) -> &Context {
        // SAFETY: the context owns this service and outlives it.
        unsafe { &*self.ctx }
    }
}

// SAFETY: a LuaService moves between worker threads with its service, but only one
// thread runs it at a time (the scheduler's invariant); its Lua state has no affinity.
unsafe impl Send for LuaService {}

impl Drop for LuaService {
    fn drop(&mut self) {
        if !self.L.is_null() {
            let _guard = self.shared.close_lock.lock();
            self.shared
                .main
                .store(std::ptr::null_mut(), Ordering::Release);
            self.shared
                .active
                .store(std::ptr::null_mut(), Ordering::Release);
            // SAFETY: the state is ours and no longer running.
            unsafe { ffi::lua_close(self.L) };
            self.L = std::ptr::null_mut();
            // The state is gone: the process total must say so now, not when the
            // last reference to `shared` goes (senders' caches may hold it a while).
            self.shared.alloc.flush();
        }
    }
}

/// The `LuaService` of the state `L` (from the registry), or null.
///
/// # Safety
/// `L` must be a valid Lua state of this runtime.
pub(crate) unsafe fn lua_service(L: *mut lua_State) -> *mut LuaService {
    // SAFETY: `L` is valid (the contract); a field read and a pop.
    unsafe {
        ffi::lua_getfield(L, ffi::LUA_REGISTRYINDEX, CONTEXT_KEY.as_ptr());
        let p = ffi::lua_touserdata(L, -1) as *mut LuaService;
        ffi::lua_pop(L, 1);
        p
    }
}

/// The calling service's handle; raises "Init skynet context first" outside a service.
///
/// # Safety
/// `L` must be a valid Lua state of this runtime.
pub(crate) unsafe fn service_handle(L: *mut lua_State) -> u32 {
    // SAFETY: `L` is valid (the contract); a non-null registry entry is the state's own
    // `LuaService`, alive while the state runs.
    unsafe {
        let p = lua_service(L);
        if p.is_null() {
            raise(L, "Init skynet context first");
        }
        (*p).handle
    }
}

/// The native modules of the framework layer, by `require` name (the socket, sproto,
/// crypt and shared-state ones are in [`crate::lua::modules::EXTRA_PRELOADS`]).
const CORE_PRELOADS: &[(&CStr, ffi::lua_CFunction)] = &[
    (
        c"skynet.core",
        crate::lua::modules::core::luaopen_skynet_core,
    ),
    (
        c"skynet.profile",
        crate::lua::modules::profile::luaopen_skynet_profile,
    ),
    (
        c"profile",
        crate::lua::modules::profile::luaopen_skynet_profile,
    ),
    (
        c"skynet.memory",
        crate::lua::modules::memory::luaopen_skynet_memory,
    ),
    (
        c"memory",
        crate::lua::modules::memory::luaopen_skynet_memory,
    ),
    (
        c"skynet.codecache",
        crate::lua::codecache::luaopen_skynet_codecache,
    ),
];

/// The loader of native module `name`, if we have one.
fn native_loader(name: &[u8]) -> Option<ffi::lua_CFunction> {
    CORE_PRELOADS
        .iter()
        .chain(crate::lua::modules::EXTRA_PRELOADS)
        .find(|(n, _)| n.to_bytes() == name)
        .map(|(_, f)| *f)
}

/// `package.preload`'s `__index`: the native modules, found in a static table instead
/// of ~30 entries (names and slots) in every service's own preload table (~2 KB per
/// service). Lua's preload searcher reads through it, so natives still come first.
unsafe extern "C-unwind" fn preload_index(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this metamethod with (table, key) on a valid `L`.
    unsafe {
        match to_bytes(L, 2).and_then(native_loader) {
            Some(f) => {
                ffi::lua_pushcfunction(L, f);
                1
            }
            None => 0,
        }
    }
}

/// `package.preload`'s `__newindex`: assigning nil to a native name disables it (the
/// documented way to load a user's `.so` of the same name): a `false` entry, which
/// `require` skips.
unsafe extern "C-unwind" fn preload_newindex(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this metamethod with (table, key, value) on a valid `L`.
    unsafe {
        ffi::lua_settop(L, 3);
        if ffi::lua_isnil(L, 3) != 0 && to_bytes(L, 2).and_then(native_loader).is_some() {
            ffi::lua_pushboolean(L, 0);
            ffi::lua_replace(L, 3);
        }
        ffi::lua_rawset(L, 1);
        0
    }
}

/// Make the native modules visible through `package.preload` (see [`preload_index`]).
unsafe fn register_preloads(L: *mut lua_State) {
    // SAFETY: `L` is the fresh state being set up by `LuaService::new`.
    unsafe {
        ffi::luaL_getsubtable(L, ffi::LUA_REGISTRYINDEX, c"_PRELOAD".as_ptr());
        ffi::lua_createtable(L, 0, 2);
        ffi::lua_pushcfunction(L, preload_index);
        ffi::lua_setfield(L, -2, c"__index".as_ptr());
        ffi::lua_pushcfunction(L, preload_newindex);
        ffi::lua_setfield(L, -2, c"__newindex".as_ptr());
        ffi::lua_setmetatable(L, -2);
        ffi::lua_pop(L, 1);
    }
}

/// Find an embedded file for module `name`; pushes its chunk name when found.
unsafe fn find_embedded_module(L: *mut lua_State, name: &[u8]) -> Option<&'static [u8]> {
    let base = String::from_utf8_lossy(name).replace('.', "/");
    for candidate in [
        format!("lualib/{base}.lua"),
        format!("lualib/{base}/init.lua"),
        // 2016 module names (`socket`, `datacenter`, `gateserver`), as upstream keeps
        // them in lualib/compat10.
        format!("lualib/compat10/{base}.lua"),
    ] {
        if let Some(code) = crate::lua::embedded::file(&candidate) {
            let chunk = format!("@{}{}", crate::lua::embedded::VIRTUAL_ROOT, candidate);
            push_str(L, chunk.as_bytes());
            return Some(code);
        }
    }
    None
}

/// Find an embedded file by virtual path; pushes its chunk name when found.
unsafe fn find_embedded_path(L: *mut lua_State, path: &[u8]) -> Option<&'static [u8]> {
    let rel = path.strip_prefix(crate::lua::embedded::VIRTUAL_ROOT.as_bytes())?;
    let code = crate::lua::embedded::file(std::str::from_utf8(rel).ok()?)?;
    ffi::lua_pushstring(L, c"@".as_ptr());
    push_str(L, path);
    ffi::lua_concat(L, 2);
    Some(code)
}

/// Load `code` with the chunk name on top of the stack; leaves the function (or the
/// error message) in its place. Returns the lua_load status.
unsafe fn load_with_chunkname(
    L: *mut lua_State,
    code: &'static [u8],
    mode: *const c_char,
) -> c_int {
    let chunkname = ffi::lua_tostring(L, -1);
    // Embedded files are source text: shared through the code cache unless `mode`
    // refuses text (then the standard loader gives the standard error).
    if mode.is_null() || CStr::from_ptr(mode).to_bytes().contains(&b't') {
        let r = crate::lua::codecache::load_static(L, CStr::from_ptr(chunkname), code);
        ffi::lua_remove(L, -2);
        return r;
    }
    let r = ffi::luaL_loadbufferx(
        L,
        code.as_ptr() as *const c_char,
        code.len(),
        chunkname,
        mode,
    );
    ffi::lua_remove(L, -2);
    r
}

/// `package.searchers[#+1]`: modules from the embedded lualib.
unsafe extern "C-unwind" fn embedded_searcher(L: *mut lua_State) -> c_int {
    let Some(name) = to_bytes(L, 1) else { return 0 };
    match find_embedded_module(L, name) {
        Some(code) => {
            if load_with_chunkname(L, code, std::ptr::null()) != ffi::LUA_OK {
                ffi::lua_error(L);
            }
            ffi::lua_pushvalue(L, 1);
            2
        }
        None => {
            ffi::lua_pushstring(L, c"\n\tno embedded module '".as_ptr());
            ffi::lua_pushvalue(L, 1);
            ffi::lua_pushstring(L, c"'".as_ptr());
            ffi::lua_concat(L, 3);
            1
        }
    }
}

/// `loadfile` that also resolves `[embedded]/...` paths (used by `LUA_SERVICE`).
unsafe extern "C-unwind" fn loadfile_with_embedded(L: *mut lua_State) -> c_int {
    // Read the optional arguments before anything is pushed above them.
    let nargs = ffi::lua_gettop(L);
    let mode = if ffi::lua_type(L, 2) == ffi::LUA_TSTRING {
        ffi::lua_tostring(L, 2)
    } else {
        std::ptr::null()
    };
    let has_env = nargs >= 3;
    let status = match to_bytes(L, 1) {
        Some(path) if path.starts_with(crate::lua::embedded::VIRTUAL_ROOT.as_bytes()) => {
            match find_embedded_path(L, path) {
                Some(code) => load_with_chunkname(L, code, mode),
                None => {
                    ffi::lua_pushstring(L, c"cannot open ".as_ptr());
                    ffi::lua_pushvalue(L, 1);
                    ffi::lua_concat(L, 2);
                    ffi::LUA_ERRFILE
                }
            }
        }
        // A real file: through the bytecode cache.
        Some(_) => {
            crate::lua::codecache::load_file(L, CStr::from_ptr(ffi::lua_tostring(L, 1)), mode)
        }
        // No file name (stdin): the standard loadfile (upvalue 1).
        None => {
            ffi::lua_pushvalue(L, ffi::lua_upvalueindex(1));
            ffi::lua_insert(L, 1);
            ffi::lua_call(L, nargs, ffi::LUA_MULTRET);
            return ffi::lua_gettop(L);
        }
    };
    if status != ffi::LUA_OK {
        ffi::lua_pushnil(L);
        ffi::lua_insert(L, -2);
        return 2;
    }
    if has_env {
        ffi::lua_pushvalue(L, 3);
        if ffi::lua_setupvalue(L, -2, 1).is_null() {
            ffi::lua_pop(L, 1);
        }
    }
    1
}

/// Appended to a C-module load error caused by a missing Lua symbol.
const WRONG_LUA_HINT: &str =
    "\n\t(this program provides the Lua 5.4 C API: a missing lua_*/luaL_* \
symbol means the module was built for another Lua version; rebuild it against Lua 5.4 headers, \
see docs/C-MODULES.md)";

/// Whether `msg` is a dlopen failure on a Lua API symbol: "undefined symbol: lua_newuserdata".
fn missing_lua_symbol(msg: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"undefined symbol: lua";
    msg.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

/// `package.searchers[3]`/`[4]` (C modules): the standard searcher (upvalue 1), with a
/// hint added to its error when a module fails to load for lack of a Lua symbol, which
/// is how a module built for Lua 5.1/5.2/5.3 shows (`lua_newuserdata`,
/// `lua_getuservalue`, `luaL_register` are not in 5.4's API).
unsafe extern "C-unwind" fn c_searcher(L: *mut lua_State) -> c_int {
    ffi::lua_settop(L, 1);
    ffi::lua_pushvalue(L, ffi::lua_upvalueindex(1));
    ffi::lua_insert(L, 1);
    if ffi::lua_pcall(L, 1, ffi::LUA_MULTRET, 0) == ffi::LUA_OK {
        return ffi::lua_gettop(L);
    }
    if ffi::lua_type(L, -1) == ffi::LUA_TSTRING && to_bytes(L, -1).is_some_and(missing_lua_symbol) {
        push_str(L, WRONG_LUA_HINT.as_bytes());
        ffi::lua_concat(L, 2);
    }
    ffi::lua_error(L)
}

/// Wrap the standard C searchers (`package.searchers[3]` and `[4]`) in [`c_searcher`].
/// They still run after `package.preload` and the Lua searcher, so the runtime's native
/// modules (preloaded) win over a C module of the same name on `package.cpath`.
///
/// # Safety
/// `L` is a valid state with the `package` library open, used by this thread only.
pub unsafe fn wrap_c_searchers(L: *mut lua_State) {
    ffi::lua_getglobal(L, c"package".as_ptr());
    ffi::lua_getfield(L, -1, c"searchers".as_ptr());
    for i in 3..=4 {
        if ffi::lua_rawgeti(L, -1, i) == ffi::LUA_TFUNCTION {
            ffi::lua_pushcclosure(L, c_searcher, 1);
            ffi::lua_rawseti(L, -2, i);
        } else {
            ffi::lua_pop(L, 1);
        }
    }
    ffi::lua_pop(L, 2);
}

/// Append the embedded framework's `lualib` to `package.searchers`, for a state outside
/// the runtime (the sample's client interpreter, `skynet-lua`): `require "sproto"` then
/// works with no framework tree on disk. Files on `package.path` still win.
///
/// # Safety
/// `L` is a valid state with the `package` library open, used by this thread only.
pub unsafe fn append_embedded_searcher(L: *mut lua_State) {
    ffi::lua_getglobal(L, c"package".as_ptr());
    ffi::lua_getfield(L, -1, c"searchers".as_ptr());
    let n = ffi::lua_rawlen(L, -1);
    ffi::lua_pushcfunction(L, embedded_searcher);
    ffi::lua_rawseti(L, -2, n as ffi::lua_Integer + 1);
    ffi::lua_pop(L, 2);
}

unsafe fn install_embedded_fallback(L: *mut lua_State) {
    ffi::lua_getglobal(L, c"package".as_ptr());
    ffi::lua_getfield(L, -1, c"searchers".as_ptr());
    let n = ffi::lua_rawlen(L, -1);
    ffi::lua_pushcfunction(L, crate::lua::codecache::lua_file_searcher);
    ffi::lua_rawseti(L, -2, 2);
    ffi::lua_pushcfunction(L, embedded_searcher);
    ffi::lua_rawseti(L, -2, n as ffi::lua_Integer + 1);
    ffi::lua_pop(L, 2);
    wrap_c_searchers(L);
    ffi::lua_getglobal(L, c"loadfile".as_ptr());
    ffi::lua_pushcclosure(L, loadfile_with_embedded, 1);
    ffi::lua_setglobal(L, c"loadfile".as_ptr());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_lua_version_is_recognised_by_the_missing_symbol() {
        assert!(missing_lua_symbol(
            b"error loading module 'cjson' from file 'x/5.3/cjson.so':\n\tx/5.3/cjson.so: \
              undefined symbol: lua_newuserdata"
        ));
        assert!(missing_lua_symbol(b"m.so: undefined symbol: luaL_register"));
        assert!(!missing_lua_symbol(b"m.so: undefined symbol: deflateInit_"));
        assert!(!missing_lua_symbol(b"m.so: cannot open shared object file"));
    }
}
