//! `skynet.stm`: a shared, versioned message object (contract: services.md "stm").
//!
//! One service owns the *writer* and replaces the object's bytes (a packed message)
//! with each update; readers in any service hold the object and, when called, see the
//! newest version, or learn that nothing changed since their last look. An update is
//! not a message: readers poll. Each version is immutable and reference counted
//! (`Arc`), so a reader keeps the version it last decoded alive while the writer moves
//! on, and the bytes of a version are freed exactly once, by whoever drops it last.
//!
//! Functions (upstream's set): `new(msg, sz)` or `new(string)` -> writer; `copy(writer)`
//! -> a lightuserdata *copy token* to send to another service; `newcopy(token)` ->
//! reader (adopts the token: one token, one reader). A writer is called to update:
//! `writer(msg, sz)` or `writer(string)`. A reader is called to read:
//! `reader(f [, ud])` -> `false` when the version is the one it saw last (or the writer
//! is gone), else `true, f(msg, sz, ud)...` (`msg` stays valid until the next read or
//! the reader's collection). Ours only: `live()` -> objects, versions, tokens not yet
//! adopted (tests and leak checks).
//!
//! Differences from upstream, all on misuse only: a token is checked (adopting an
//! unknown or already adopted token is an error instead of a double release); `copy`
//! and the calls check their userdata type; calling a reader from its own callback is
//! an error (upstream would free the bytes the outer callback is reading); a message is
//! a lightuserdata payload or a string (upstream also took a full userdata's block).
//!
//! # Invariants
//!
//! * [`Object::current`] is only touched under its mutex, for a pointer swap or an
//!   `Arc` clone; bytes are freed outside it (dropping the last `Arc<Version>`).
//! * Writer and reader userdata hold `Arc`s as raw pointers (`Arc::into_raw`), taken
//!   back exactly once by `__gc` (the field is nulled; a use after that is an error).
//! * Lua errors are `longjmp`s: no frame holds a value with a destructor (lock guards,
//!   `Arc`s) when a Lua API call that can raise runs. The reader's callback runs under
//!   `lua_pcall`, so its error is re-raised only after the reader's state is settled.

#![allow(non_snake_case)]
#![deny(unsafe_op_in_unsafe_fn)]

use crate::lua::ffi::raise;
use crate::message::{payload_alloc, payload_free};
use mlua::ffi::{self, lua_State};
use std::collections::HashMap;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

const WRITER: &CStr = c"skynet.stm.writer";
const READER: &CStr = c"skynet.stm.reader";

static OBJECTS: AtomicUsize = AtomicUsize::new(0);
static VERSIONS: AtomicUsize = AtomicUsize::new(0);

/// One version: a payload block, immutable once published.
struct Version {
    data: *mut u8,
    size: usize,
}

// SAFETY: the bytes are never written after the version is created and are freed once,
// by the drop of the last Arc; any thread may read them meanwhile.
unsafe impl Send for Version {}
// SAFETY: as above.
unsafe impl Sync for Version {}

impl Version {
    fn new(data: *mut u8, size: usize) -> Arc<Version> {
        VERSIONS.fetch_add(1, Ordering::Relaxed);
        Arc::new(Version { data, size })
    }
}

impl Drop for Version {
    fn drop(&mut self) {
        // SAFETY: the block belongs to this version alone.
        unsafe { payload_free(self.data) };
        VERSIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The shared object: its newest version, or `None` once the writer is gone.
struct Object {
    current: Mutex<Option<Arc<Version>>>,
}

impl Object {
    fn new(first: Arc<Version>) -> Arc<Object> {
        OBJECTS.fetch_add(1, Ordering::Relaxed);
        Arc::new(Object {
            current: Mutex::new(Some(first)),
        })
    }

    /// Installs `next` (or nothing) as the newest version; returns the replaced one, to
    /// be dropped by the caller outside the lock.
    fn replace(&self, next: Option<Arc<Version>>) -> Option<Arc<Version>> {
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *cur, next)
    }

    fn newest(&self) -> Option<Arc<Version>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        OBJECTS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Copy tokens not yet adopted by `newcopy`.
static TOKENS: LazyLock<Mutex<HashMap<usize, Arc<Object>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);

fn tokens() -> std::sync::MutexGuard<'static, HashMap<usize, Arc<Object>>> {
    TOKENS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Live objects, live versions, tokens not yet adopted.
pub fn live_counts() -> (usize, usize, usize) {
    (
        OBJECTS.load(Ordering::Relaxed),
        VERSIONS.load(Ordering::Relaxed),
        tokens().len(),
    )
}

/// A writer userdata.
#[repr(C)]
struct WriterBox {
    obj: *const Object,
}

/// A reader userdata.
#[repr(C)]
struct ReaderBox {
    obj: *const Object,
    /// The version handed to the last callback (null: none).
    last: *const Version,
    /// A callback is running.
    busy: bool,
}

// ---------------------------------------------------------------------------------------
// helpers

/// The message at `idx`: a lightuserdata payload (taken over, size at `idx + 1`) or a
/// string (copied). Raises before taking anything.
unsafe fn message_arg(L: *mut lua_State, idx: c_int) -> (*mut u8, usize) {
    // SAFETY: L is the running state.
    unsafe {
        if ffi::lua_type(L, idx) == ffi::LUA_TLIGHTUSERDATA {
            let n = ffi::luaL_checkinteger(L, idx + 1);
            let Ok(size) = usize::try_from(n) else {
                raise(L, "Invalid message size");
            };
            (ffi::lua_touserdata(L, idx) as *mut u8, size)
        } else {
            let mut len = 0usize;
            let s = ffi::luaL_checklstring(L, idx, &mut len) as *const u8;
            let p = payload_alloc(len);
            std::ptr::copy_nonoverlapping(s, p, len);
            (p, len)
        }
    }
}

unsafe fn writer_arg<'a>(L: *mut lua_State, idx: c_int) -> &'a mut WriterBox {
    // SAFETY: checkudata returns a block of our type or raises.
    unsafe { &mut *(ffi::luaL_checkudata(L, idx, WRITER.as_ptr()) as *mut WriterBox) }
}

unsafe fn reader_arg<'a>(L: *mut lua_State, idx: c_int) -> &'a mut ReaderBox {
    // SAFETY: checkudata returns a block of our type or raises.
    unsafe { &mut *(ffi::luaL_checkudata(L, idx, READER.as_ptr()) as *mut ReaderBox) }
}

/// The live object of a writer, or raises.
unsafe fn writer_object<'a>(L: *mut lua_State, w: &WriterBox) -> &'a Object {
    if w.obj.is_null() {
        // SAFETY: L is the running state.
        unsafe { raise(L, "stm writer already released") }
    }
    // SAFETY: a non-null obj is a strong reference owned by the writer.
    unsafe { &*w.obj }
}

// ---------------------------------------------------------------------------------------
// writer

/// `new(msg, sz)` / `new(string)` -> writer.
unsafe extern "C-unwind" fn l_new(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state. The userdata is made before the message is taken,
    // so nothing is owned while an allocation error can be raised.
    unsafe {
        let w = ffi::lua_newuserdatauv(L, std::mem::size_of::<WriterBox>(), 0) as *mut WriterBox;
        w.write(WriterBox {
            obj: std::ptr::null(),
        });
        ffi::luaL_setmetatable(L, WRITER.as_ptr());
        let (data, size) = message_arg(L, 1);
        (*w).obj = Arc::into_raw(Object::new(Version::new(data, size)));
    }
    1
}

/// `writer(msg, sz)` / `writer(string)`: publish a new version.
unsafe extern "C-unwind" fn l_update(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state; the message is taken only after the checks.
    unsafe {
        let w = writer_arg(L, 1);
        let obj = writer_object(L, w);
        let (data, size) = message_arg(L, 2);
        let old = obj.replace(Some(Version::new(data, size)));
        drop(old);
    }
    0
}

/// Writer `__gc`: the object has no newest version any more; readers keep what they
/// hold.
unsafe extern "C-unwind" fn l_writer_gc(L: *mut lua_State) -> c_int {
    // SAFETY: __gc is called with our userdata.
    unsafe {
        let w = &mut *(ffi::lua_touserdata(L, 1) as *mut WriterBox);
        if !w.obj.is_null() {
            let obj = Arc::from_raw(w.obj);
            w.obj = std::ptr::null();
            let old = obj.replace(None);
            drop(old);
            drop(obj);
        }
    }
    0
}

/// `copy(writer)` -> token: one more holder of the object, for one `newcopy`.
unsafe extern "C-unwind" fn l_copy(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state.
    unsafe {
        let w = writer_arg(L, 1);
        writer_object(L, w);
        Arc::increment_strong_count(w.obj);
        let obj = Arc::from_raw(w.obj);
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        tokens().insert(token, obj);
        ffi::lua_pushlightuserdata(L, token as *mut c_void);
    }
    1
}

// ---------------------------------------------------------------------------------------
// reader

/// `newcopy(token)` -> reader.
unsafe extern "C-unwind" fn l_newcopy(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state; the userdata exists before the token is taken.
    unsafe {
        let token = ffi::lua_touserdata(L, 1) as usize;
        let r = ffi::lua_newuserdatauv(L, std::mem::size_of::<ReaderBox>(), 0) as *mut ReaderBox;
        r.write(ReaderBox {
            obj: std::ptr::null(),
            last: std::ptr::null(),
            busy: false,
        });
        ffi::luaL_setmetatable(L, READER.as_ptr());
        let obj = tokens().remove(&token);
        match obj {
            Some(obj) => (*r).obj = Arc::into_raw(obj),
            None => raise(L, "Invalid stm copy (unknown, or already used by newcopy)"),
        }
    }
    1
}

/// What a read found.
enum Seen {
    /// Same version as last time, or nothing to read.
    Nothing,
    /// A newer version, now held as `last`.
    New(*const u8, usize),
}

/// Takes the newest version as the reader's `last`; drops the previous one.
fn advance(r: &mut ReaderBox) -> Seen {
    // SAFETY: obj is non-null (checked by the caller) and owned by the reader.
    let obj = unsafe { &*r.obj };
    let newest = obj.newest();
    let newest_ptr = newest.as_ref().map_or(std::ptr::null(), Arc::as_ptr);
    if newest_ptr == r.last {
        return Seen::Nothing;
    }
    let prev = std::mem::replace(&mut r.last, newest.map_or(std::ptr::null(), Arc::into_raw));
    if !prev.is_null() {
        // SAFETY: `last` held one strong reference, released once here.
        drop(unsafe { Arc::from_raw(prev) });
    }
    if r.last.is_null() {
        return Seen::Nothing;
    }
    // SAFETY: held by the reader until its next advance or collection.
    let v = unsafe { &*r.last };
    Seen::New(v.data, v.size)
}

/// `reader(f [, ud])` -> false | true, f(msg, sz, ud)...
unsafe extern "C-unwind" fn l_read(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state. `advance` runs with no Lua call in between; the
    // callback runs under pcall so `busy` is always cleared before an error propagates.
    unsafe {
        let r = reader_arg(L, 1);
        ffi::luaL_checktype(L, 2, ffi::LUA_TFUNCTION);
        if r.obj.is_null() {
            raise(L, "stm reader already released");
        }
        if r.busy {
            raise(L, "stm reader called from its own callback");
        }
        let (msg, size) = match advance(r) {
            Seen::Nothing => {
                ffi::lua_pushboolean(L, 0);
                return 1;
            }
            Seen::New(msg, size) => (msg, size),
        };
        ffi::lua_settop(L, 3);
        ffi::lua_pushboolean(L, 1);
        ffi::lua_pushvalue(L, 2);
        ffi::lua_pushlightuserdata(L, msg as *mut c_void);
        ffi::lua_pushinteger(L, size as ffi::lua_Integer);
        ffi::lua_pushvalue(L, 3);
        let r = r as *mut ReaderBox;
        (*r).busy = true;
        let status = ffi::lua_pcall(L, 3, ffi::LUA_MULTRET, 0);
        // The userdata is still on the stack (argument 1): r is valid.
        (*r).busy = false;
        if status != ffi::LUA_OK {
            ffi::lua_error(L);
        }
        ffi::lua_gettop(L) - 3
    }
}

/// Reader `__gc`: drop the last version seen and the object.
unsafe extern "C-unwind" fn l_reader_gc(L: *mut lua_State) -> c_int {
    // SAFETY: __gc is called with our userdata; each pointer is released once.
    unsafe {
        let r = &mut *(ffi::lua_touserdata(L, 1) as *mut ReaderBox);
        if !r.last.is_null() {
            drop(Arc::from_raw(r.last));
            r.last = std::ptr::null();
        }
        if !r.obj.is_null() {
            drop(Arc::from_raw(r.obj));
            r.obj = std::ptr::null();
        }
    }
    0
}

/// `live()` -> objects, versions, tokens not yet adopted (ours).
unsafe extern "C-unwind" fn l_live(L: *mut lua_State) -> c_int {
    let (objects, versions, tokens) = live_counts();
    // SAFETY: L is the running state.
    unsafe {
        ffi::lua_pushinteger(L, objects as ffi::lua_Integer);
        ffi::lua_pushinteger(L, versions as ffi::lua_Integer);
        ffi::lua_pushinteger(L, tokens as ffi::lua_Integer);
    }
    3
}

/// Creates (once per state) the metatable `name` with `__call` and `__gc`.
unsafe fn metatable(
    L: *mut lua_State,
    name: &CStr,
    call: ffi::lua_CFunction,
    gc: ffi::lua_CFunction,
) {
    // SAFETY: L is a valid state.
    unsafe {
        ffi::luaL_newmetatable(L, name.as_ptr());
        ffi::lua_pushcfunction(L, call);
        ffi::lua_setfield(L, -2, c"__call".as_ptr());
        ffi::lua_pushcfunction(L, gc);
        ffi::lua_setfield(L, -2, c"__gc".as_ptr());
        ffi::lua_pop(L, 1);
    }
}

/// `require "skynet.stm"`.
///
/// # Safety
/// `L` must be a valid Lua state.
pub unsafe extern "C-unwind" fn luaopen_skynet_stm(L: *mut lua_State) -> c_int {
    let fns: &[(&CStr, ffi::lua_CFunction)] = &[
        (c"new", l_new),
        (c"copy", l_copy),
        (c"newcopy", l_newcopy),
        (c"live", l_live),
    ];
    // SAFETY: L is a valid state (caller's contract).
    unsafe {
        metatable(L, WRITER, l_update, l_writer_gc);
        metatable(L, READER, l_read, l_reader_gc);
        ffi::lua_createtable(L, 0, fns.len() as c_int);
        for (name, f) in fns {
            ffi::lua_pushcfunction(L, *f);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
    }
    1
}
