//! `skynet.sharedata.core` and `skynet.sharetable.core`: read-only data built once into a
//! [`Doc`] (see `sharedoc.rs`) held in Rust and read by every service of the process.
//!
//! Two ways to read a doc:
//!
//! * **Pointers** (upstream's function set, which upstream's own `sharedata/corelib.lua`
//!   uses): a table of a doc travels as a light userdata (`new` returns the root;
//!   `index` returns nested tables the same way), reference counts are explicit
//!   (`incref`/`decref`/`getref`, `box` holds one until collected), `markdirty`/`isdirty`
//!   flag a replaced version, `needupdate`/`update` carry the next version on a box.
//! * **Proxies** (our `skynet.sharedata` and `skynet.sharetable`): `proxy(ptr)` returns
//!   an empty Lua table whose metatable reads the doc: `__index`, `__len`, `__pairs`
//!   (and `__newindex`, which refuses). Nested tables come back as proxies too, cached
//!   per parent, so `cfg.a == cfg.a`. `switch(proxy, ptr)` moves a root proxy and every
//!   proxy below it to another version in place.
//!
//! # Invariants
//!
//! * A proxy's state is a full userdata (`Node`) stored in the proxy under a private
//!   light-userdata key; the proxy has no other raw field, so every read and every
//!   write goes through the metamethods. The root node holds one counted reference to
//!   its doc; child nodes point at their root node. User values of a node: 1 the parent
//!   proxy (keeps the chain up to the root alive), 2 the key in the parent (for error
//!   texts), 3 the cache of child proxies by key.
//! * Every live child node either sits in its parent's cache and points into its
//!   root's current doc, or has a null table pointer (stale: it errors when read).
//!   `switch` keeps this true: it re-points every cached child by key in the new
//!   version, and drops from the cache (and marks stale, with its subtree) those whose
//!   key no longer holds a table. A child is cached in the same C call that creates it.
//! * Doc memory is never read across a Lua call that can run a GC step (and so a
//!   finalizer that could switch or release a proxy): objects are allocated first, then
//!   the node is read again and the doc consulted. Pushing a string copies it before
//!   Lua's GC step runs. `copy` holds a reference in a collectable guard while it works.
//! * Lua errors are `longjmp`s: no frame here holds a value with a destructor when a Lua
//!   call that can raise runs. The builder's state lives in a full userdata with a
//!   `__gc` that drops it, so an error while walking the source leaks nothing; only
//!   the final freeze (`Builder::finish`) owns Rust values, and it calls no Lua.
//! * No Rust panic reaches Lua: `sharedoc` is written panic-free (checked `get`s) and
//!   the freeze runs under `catch_unwind`.
//! * A light userdata argument is trusted to be a table pointer of a live doc when it
//!   carries the doc magic word (upstream trusts any light userdata): pointers only come
//!   from this module, and whoever passes one holds a reference (the host's, an
//!   `incref`, a box or a proxy).

#![allow(non_snake_case)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::ffi::{self, lua_State};

use super::sharedoc::{Begun, Builder, Doc, Key, Probe, Table, Value, MAX_DEPTH};

/// Private registry / proxy keys (their addresses are the keys).
static NODE_KEY: u8 = 0;
static PROXY_MT: u8 = 0;
static ROOT_MT: u8 = 0;
static CTRL_MT: u8 = 0;
static GUARD_MT: u8 = 0;
static MATRIX_MT: u8 = 0;
static BUILDER_MT: u8 = 0;

const NODE_MAGIC: u64 = 0x7368_6172_6564_6e64; // "sharednd"
const CTRL_MAGIC: u64 = 0x7368_6172_6564_6374; // "sharedct"
const GUARD_MAGIC: u64 = 0x7368_6172_6564_6764; // "sharedgd"
const MATRIX_MAGIC: u64 = 0x7368_6172_6564_6d78; // "sharedmx"

fn key(k: &'static u8) -> *const c_void {
    k as *const u8 as *const c_void
}

/// Raise a fixed message.
unsafe fn raise(L: *mut lua_State, msg: &CStr) -> ! {
    // SAFETY: L is valid; pushing a C string and raising.
    unsafe {
        ffi::lua_pushstring(L, msg.as_ptr());
        ffi::lua_error(L)
    }
}

/// Raise `fmt` formatted with one `%s` argument.
unsafe fn raise_s(L: *mut lua_State, fmt: &CStr, arg: *const c_char) -> ! {
    // SAFETY: L is valid; `fmt` has exactly one %s and `arg` is a C string.
    unsafe {
        ffi::lua_pushfstring(L, fmt.as_ptr(), arg);
        ffi::lua_error(L)
    }
}

/// Bytes of the string at `idx` (the caller checked it is a string).
unsafe fn str_at<'a>(L: *mut lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: a string value: no conversion, the bytes live as long as the value.
    unsafe {
        let p = ffi::lua_tolstring(L, idx, &mut len);
        if p.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(p as *const u8, len)
        }
    }
}

/// The value at `idx` as a key to look up; `None` when no key of a doc can equal it.
/// Floats with an integral value count as that integer, as table keys do.
unsafe fn probe<'a>(L: *mut lua_State, idx: c_int) -> Option<Probe<'a>> {
    // SAFETY: L valid, idx acceptable.
    unsafe {
        match ffi::lua_type(L, idx) {
            ffi::LUA_TNUMBER => {
                let mut isint = 0;
                let i = ffi::lua_tointegerx(L, idx, &mut isint);
                (isint != 0).then_some(Probe::Int(i))
            }
            ffi::LUA_TSTRING => Some(Probe::Str(str_at(L, idx))),
            _ => None,
        }
    }
}

unsafe fn push_bytes(L: *mut lua_State, s: &[u8]) {
    // SAFETY: lua_pushlstring copies the bytes before its GC step.
    unsafe { ffi::lua_pushlstring(L, s.as_ptr() as *const c_char, s.len()) };
}

/// Push a value; a table becomes its light userdata pointer.
unsafe fn push_value(L: *mut lua_State, doc: &Doc, v: Value) {
    // SAFETY: L valid with a free slot (callers ensure).
    unsafe {
        match v {
            Value::Nil => ffi::lua_pushnil(L),
            Value::Int(i) => ffi::lua_pushinteger(L, i),
            Value::Real(f) => ffi::lua_pushnumber(L, f),
            Value::Bool(b) => ffi::lua_pushboolean(L, b as c_int),
            Value::Str(s) => push_bytes(L, doc.str(s)),
            Value::Table(i) => match doc.table(i) {
                Some(t) => ffi::lua_pushlightuserdata(L, t as *const Table as *mut c_void),
                None => ffi::lua_pushnil(L),
            },
        }
    }
}

unsafe fn push_key(L: *mut lua_State, doc: &Doc, k: Key) {
    // SAFETY: as push_value.
    unsafe {
        match k {
            Key::Int(i) => ffi::lua_pushinteger(L, i),
            Key::Str(s) => push_bytes(L, doc.str(s)),
        }
    }
}

/// The doc table behind the light userdata at `idx`, or raises.
unsafe fn check_table<'a>(L: *mut lua_State, idx: c_int) -> &'a Table {
    // SAFETY: see the module invariants on light userdata.
    unsafe {
        if ffi::lua_type(L, idx) == ffi::LUA_TLIGHTUSERDATA {
            if let Some(t) = Table::from_ptr(ffi::lua_touserdata(L, idx) as *const Table) {
                return t;
            }
        }
        raise(L, c"Need a conf object")
    }
}

/// Push the metatable registered under `k`.
unsafe fn push_mt(L: *mut lua_State, k: &'static u8) {
    // SAFETY: registry access.
    unsafe { ffi::lua_rawgetp(L, ffi::LUA_REGISTRYINDEX, key(k)) };
}

/// Create (once per state) the metatable under `k` with the given fields.
unsafe fn ensure_mt(L: *mut lua_State, k: &'static u8, fields: &[(&CStr, ffi::lua_CFunction)]) {
    // SAFETY: registry access and table creation on a valid state.
    unsafe {
        if ffi::lua_rawgetp(L, ffi::LUA_REGISTRYINDEX, key(k)) == ffi::LUA_TTABLE {
            ffi::lua_pop(L, 1);
            return;
        }
        ffi::lua_pop(L, 1);
        ffi::lua_createtable(L, 0, fields.len() as c_int);
        for (name, f) in fields {
            ffi::lua_pushcfunction(L, *f);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
        ffi::lua_rawsetp(L, ffi::LUA_REGISTRYINDEX, key(k));
    }
}

// ---------------------------------------------------------------------------------------
// building

unsafe extern "C-unwind" fn builder_gc(L: *mut lua_State) -> c_int {
    // SAFETY: only set on builder userdata, whose memory holds a Builder written before
    // the metatable was set; replaced by an empty one so a second __gc is harmless.
    unsafe {
        let b = ffi::lua_touserdata(L, 1) as *mut Builder;
        if !b.is_null() {
            drop(std::mem::take(&mut *b));
        }
    }
    0
}

unsafe fn value_of(L: *mut lua_State, b: &mut Builder, idx: c_int, depth: usize) -> Value {
    // SAFETY: L valid, idx absolute and holding the value.
    unsafe {
        match ffi::lua_type(L, idx) {
            ffi::LUA_TNUMBER => {
                if ffi::lua_isinteger(L, idx) != 0 {
                    Value::Int(ffi::lua_tointeger(L, idx))
                } else {
                    Value::Real(ffi::lua_tonumber(L, idx))
                }
            }
            ffi::LUA_TSTRING => match b.intern(str_at(L, idx)) {
                Ok(s) => Value::Str(s),
                Err(e) => raise_s(L, c"can't share: %s", error_text(e)),
            },
            ffi::LUA_TBOOLEAN => Value::Bool(ffi::lua_toboolean(L, idx) != 0),
            ffi::LUA_TTABLE => Value::Table(walk_source(L, b, idx, depth + 1)),
            t => raise_s(
                L,
                c"can't share a value of type %s",
                ffi::lua_typename(L, t),
            ),
        }
    }
}

/// Adds the Lua table at `idx` (absolute) and everything below it; returns its index.
unsafe fn walk_source(L: *mut lua_State, b: &mut Builder, idx: c_int, depth: usize) -> u32 {
    // SAFETY: L valid; idx absolute and a table. Only `b` (a reference into the
    // builder userdata) is held across raising calls.
    unsafe {
        let id = ffi::lua_topointer(L, idx) as usize;
        let n = ffi::lua_rawlen(L, idx);
        let t = match b.begin(id, n, depth) {
            Ok(Begun::Done(i)) => return i,
            Ok(Begun::New(i)) => i,
            Err(e) => raise_s(L, c"can't share: %s", error_text(e)),
        };
        if ffi::lua_checkstack(L, 4) == 0 {
            raise(L, c"can't share: stack overflow");
        }
        ffi::lua_pushnil(L);
        while ffi::lua_next(L, idx) != 0 {
            let top = ffi::lua_gettop(L);
            match ffi::lua_type(L, top - 1) {
                ffi::LUA_TNUMBER => {
                    if ffi::lua_isinteger(L, top - 1) == 0 {
                        ffi::lua_pushfstring(
                            L,
                            c"can't share the non-integer key %f".as_ptr(),
                            ffi::lua_tonumber(L, top - 1),
                        );
                        ffi::lua_error(L);
                    }
                    let k = ffi::lua_tointeger(L, top - 1);
                    let v = value_of(L, b, top, depth);
                    if k >= 1 && (k as u64) <= n as u64 {
                        b.set_array(t, k as usize, v);
                    } else {
                        b.push(t, Key::Int(k), v);
                    }
                }
                ffi::LUA_TSTRING => {
                    let k = match b.intern(str_at(L, top - 1)) {
                        Ok(s) => s,
                        Err(e) => raise_s(L, c"can't share: %s", error_text(e)),
                    };
                    let v = value_of(L, b, top, depth);
                    b.push(t, Key::Str(k), v);
                }
                kt => raise_s(L, c"can't share a key of type %s", ffi::lua_typename(L, kt)),
            }
            ffi::lua_pop(L, 1);
        }
        b.end(id, t);
        t
    }
}

fn error_text(e: super::sharedoc::BuildError) -> *const c_char {
    match e {
        super::sharedoc::BuildError::Cycle => c"a table contains itself".as_ptr(),
        super::sharedoc::BuildError::TooDeep => c"tables nested too deep".as_ptr(),
        super::sharedoc::BuildError::TooLarge => c"data too large".as_ptr(),
    }
}

/// Builds a doc from the Lua table at `idx`. The doc has the host's hold only.
///
/// # Safety
/// `L` must be a valid state and `idx` a table.
pub unsafe fn build(L: *mut lua_State, idx: c_int) -> *const Doc {
    // SAFETY: see the module invariants; the builder lives in a userdata with __gc.
    unsafe {
        let idx = ffi::lua_absindex(L, idx);
        ffi::luaL_checkstack(L, 4, std::ptr::null());
        ensure_mt(L, &BUILDER_MT, &[(c"__gc", builder_gc)]);
        let ud = ffi::lua_newuserdatauv(L, std::mem::size_of::<Builder>(), 0) as *mut Builder;
        std::ptr::write(ud, Builder::new());
        push_mt(L, &BUILDER_MT);
        ffi::lua_setmetatable(L, -2);
        walk_source(L, &mut *ud, idx, 0);
        let b = std::mem::take(&mut *ud);
        let doc = catch_unwind(AssertUnwindSafe(move || b.finish()));
        ffi::lua_pop(L, 1);
        match doc {
            Ok(d) => d,
            Err(_) => raise(L, c"can't share: internal error"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// upstream's pointer API

unsafe extern "C-unwind" fn l_new(L: *mut lua_State) -> c_int {
    // SAFETY: argument checked; the doc pointer is handed to Lua (host's hold).
    unsafe {
        ffi::luaL_checktype(L, 1, ffi::LUA_TTABLE);
        let doc = build(L, 1);
        ffi::lua_pushlightuserdata(L, (*doc).root() as *mut c_void);
    }
    1
}

unsafe extern "C-unwind" fn l_delete(L: *mut lua_State) -> c_int {
    // SAFETY: the caller owns the host's hold (module invariants).
    unsafe {
        let t = check_table(L, 1);
        Doc::drop_host(t.doc_ptr());
    }
    0
}

unsafe extern "C-unwind" fn l_markdirty(L: *mut lua_State) -> c_int {
    // SAFETY: checked pointer.
    unsafe { check_table(L, 1).doc().mark_dirty() };
    0
}

unsafe extern "C-unwind" fn l_isdirty(L: *mut lua_State) -> c_int {
    // SAFETY: checked pointer.
    unsafe {
        let d = check_table(L, 1).doc().is_dirty();
        ffi::lua_pushboolean(L, d as c_int);
    }
    1
}

unsafe extern "C-unwind" fn l_getref(L: *mut lua_State) -> c_int {
    // SAFETY: checked pointer.
    unsafe {
        let n = check_table(L, 1).doc().refs();
        ffi::lua_pushinteger(L, n);
    }
    1
}

unsafe extern "C-unwind" fn l_incref(L: *mut lua_State) -> c_int {
    // SAFETY: checked pointer.
    unsafe {
        let n = check_table(L, 1).doc().retain();
        ffi::lua_pushinteger(L, n);
    }
    1
}

unsafe extern "C-unwind" fn l_decref(L: *mut lua_State) -> c_int {
    // SAFETY: the caller gives back a hold it owns (module invariants).
    unsafe {
        let doc = check_table(L, 1).doc_ptr();
        let n = Doc::release(doc);
        ffi::lua_pushinteger(L, n);
    }
    1
}

unsafe extern "C-unwind" fn l_index(L: *mut lua_State) -> c_int {
    // SAFETY: checked pointer; one push.
    unsafe {
        let t = check_table(L, 1);
        if ffi::lua_type(L, 2) == ffi::LUA_TNUMBER && ffi::lua_isinteger(L, 2) == 0 {
            let mut isint = 0;
            ffi::lua_tointegerx(L, 2, &mut isint);
            if isint == 0 {
                ffi::lua_pushfstring(L, c"Invalid key %f".as_ptr(), ffi::lua_tonumber(L, 2));
                ffi::lua_error(L);
            }
        }
        match probe(L, 2) {
            Some(p) => push_value(L, t.doc(), t.get(p)),
            None => ffi::lua_pushnil(L),
        }
    }
    1
}

unsafe extern "C-unwind" fn l_nextkey(L: *mut lua_State) -> c_int {
    // SAFETY: checked pointer; one push.
    unsafe {
        let t = check_table(L, 1);
        let after = if ffi::lua_isnoneornil(L, 2) != 0 {
            None
        } else {
            match probe(L, 2) {
                Some(p) => Some(p),
                None => return 0,
            }
        };
        match t.next_key(after) {
            Some(k) => {
                push_key(L, t.doc(), k);
                1
            }
            None => 0,
        }
    }
}

unsafe extern "C-unwind" fn l_len(L: *mut lua_State) -> c_int {
    // SAFETY: checked pointer.
    unsafe {
        let n = check_table(L, 1).array_len();
        ffi::lua_pushinteger(L, n as ffi::lua_Integer);
    }
    1
}

unsafe extern "C-unwind" fn l_hashlen(L: *mut lua_State) -> c_int {
    // SAFETY: checked pointer.
    unsafe {
        let n = check_table(L, 1).hash_len();
        ffi::lua_pushinteger(L, n as ffi::lua_Integer);
    }
    1
}

/// A box (upstream's `confctrl`): holds one reference to `root` while alive, and
/// carries the next version (`update`, kept alive by user value 1) for corelib.lua.
#[repr(C)]
struct Ctrl {
    magic: u64,
    root: *const Table,
    update: *const Table,
}

unsafe fn check_ctrl<'a>(L: *mut lua_State, idx: c_int) -> &'a mut Ctrl {
    // SAFETY: a full userdata of Ctrl's size with its magic word is one of ours.
    unsafe {
        if ffi::lua_type(L, idx) == ffi::LUA_TUSERDATA
            && ffi::lua_rawlen(L, idx) == std::mem::size_of::<Ctrl>()
        {
            let c = ffi::lua_touserdata(L, idx) as *mut Ctrl;
            if (*c).magic == CTRL_MAGIC {
                return &mut *c;
            }
        }
        raise(L, c"Need a sharedata box")
    }
}

unsafe extern "C-unwind" fn ctrl_gc(L: *mut lua_State) -> c_int {
    // SAFETY: only set on Ctrl userdata; the root hold is given back once.
    unsafe {
        let c = ffi::lua_touserdata(L, 1) as *mut Ctrl;
        if !c.is_null() && !(*c).root.is_null() {
            let doc = (*(*c).root).doc_ptr();
            (*c).root = std::ptr::null();
            (*c).update = std::ptr::null();
            Doc::release(doc);
        }
    }
    0
}

unsafe extern "C-unwind" fn l_box(L: *mut lua_State) -> c_int {
    // SAFETY: allocation first, then the hold is taken (no raising call after).
    unsafe {
        check_table(L, 1);
        let c = ffi::lua_newuserdatauv(L, std::mem::size_of::<Ctrl>(), 1) as *mut Ctrl;
        std::ptr::write(
            c,
            Ctrl {
                magic: CTRL_MAGIC,
                root: std::ptr::null(),
                update: std::ptr::null(),
            },
        );
        push_mt(L, &CTRL_MT);
        ffi::lua_setmetatable(L, -2);
        let t = check_table(L, 1);
        t.doc().retain();
        (*c).root = t;
    }
    1
}

unsafe extern "C-unwind" fn l_needupdate(L: *mut lua_State) -> c_int {
    // SAFETY: checked box.
    unsafe {
        let c = check_ctrl(L, 1);
        if c.update.is_null() {
            return 0;
        }
        ffi::lua_pushlightuserdata(L, c.update as *mut c_void);
        ffi::lua_getiuservalue(L, 1, 1);
    }
    2
}

unsafe extern "C-unwind" fn l_update(L: *mut lua_State) -> c_int {
    // SAFETY: arguments checked as upstream does.
    unsafe {
        ffi::luaL_checktype(L, 1, ffi::LUA_TUSERDATA);
        ffi::luaL_checktype(L, 2, ffi::LUA_TLIGHTUSERDATA);
        ffi::luaL_checktype(L, 3, ffi::LUA_TTABLE);
        let c = check_ctrl(L, 1) as *mut Ctrl;
        let n = check_table(L, 2) as *const Table;
        if (*c).root == n {
            raise(L, c"You should update a new object");
        }
        ffi::lua_settop(L, 3);
        ffi::lua_setiuservalue(L, 1, 1);
        (*c).update = n;
    }
    0
}

// ---------------------------------------------------------------------------------------
// proxies

#[repr(C)]
struct Node {
    magic: u64,
    /// The table this proxy reads; null when stale.
    tbl: *const Table,
    /// The root node (itself for a root).
    root: *mut Node,
    /// Root only: the counted hold on the current doc; null once released.
    doc: *const Doc,
}

/// Pushes the node userdata of the proxy at `idx` (nil when the value is not a proxy)
/// and returns the node, or null.
unsafe fn push_node(L: *mut lua_State, idx: c_int) -> *mut Node {
    // SAFETY: L valid with a free slot; a userdata under our private key with Node's
    // size and magic is a node (the key is a light userdata only this module creates).
    unsafe {
        if ffi::lua_type(L, idx) != ffi::LUA_TTABLE {
            ffi::lua_pushnil(L);
            return std::ptr::null_mut();
        }
        if ffi::lua_rawgetp(L, idx, key(&NODE_KEY)) == ffi::LUA_TUSERDATA
            && ffi::lua_rawlen(L, -1) == std::mem::size_of::<Node>()
        {
            let p = ffi::lua_touserdata(L, -1) as *mut Node;
            if (*p).magic == NODE_MAGIC {
                return p;
            }
        }
        std::ptr::null_mut()
    }
}

/// The node of the proxy at `idx`, or null when the value is not a proxy.
unsafe fn node_of(L: *mut lua_State, idx: c_int) -> *mut Node {
    // SAFETY: see push_node.
    unsafe {
        let n = push_node(L, idx);
        ffi::lua_pop(L, 1);
        n
    }
}

unsafe fn check_node(L: *mut lua_State, idx: c_int) -> *mut Node {
    // SAFETY: see node_of.
    unsafe {
        let n = node_of(L, idx);
        if n.is_null() {
            raise(L, c"not a shared data table");
        }
        n
    }
}

/// Pushes the path of the proxy at `idx` ("a.b.3"; "" for a root).
unsafe fn push_path(L: *mut lua_State, idx: c_int) {
    // SAFETY: walks user values of nodes; bounded by MAX_DEPTH + a margin.
    unsafe {
        let idx = ffi::lua_absindex(L, idx);
        ffi::luaL_checkstack(L, 8, std::ptr::null());
        let base = ffi::lua_gettop(L);
        ffi::lua_pushvalue(L, idx);
        let mut parts = 0;
        for _ in 0..MAX_DEPTH + 8 {
            // stack: ... [parts] proxy
            ffi::luaL_checkstack(L, 8, std::ptr::null());
            if ffi::lua_rawgetp(L, -1, key(&NODE_KEY)) != ffi::LUA_TUSERDATA {
                ffi::lua_pop(L, 1);
                break;
            }
            if ffi::lua_getiuservalue(L, -1, 1) != ffi::LUA_TTABLE {
                ffi::lua_pop(L, 2);
                break;
            }
            ffi::lua_getiuservalue(L, -2, 2);
            // ... proxy node parent key
            ffi::luaL_tolstring(L, -1, std::ptr::null_mut());
            ffi::lua_replace(L, -2);
            ffi::lua_insert(L, base + 1);
            parts += 1;
            if parts > 1 {
                ffi::lua_pushstring(L, c".".as_ptr());
                ffi::lua_insert(L, base + 2);
                parts += 1;
            }
            // ... parts proxy node parent
            ffi::lua_replace(L, -3);
            ffi::lua_pop(L, 1);
        }
        ffi::lua_settop(L, base + parts);
        if parts == 0 {
            ffi::lua_pushstring(L, c"".as_ptr());
        } else {
            ffi::lua_concat(L, parts);
        }
    }
}

/// The table the proxy at `idx` reads now, or raises (stale or released).
unsafe fn live_table<'a>(L: *mut lua_State, idx: c_int, n: *mut Node) -> &'a Table {
    // SAFETY: `n` is a node of the proxy at idx; its root node is kept alive by the
    // parent chain.
    unsafe {
        let root = (*n).root;
        if root.is_null() || (*root).doc.is_null() {
            raise(L, c"shared data released");
        }
        match Table::from_ptr((*n).tbl) {
            Some(t) => t,
            None => {
                push_path(L, idx);
                raise_s(
                    L,
                    c"The key [%s] doesn't exist after update",
                    ffi::lua_tostring(L, -1),
                )
            }
        }
    }
}

/// Pushes `proxy[key]` for the proxy at `p` and the key at `k` (both absolute): a
/// cached child, a new child proxy (cached), or a plain value.
unsafe fn index_at(L: *mut lua_State, p: c_int, k: c_int) -> c_int {
    // SAFETY: L valid; the result is left alone above the caller's stack.
    unsafe {
        let base = ffi::lua_gettop(L);
        index_at_inner(L, p, k);
        if ffi::lua_gettop(L) > base + 1 {
            ffi::lua_replace(L, base + 1);
            ffi::lua_settop(L, base + 1);
        }
        1
    }
}

unsafe fn index_at_inner(L: *mut lua_State, p: c_int, k: c_int) -> c_int {
    // SAFETY: see the module invariants; the doc is read only after the allocations.
    unsafe {
        ffi::luaL_checkstack(L, 8, std::ptr::null());
        let n = check_node(L, p);
        let t = live_table(L, p, n);
        let Some(pr) = probe(L, k) else {
            ffi::lua_pushnil(L);
            return 1;
        };
        let v = t.get(pr);
        if !matches!(v, Value::Table(_)) {
            push_value(L, t.doc(), v);
            return 1;
        }
        // a cached child? (the node's user value 3)
        push_node(L, p);
        let ud = ffi::lua_gettop(L);
        if ffi::lua_getiuservalue(L, ud, 3) != ffi::LUA_TTABLE {
            ffi::lua_pop(L, 1);
            ffi::lua_createtable(L, 0, 1);
            ffi::lua_pushvalue(L, -1);
            ffi::lua_setiuservalue(L, ud, 3);
        }
        let cache = ffi::lua_gettop(L);
        ffi::lua_pushvalue(L, k);
        if ffi::lua_rawget(L, cache) == ffi::LUA_TTABLE {
            return 1;
        }
        ffi::lua_pop(L, 1);
        // allocate the child first
        ffi::lua_createtable(L, 0, 1);
        let c = ffi::lua_gettop(L);
        let cn = ffi::lua_newuserdatauv(L, std::mem::size_of::<Node>(), 3) as *mut Node;
        std::ptr::write(
            cn,
            Node {
                magic: NODE_MAGIC,
                tbl: std::ptr::null(),
                root: std::ptr::null_mut(),
                doc: std::ptr::null(),
            },
        );
        ffi::lua_pushvalue(L, p);
        ffi::lua_setiuservalue(L, -2, 1);
        ffi::lua_pushvalue(L, k);
        ffi::lua_setiuservalue(L, -2, 2);
        ffi::lua_rawsetp(L, c, key(&NODE_KEY));
        push_mt(L, &PROXY_MT);
        ffi::lua_setmetatable(L, c);
        // then look again: a finalizer may have moved the parent meanwhile
        let n = check_node(L, p);
        let t = live_table(L, p, n);
        let Some(pr) = probe(L, k) else {
            ffi::lua_pushnil(L);
            return 1;
        };
        match t.get(pr) {
            Value::Table(i) => {
                let Some(ct) = t.doc().table(i) else {
                    ffi::lua_pushnil(L);
                    return 1;
                };
                (*cn).tbl = ct;
                (*cn).root = (*n).root;
                ffi::lua_pushvalue(L, k);
                ffi::lua_pushvalue(L, c);
                ffi::lua_rawset(L, cache);
                ffi::lua_pushvalue(L, c);
            }
            v => push_value(L, t.doc(), v),
        }
        1
    }
}

unsafe extern "C-unwind" fn p_index(L: *mut lua_State) -> c_int {
    // SAFETY: metamethod (proxy, key).
    unsafe { index_at(L, 1, 2) }
}

unsafe extern "C-unwind" fn p_newindex(L: *mut lua_State) -> c_int {
    // SAFETY: metamethod (proxy, key, value).
    unsafe {
        ffi::lua_settop(L, 2);
        push_path(L, 1);
        if ffi::lua_rawlen(L, -1) > 0 {
            ffi::lua_pushstring(L, c".".as_ptr());
            ffi::lua_concat(L, 2);
        }
        ffi::luaL_tolstring(L, 2, std::ptr::null_mut());
        ffi::lua_concat(L, 2);
        raise_s(
            L,
            c"Error newindex, the key [%s] (shared data is read-only)",
            ffi::lua_tostring(L, -1),
        )
    }
}

unsafe extern "C-unwind" fn p_len(L: *mut lua_State) -> c_int {
    // SAFETY: metamethod (proxy).
    unsafe {
        let n = check_node(L, 1);
        let len = live_table(L, 1, n).array_len();
        ffi::lua_pushinteger(L, len as ffi::lua_Integer);
    }
    1
}

unsafe extern "C-unwind" fn p_next(L: *mut lua_State) -> c_int {
    // SAFETY: (proxy, key): the key is pushed first, then the value looked up afresh.
    unsafe {
        ffi::lua_settop(L, 2);
        let n = check_node(L, 1);
        let t = live_table(L, 1, n);
        let after = if ffi::lua_isnil(L, 2) != 0 {
            None
        } else {
            match probe(L, 2) {
                Some(p) => Some(p),
                None => {
                    ffi::lua_pushnil(L);
                    return 1;
                }
            }
        };
        match t.next_key(after) {
            None => {
                ffi::lua_pushnil(L);
                1
            }
            Some(k) => {
                push_key(L, t.doc(), k);
                index_at(L, 1, 3);
                2
            }
        }
    }
}

unsafe extern "C-unwind" fn p_pairs(L: *mut lua_State) -> c_int {
    // SAFETY: metamethod (proxy).
    unsafe {
        check_node(L, 1);
        ffi::lua_pushcfunction(L, p_next);
        ffi::lua_pushvalue(L, 1);
        ffi::lua_pushnil(L);
    }
    3
}

unsafe extern "C-unwind" fn root_gc(L: *mut lua_State) -> c_int {
    // SAFETY: only set on root nodes; the hold is given back once.
    unsafe {
        let n = ffi::lua_touserdata(L, 1) as *mut Node;
        if !n.is_null() && !(*n).doc.is_null() {
            let d = (*n).doc;
            (*n).doc = std::ptr::null();
            (*n).tbl = std::ptr::null();
            Doc::release(d);
        }
    }
    0
}

/// Pushes a new root proxy reading the doc of the table pointer at `idx` (a root
/// table). With `adopt`, the proxy takes over a hold the caller already owns.
unsafe fn new_root(L: *mut lua_State, idx: c_int, adopt: bool) {
    // SAFETY: allocation first, then the hold (no raising call after it).
    unsafe {
        let idx = ffi::lua_absindex(L, idx);
        check_table(L, idx);
        ffi::luaL_checkstack(L, 4, std::ptr::null());
        ffi::lua_createtable(L, 0, 1);
        let p = ffi::lua_gettop(L);
        let n = ffi::lua_newuserdatauv(L, std::mem::size_of::<Node>(), 3) as *mut Node;
        std::ptr::write(
            n,
            Node {
                magic: NODE_MAGIC,
                tbl: std::ptr::null(),
                root: n,
                doc: std::ptr::null(),
            },
        );
        push_mt(L, &ROOT_MT);
        ffi::lua_setmetatable(L, -2);
        ffi::lua_rawsetp(L, p, key(&NODE_KEY));
        push_mt(L, &PROXY_MT);
        ffi::lua_setmetatable(L, p);
        let t = check_table(L, idx);
        let doc = t.doc();
        let root = doc.root();
        if !adopt {
            doc.retain();
        }
        (*n).doc = doc;
        (*n).tbl = root;
    }
}

unsafe extern "C-unwind" fn l_proxy(L: *mut lua_State) -> c_int {
    // SAFETY: see new_root.
    unsafe {
        let adopt = ffi::lua_toboolean(L, 2) != 0;
        new_root(L, 1, adopt);
    }
    1
}

/// Re-points the cached children of the node at `ud` (its user value 3) to `t` (None:
/// marks them stale). Calls nothing that raises or runs a GC step (stack space is
/// reserved by the caller: 8 slots per level).
unsafe fn walk_cache(L: *mut lua_State, ud: c_int, t: Option<&Table>, depth: usize) {
    // SAFETY: raw traversal of the node's cache table; clearing an existing field during
    // lua_next is allowed.
    unsafe {
        if depth > MAX_DEPTH + 2 {
            return;
        }
        if ffi::lua_getiuservalue(L, ud, 3) != ffi::LUA_TTABLE {
            ffi::lua_pop(L, 1);
            return;
        }
        let cache = ffi::lua_gettop(L);
        ffi::lua_pushnil(L);
        while ffi::lua_next(L, cache) != 0 {
            let top = ffi::lua_gettop(L);
            let cn = push_node(L, top);
            if !cn.is_null() {
                let nt = match (t, probe(L, top - 1)) {
                    (Some(t), Some(pr)) => match t.get(pr) {
                        Value::Table(i) => t.doc().table(i),
                        _ => None,
                    },
                    _ => None,
                };
                match nt {
                    Some(nt) => (*cn).tbl = nt,
                    None => {
                        (*cn).tbl = std::ptr::null();
                        ffi::lua_pushvalue(L, top - 1);
                        ffi::lua_pushnil(L);
                        ffi::lua_rawset(L, cache);
                    }
                }
                walk_cache(L, top + 1, nt, depth + 1);
            }
            ffi::lua_settop(L, top - 1);
        }
        ffi::lua_settop(L, cache - 1);
    }
}

unsafe extern "C-unwind" fn l_switch(L: *mut lua_State) -> c_int {
    // SAFETY: checks first; then no raising call until the old hold is given back.
    unsafe {
        let n = check_node(L, 1);
        if (*n).root != n {
            raise(L, c"switch needs a root proxy");
        }
        let t = check_table(L, 2);
        let doc = t.doc();
        if !std::ptr::eq(doc.root(), t) {
            raise(L, c"switch needs a root table");
        }
        let adopt = ffi::lua_toboolean(L, 3) != 0;
        ffi::luaL_checkstack(L, 8 * (MAX_DEPTH as c_int + 4), std::ptr::null());
        push_node(L, 1);
        let ud = ffi::lua_gettop(L);
        if !adopt {
            doc.retain();
        }
        let old = (*n).doc;
        (*n).doc = doc;
        (*n).tbl = t;
        walk_cache(L, ud, Some(t), 0);
        if !old.is_null() {
            Doc::release(old);
        }
    }
    0
}

unsafe extern "C-unwind" fn l_isproxy(L: *mut lua_State) -> c_int {
    // SAFETY: node_of checks.
    unsafe {
        let b = !node_of(L, 1).is_null();
        ffi::lua_pushboolean(L, b as c_int);
    }
    1
}

/// Light userdata of the root table of the version a proxy reads now.
unsafe extern "C-unwind" fn l_pointer(L: *mut lua_State) -> c_int {
    // SAFETY: checked node.
    unsafe {
        let n = check_node(L, 1);
        let t = live_table(L, 1, n);
        ffi::lua_pushlightuserdata(L, t as *const Table as *mut c_void);
    }
    1
}

// ---------------------------------------------------------------------------------------
// deep copy

#[repr(C)]
struct Guard {
    magic: u64,
    doc: *const Doc,
}

unsafe extern "C-unwind" fn guard_gc(L: *mut lua_State) -> c_int {
    // SAFETY: only set on Guard userdata; the hold is given back once.
    unsafe {
        let g = ffi::lua_touserdata(L, 1) as *mut Guard;
        if !g.is_null() && !(*g).doc.is_null() {
            let d = (*g).doc;
            (*g).doc = std::ptr::null();
            Doc::release(d);
        }
    }
    0
}

unsafe fn copy_table(L: *mut lua_State, t: &Table, depth: usize) {
    // SAFETY: the doc is held by the guard for the whole copy.
    unsafe {
        if depth > MAX_DEPTH + 2 {
            raise(L, c"shared data nested too deep");
        }
        ffi::luaL_checkstack(L, 4, std::ptr::null());
        let doc = t.doc();
        let n = t.array_len();
        ffi::lua_createtable(
            L,
            n.min(i32::MAX as usize) as c_int,
            t.hash_len().min(i32::MAX as usize) as c_int,
        );
        for i in 1..=n {
            match t.get_array(i) {
                Value::Nil => continue,
                Value::Table(j) => match doc.table(j) {
                    Some(c) => copy_table(L, c, depth + 1),
                    None => continue,
                },
                v => push_value(L, doc, v),
            }
            ffi::lua_rawseti(L, -2, i as ffi::lua_Integer);
        }
        for e in 0..t.hash_len() {
            let Some((k, v)) = t.entry(e) else { break };
            push_key(L, doc, k);
            match v {
                Value::Table(j) => match doc.table(j) {
                    Some(c) => copy_table(L, c, depth + 1),
                    None => ffi::lua_pushnil(L),
                },
                v => push_value(L, doc, v),
            }
            ffi::lua_rawset(L, -3);
        }
    }
}

/// `copy(obj, k1, k2, ...)`: a plain Lua copy of `obj[k1][k2]...` (`obj` a proxy or a
/// table pointer); a plain value is returned as is; nil when a key is missing.
unsafe extern "C-unwind" fn l_copy(L: *mut lua_State) -> c_int {
    // SAFETY: the guard is allocated before the doc is read; then a hold is taken.
    unsafe {
        let top = ffi::lua_gettop(L);
        ffi::luaL_checkstack(L, 4, std::ptr::null());
        let g = ffi::lua_newuserdatauv(L, std::mem::size_of::<Guard>(), 0) as *mut Guard;
        std::ptr::write(
            g,
            Guard {
                magic: GUARD_MAGIC,
                doc: std::ptr::null(),
            },
        );
        push_mt(L, &GUARD_MT);
        ffi::lua_setmetatable(L, -2);
        let mut t = if ffi::lua_type(L, 1) == ffi::LUA_TLIGHTUSERDATA {
            check_table(L, 1)
        } else {
            let n = check_node(L, 1);
            live_table(L, 1, n)
        };
        let doc = t.doc();
        doc.retain();
        (*g).doc = doc;
        for i in 2..=top {
            let v = match probe(L, i) {
                Some(p) => t.get(p),
                None => Value::Nil,
            };
            match v {
                Value::Table(j) => match doc.table(j) {
                    Some(c) => t = c,
                    None => {
                        ffi::lua_pushnil(L);
                        return 1;
                    }
                },
                v => {
                    push_value(L, doc, v);
                    (*g).doc = std::ptr::null();
                    Doc::release(doc);
                    return 1;
                }
            }
        }
        copy_table(L, t, 0);
        // give the hold back now rather than at the guard's collection
        (*g).doc = std::ptr::null();
        Doc::release(doc);
    }
    1
}

unsafe extern "C-unwind" fn l_stat(L: *mut lua_State) -> c_int {
    let (docs, bytes) = super::sharedoc::live();
    // SAFETY: two pushes.
    unsafe {
        ffi::lua_pushinteger(L, docs as ffi::lua_Integer);
        ffi::lua_pushinteger(L, bytes as ffi::lua_Integer);
    }
    2
}

unsafe fn ensure_all_mts(L: *mut lua_State) {
    // SAFETY: registry setup.
    unsafe {
        ensure_mt(
            L,
            &PROXY_MT,
            &[
                (c"__index", p_index),
                (c"__newindex", p_newindex),
                (c"__len", p_len),
                (c"__pairs", p_pairs),
            ],
        );
        ensure_mt(L, &ROOT_MT, &[(c"__gc", root_gc)]);
        ensure_mt(L, &CTRL_MT, &[(c"__gc", ctrl_gc)]);
        ensure_mt(L, &GUARD_MT, &[(c"__gc", guard_gc)]);
    }
}

unsafe fn new_lib(L: *mut lua_State, fns: &[(&CStr, ffi::lua_CFunction)]) {
    // SAFETY: table creation.
    unsafe {
        ffi::lua_createtable(L, 0, fns.len() as c_int);
        for (name, f) in fns {
            ffi::lua_pushcfunction(L, *f);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
    }
}

/// `require "skynet.sharedata.core"`.
///
/// # Safety
/// `L` must be a valid Lua state.
pub unsafe extern "C-unwind" fn luaopen_skynet_sharedata_core(L: *mut lua_State) -> c_int {
    // SAFETY: module setup.
    unsafe {
        ensure_all_mts(L);
        new_lib(
            L,
            &[
                // upstream's host side
                (c"new", l_new),
                (c"delete", l_delete),
                (c"markdirty", l_markdirty),
                (c"getref", l_getref),
                (c"incref", l_incref),
                (c"decref", l_decref),
                // upstream's reader side
                (c"box", l_box),
                (c"index", l_index),
                (c"nextkey", l_nextkey),
                (c"len", l_len),
                (c"hashlen", l_hashlen),
                (c"isdirty", l_isdirty),
                (c"needupdate", l_needupdate),
                (c"update", l_update),
                // proxies (ours)
                (c"proxy", l_proxy),
                (c"switch", l_switch),
                (c"isproxy", l_isproxy),
                (c"pointer", l_pointer),
                (c"copy", l_copy),
                (c"stat", l_stat),
            ],
        );
    }
    1
}

// ---------------------------------------------------------------------------------------
// skynet.sharetable.core

/// A data set loaded by `matrix`: the host's hold on a doc until `close`.
#[repr(C)]
struct Matrix {
    magic: u64,
    doc: *const Doc,
}

unsafe fn check_matrix<'a>(L: *mut lua_State, idx: c_int) -> &'a mut Matrix {
    // SAFETY: size and magic identify our userdata.
    unsafe {
        if ffi::lua_type(L, idx) == ffi::LUA_TUSERDATA
            && ffi::lua_rawlen(L, idx) == std::mem::size_of::<Matrix>()
        {
            let m = ffi::lua_touserdata(L, idx) as *mut Matrix;
            if (*m).magic == MATRIX_MAGIC {
                return &mut *m;
            }
        }
        raise(L, c"Need a sharetable matrix")
    }
}

unsafe extern "C-unwind" fn m_close(L: *mut lua_State) -> c_int {
    // SAFETY: the host's hold is dropped once.
    unsafe {
        let m = check_matrix(L, 1);
        if !m.doc.is_null() {
            let d = m.doc;
            m.doc = std::ptr::null();
            Doc::drop_host(d);
        }
    }
    0
}

unsafe extern "C-unwind" fn m_getptr(L: *mut lua_State) -> c_int {
    // SAFETY: the doc is live while the matrix holds it.
    unsafe {
        let m = check_matrix(L, 1);
        if m.doc.is_null() {
            return 0;
        }
        ffi::lua_pushlightuserdata(L, (*m.doc).root() as *mut c_void);
    }
    1
}

unsafe extern "C-unwind" fn m_size(L: *mut lua_State) -> c_int {
    // SAFETY: as m_getptr.
    unsafe {
        let m = check_matrix(L, 1);
        let n = if m.doc.is_null() { 0 } else { (*m.doc).bytes() };
        ffi::lua_pushinteger(L, n as ffi::lua_Integer);
    }
    1
}

/// Runs in the fresh state: (source, len, args...) -> light userdata of the doc.
unsafe extern "C-unwind" fn load_matrix(L: *mut lua_State) -> c_int {
    // SAFETY: runs under lua_pcall in a private state; the source string belongs to the
    // caller's state, which outlives this call, and is NUL-terminated (a Lua string).
    unsafe {
        ffi::luaL_openlibs(L);
        let src = ffi::lua_touserdata(L, 1) as *const c_char;
        let len = ffi::lua_tointeger(L, 2) as usize;
        let nargs = ffi::lua_gettop(L) - 2;
        let status = if len > 0 && *src == b'@' as c_char {
            ffi::luaL_loadfilex(L, src.add(1), std::ptr::null())
        } else {
            ffi::luaL_loadbufferx(L, src, len, src, std::ptr::null())
        };
        if status != ffi::LUA_OK {
            ffi::lua_error(L);
        }
        ffi::lua_insert(L, 3);
        ffi::lua_call(L, nargs, 1);
        if ffi::lua_type(L, 3) != ffi::LUA_TTABLE {
            raise_s(
                L,
                c"Not a table, it's a %s.",
                ffi::lua_typename(L, ffi::lua_type(L, 3)),
            );
        }
        let doc = build(L, 3);
        ffi::lua_pushlightuserdata(L, doc as *mut c_void);
    }
    1
}

/// `matrix(source, ...)`: loads a data set in a private Lua state (the standard
/// libraries only), as upstream: `source` is Lua code or `@filename`, called with
/// `...` (nil, booleans, numbers, strings, light userdata, light C functions); it must
/// return a table. Ours also accepts a table as `source` (built directly).
unsafe extern "C-unwind" fn l_matrix(L: *mut lua_State) -> c_int {
    // SAFETY: the private state is closed on every path before L raises.
    unsafe {
        let top = ffi::lua_gettop(L);
        let table_source = ffi::lua_type(L, 1) == ffi::LUA_TTABLE;
        let mut len = 0usize;
        let src = if table_source {
            std::ptr::null()
        } else {
            ffi::luaL_checklstring(L, 1, &mut len)
        };
        for i in 2..=top {
            let ok = match ffi::lua_type(L, i) {
                ffi::LUA_TNIL
                | ffi::LUA_TBOOLEAN
                | ffi::LUA_TNUMBER
                | ffi::LUA_TSTRING
                | ffi::LUA_TLIGHTUSERDATA => true,
                ffi::LUA_TFUNCTION => {
                    ffi::lua_iscfunction(L, i) != 0 && {
                        let up = ffi::lua_getupvalue(L, i, 1);
                        if !up.is_null() {
                            ffi::lua_pop(L, 1);
                        }
                        up.is_null()
                    }
                }
                _ => false,
            };
            if !ok {
                ffi::luaL_argerror(L, i, c"Type invalid".as_ptr());
            }
        }
        let m = ffi::lua_newuserdatauv(L, std::mem::size_of::<Matrix>(), 0) as *mut Matrix;
        std::ptr::write(
            m,
            Matrix {
                magic: MATRIX_MAGIC,
                doc: std::ptr::null(),
            },
        );
        push_mt(L, &MATRIX_MT);
        ffi::lua_setmetatable(L, -2);
        if table_source {
            (*m).doc = build(L, 1);
            return 1;
        }
        let L2 = ffi::luaL_newstate();
        if L2.is_null() {
            raise(L, c"luaL_newstate failed");
        }
        if ffi::lua_checkstack(L2, top + 4) == 0 {
            ffi::lua_close(L2);
            raise(L, c"Too many arguments");
        }
        ffi::lua_pushcfunction(L2, load_matrix);
        ffi::lua_pushlightuserdata(L2, src as *mut c_void);
        ffi::lua_pushinteger(L2, len as ffi::lua_Integer);
        for i in 2..=top {
            match ffi::lua_type(L, i) {
                ffi::LUA_TBOOLEAN => ffi::lua_pushboolean(L2, ffi::lua_toboolean(L, i)),
                ffi::LUA_TNUMBER => {
                    if ffi::lua_isinteger(L, i) != 0 {
                        ffi::lua_pushinteger(L2, ffi::lua_tointeger(L, i))
                    } else {
                        ffi::lua_pushnumber(L2, ffi::lua_tonumber(L, i))
                    }
                }
                ffi::LUA_TSTRING => push_bytes(L2, str_at(L, i)),
                ffi::LUA_TLIGHTUSERDATA => {
                    ffi::lua_pushlightuserdata(L2, ffi::lua_touserdata(L, i))
                }
                ffi::LUA_TFUNCTION => match ffi::lua_tocfunction(L, i) {
                    Some(f) => ffi::lua_pushcfunction(L2, f),
                    None => ffi::lua_pushnil(L2),
                },
                _ => ffi::lua_pushnil(L2),
            }
        }
        if ffi::lua_pcall(L2, top + 1, 1, 0) != ffi::LUA_OK {
            let mut buf = [0u8; 1024];
            let mut n = 0;
            let mut elen = 0usize;
            let e = ffi::lua_tolstring(L2, -1, &mut elen);
            if !e.is_null() {
                n = elen.min(buf.len());
                std::ptr::copy_nonoverlapping(e as *const u8, buf.as_mut_ptr(), n);
            }
            ffi::lua_close(L2);
            ffi::lua_pushlstring(L, buf.as_ptr() as *const c_char, n);
            ffi::lua_error(L);
        }
        let doc = ffi::lua_touserdata(L2, -1) as *const Doc;
        ffi::lua_close(L2);
        (*m).doc = doc;
    }
    1
}

unsafe extern "C-unwind" fn l_clone(L: *mut lua_State) -> c_int {
    // SAFETY: see new_root.
    unsafe { new_root(L, 1, false) };
    1
}

/// `stackvalues(co, t)`: copies the values on the stack of another coroutine into `t`
/// (1..n); returns n. The coroutine's stack is left as it was.
unsafe extern "C-unwind" fn l_stackvalues(L: *mut lua_State) -> c_int {
    // SAFETY: copies are moved, the originals stay on `co`.
    unsafe {
        let co = ffi::lua_tothread(L, 1);
        if co.is_null() {
            ffi::luaL_argerror(L, 1, c"thread expected".as_ptr());
        }
        let mut n = 0;
        if co != L {
            ffi::luaL_checktype(L, 2, ffi::LUA_TTABLE);
            n = ffi::lua_gettop(co);
            if n > 0 {
                ffi::luaL_checkstack(L, n + 1, std::ptr::null());
                if ffi::lua_checkstack(co, n) == 0 {
                    raise(L, c"stack overflow");
                }
                for i in 1..=n {
                    ffi::lua_pushvalue(co, i);
                }
                let top = ffi::lua_gettop(L);
                ffi::lua_xmove(co, L, n);
                for i in 1..=n {
                    ffi::lua_pushvalue(L, top + i);
                    ffi::lua_rawseti(L, 2, i as ffi::lua_Integer);
                }
                ffi::lua_settop(L, top);
            }
        }
        ffi::lua_pushinteger(L, n as ffi::lua_Integer);
    }
    1
}

/// `require "skynet.sharetable.core"`.
///
/// # Safety
/// `L` must be a valid Lua state.
pub unsafe extern "C-unwind" fn luaopen_skynet_sharetable_core(L: *mut lua_State) -> c_int {
    // SAFETY: module setup.
    unsafe {
        ensure_all_mts(L);
        ensure_mt(
            L,
            &MATRIX_MT,
            &[
                (c"__gc", m_close),
                (c"close", m_close),
                (c"getptr", m_getptr),
                (c"size", m_size),
            ],
        );
        // methods through __index = the metatable itself
        push_mt(L, &MATRIX_MT);
        ffi::lua_pushvalue(L, -1);
        ffi::lua_setfield(L, -2, c"__index".as_ptr());
        ffi::lua_pop(L, 1);
        new_lib(
            L,
            &[
                // upstream's
                (c"clone", l_clone),
                (c"stackvalues", l_stackvalues),
                (c"matrix", l_matrix),
                (c"is_sharedtable", l_isproxy),
                // ours
                (c"switch", l_switch),
                (c"decref", l_decref),
                (c"incref", l_incref),
                (c"proxy", l_proxy),
                (c"stat", l_stat),
            ],
        );
    }
    1
}
