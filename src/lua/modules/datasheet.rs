//! `skynet.datasheet.core`: reads datasheet documents (the binary format that
//! `skynet.datasheet.dump` writes) in place, from another service's memory.
//!
//! A document is a Lua string owned by the builder service; `stringpointer(s)` turns it
//! into a light userdata, which travels to readers. `new(ptr)` gives a reader the root
//! table. Tables are *materialized* lazily, as upstream does: a proxy is an empty table
//! with a metatable; its first access (`__index`, `__pairs`, `__len`) copies that level
//! of the document into it (nested tables become proxies in turn) and removes the
//! metatable, so later reads are plain table reads. `update(root, newptr)` moves every
//! proxy of the old document in this state to the same table index of the new one,
//! emptying it and restoring the metatable; a proxy whose index the new document lacks
//! errors on its next access. `skynet.datasheet.dump.diff` keeps a table's index when
//! its path survives.
//!
//! Format (little-endian, offsets in bytes):
//!
//! ```text
//! document: u32 strings   offset of the string area from the document start
//!           u32 n         table slots
//!           u32 index[n]  offset of each table from the end of this array
//!                         (0xffffffff: no table in this slot)
//!           tables, strings
//! table:    u32 narray, u32 ndict, u8 type[narray + ndict], padding to 4,
//!           u32 value[narray], (u32 key, u32 value)[ndict]   key: string offset
//! types:    0 nil, 1 i32, 2 f32, 3 boolean (nonzero), 4 table slot, 5 string offset
//!           (NUL-terminated); ours, written only when needed: 6 i64 and 7 f64 (8 bytes
//!           at a string offset), 8 string with NULs (u32 length + bytes at an offset)
//! ```
//!
//! # Invariants
//!
//! * A document is trusted as upstream trusts it: it comes from the builder, which
//!   keeps the string alive until every reader has released it (the datasheet
//!   service's reference counts), so reads need no bounds beyond the slot count.
//! * Per-state caches live in upvalues of the module's closures: slot address ->
//!   proxy table (weak values) and proxy table -> `Slot` userdata (weak keys).
//! * Lua errors are `longjmp`s and no frame here owns a value with a destructor.

#![allow(non_snake_case)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_int, c_void, CStr};

use mlua::ffi::{self, lua_State};

const INVALID: u32 = 0xffff_ffff;

/// Upvalues of every function of the module.
const UP_META: c_int = ffi::lua_upvalueindex(1);
const UP_NODES: c_int = ffi::lua_upvalueindex(2);
const UP_SLOTS: c_int = ffi::lua_upvalueindex(3);

/// A proxy's place: a document and a table slot in it.
#[repr(C)]
struct Slot {
    data: *const u8,
    index: u32,
}

unsafe fn rd32(p: *const u8) -> u32 {
    // SAFETY: the caller points into a live document.
    u32::from_le_bytes(unsafe { std::ptr::read_unaligned(p as *const [u8; 4]) })
}

unsafe fn rd64(p: *const u8) -> [u8; 8] {
    // SAFETY: as rd32.
    unsafe { std::ptr::read_unaligned(p as *const [u8; 8]) }
}

/// Address of table `index` of the document, or null.
unsafe fn table_at(doc: *const u8, index: u32) -> *const u8 {
    // SAFETY: header reads of a live document.
    unsafe {
        let n = rd32(doc.add(4));
        if index >= n {
            return std::ptr::null();
        }
        let off = rd32(doc.add(8 + 4 * index as usize));
        if off == INVALID {
            return std::ptr::null();
        }
        doc.add(8 + 4 * n as usize + off as usize)
    }
}

/// Pushes the proxy table for slot `index` of `doc` (cached per state).
unsafe fn push_proxy(L: *mut lua_State, doc: *const u8, index: u32) {
    // SAFETY: runs inside a module closure (the upvalues exist).
    unsafe {
        let t = table_at(doc, index);
        if t.is_null() {
            ffi::lua_pushfstring(L, c"Invalid index %d".as_ptr(), index as c_int);
            ffi::lua_error(L);
        }
        ffi::luaL_checkstack(L, 4, std::ptr::null());
        if ffi::lua_rawgetp(L, UP_NODES, t as *const c_void) == ffi::LUA_TTABLE {
            return;
        }
        ffi::lua_pop(L, 1);
        ffi::lua_newtable(L);
        ffi::lua_pushvalue(L, UP_META);
        ffi::lua_setmetatable(L, -2);
        let s = ffi::lua_newuserdatauv(L, std::mem::size_of::<Slot>(), 0) as *mut Slot;
        std::ptr::write(s, Slot { data: doc, index });
        // slots[proxy] = slot
        ffi::lua_pushvalue(L, -2);
        ffi::lua_insert(L, -2);
        ffi::lua_rawset(L, UP_SLOTS);
        // nodes[t] = proxy
        ffi::lua_pushvalue(L, -1);
        ffi::lua_rawsetp(L, UP_NODES, t as *const c_void);
    }
}

unsafe fn push_cstr(L: *mut lua_State, strings: *const u8, off: u32) {
    // SAFETY: a NUL-terminated string of the document.
    unsafe { ffi::lua_pushstring(L, strings.add(off as usize) as *const c_char) };
}

unsafe fn push_value(L: *mut lua_State, doc: *const u8, ty: u8, v: *const u8) {
    // SAFETY: `v` points at a value slot of a live document.
    unsafe {
        let strings = doc.add(rd32(doc) as usize);
        let x = rd32(v);
        match ty {
            0 => ffi::lua_pushnil(L),
            1 => ffi::lua_pushinteger(L, x as i32 as ffi::lua_Integer),
            2 => ffi::lua_pushnumber(L, f32::from_bits(x) as f64),
            3 => ffi::lua_pushboolean(L, (x != 0) as c_int),
            4 => push_proxy(L, doc, x),
            5 => push_cstr(L, strings, x),
            6 => ffi::lua_pushinteger(L, i64::from_le_bytes(rd64(strings.add(x as usize)))),
            7 => ffi::lua_pushnumber(L, f64::from_le_bytes(rd64(strings.add(x as usize)))),
            8 => {
                let p = strings.add(x as usize);
                let len = rd32(p) as usize;
                ffi::lua_pushlstring(L, p.add(4) as *const c_char, len);
            }
            _ => {
                ffi::lua_pushfstring(L, c"Invalid type %d at %p".as_ptr(), ty as c_int, v);
                ffi::lua_error(L);
            }
        }
    }
}

/// Fills the proxy at index 1 from its document and removes its metatable.
unsafe fn materialize(L: *mut lua_State) {
    // SAFETY: module closure; the document is live (module invariants).
    unsafe {
        ffi::luaL_checkstack(L, 6, std::ptr::null());
        ffi::lua_pushvalue(L, 1);
        if ffi::lua_rawget(L, UP_SLOTS) != ffi::LUA_TUSERDATA {
            ffi::lua_pushfstring(
                L,
                c"Invalid proxy table %p".as_ptr(),
                ffi::lua_topointer(L, 1),
            );
            ffi::lua_error(L);
        }
        let s = ffi::lua_touserdata(L, -1) as *const Slot;
        ffi::lua_pop(L, 1);
        let (doc, index) = ((*s).data, (*s).index);
        let t = table_at(doc, index);
        if t.is_null() {
            ffi::lua_pushfstring(L, c"Invalid proxy (index = %d)".as_ptr(), index as c_int);
            ffi::lua_error(L);
        }
        let narray = rd32(t) as usize;
        let ndict = rd32(t.add(4)) as usize;
        let types = t.add(8);
        let mut v = t.add(8 + ((narray + ndict + 3) & !3));
        let strings = doc.add(rd32(doc) as usize);
        for i in 0..narray {
            push_value(L, doc, *types.add(i), v);
            ffi::lua_rawseti(L, 1, i as ffi::lua_Integer + 1);
            v = v.add(4);
        }
        for i in 0..ndict {
            push_cstr(L, strings, rd32(v));
            push_value(L, doc, *types.add(narray + i), v.add(4));
            ffi::lua_rawset(L, 1);
            v = v.add(8);
        }
        ffi::lua_pushnil(L);
        ffi::lua_setmetatable(L, 1);
    }
}

unsafe extern "C-unwind" fn l_index(L: *mut lua_State) -> c_int {
    // SAFETY: (proxy, key).
    unsafe {
        materialize(L);
        ffi::lua_settop(L, 2);
        ffi::lua_rawget(L, 1);
    }
    1
}

unsafe extern "C-unwind" fn l_next(L: *mut lua_State) -> c_int {
    // SAFETY: a raw `next`.
    unsafe {
        ffi::luaL_checktype(L, 1, ffi::LUA_TTABLE);
        ffi::lua_settop(L, 2);
        if ffi::lua_next(L, 1) != 0 {
            2
        } else {
            ffi::lua_pushnil(L);
            1
        }
    }
}

unsafe extern "C-unwind" fn l_pairs(L: *mut lua_State) -> c_int {
    // SAFETY: (proxy).
    unsafe {
        materialize(L);
        ffi::lua_pushcfunction(L, l_next);
        ffi::lua_pushvalue(L, 1);
        ffi::lua_pushnil(L);
    }
    3
}

unsafe extern "C-unwind" fn l_len(L: *mut lua_State) -> c_int {
    // SAFETY: (proxy).
    unsafe {
        materialize(L);
        let n = ffi::lua_rawlen(L, 1);
        ffi::lua_pushinteger(L, n as ffi::lua_Integer);
    }
    1
}

/// `new(ptr)`: the root table of a document.
unsafe extern "C-unwind" fn l_new(L: *mut lua_State) -> c_int {
    // SAFETY: module closure.
    unsafe {
        ffi::luaL_checktype(L, 1, ffi::LUA_TLIGHTUSERDATA);
        let doc = ffi::lua_touserdata(L, 1) as *const u8;
        push_proxy(L, doc, 0);
    }
    1
}

/// Empties the table at `t` (absolute).
unsafe fn clear(L: *mut lua_State, t: c_int) {
    // SAFETY: clearing fields during traversal is allowed.
    unsafe {
        ffi::lua_pushnil(L);
        while ffi::lua_next(L, t) != 0 {
            ffi::lua_pop(L, 1);
            ffi::lua_pushvalue(L, -1);
            ffi::lua_pushnil(L);
            ffi::lua_rawset(L, t);
        }
    }
}

/// `update(root, newptr)`: moves every proxy of root's document to `newptr`.
unsafe extern "C-unwind" fn l_update(L: *mut lua_State) -> c_int {
    // SAFETY: module closure; both documents are live.
    unsafe {
        ffi::luaL_checktype(L, 2, ffi::LUA_TLIGHTUSERDATA);
        ffi::lua_settop(L, 2);
        ffi::luaL_checkstack(L, 10, std::ptr::null());
        ffi::lua_pushvalue(L, 1);
        if ffi::lua_rawget(L, UP_SLOTS) != ffi::LUA_TUSERDATA {
            ffi::lua_pushfstring(
                L,
                c"Invalid proxy table %p".as_ptr(),
                ffi::lua_topointer(L, 1),
            );
            ffi::lua_error(L);
        }
        let old = (*(ffi::lua_touserdata(L, -1) as *const Slot)).data;
        ffi::lua_pop(L, 1);
        let new = ffi::lua_touserdata(L, 2) as *const u8;
        ffi::lua_newtable(L); // 3: moved entries
        ffi::lua_pushnil(L);
        while ffi::lua_next(L, UP_NODES) != 0 {
            // key (slot address) at -2, proxy at -1
            let top = ffi::lua_gettop(L);
            ffi::lua_pushvalue(L, top);
            if ffi::lua_rawget(L, UP_SLOTS) == ffi::LUA_TUSERDATA {
                let s = ffi::lua_touserdata(L, -1) as *mut Slot;
                ffi::lua_pop(L, 1);
                if (*s).data == old {
                    (*s).data = new;
                    clear(L, top);
                    ffi::lua_pushvalue(L, UP_META);
                    ffi::lua_setmetatable(L, top);
                    let nt = table_at(new, (*s).index);
                    if !nt.is_null() {
                        ffi::lua_pushvalue(L, top);
                        ffi::lua_rawsetp(L, 3, nt as *const c_void);
                    }
                    ffi::lua_pushvalue(L, top - 1);
                    ffi::lua_pushnil(L);
                    ffi::lua_rawset(L, UP_NODES);
                }
            } else {
                ffi::lua_pop(L, 1);
            }
            ffi::lua_settop(L, top - 1);
        }
        ffi::lua_pushnil(L);
        while ffi::lua_next(L, 3) != 0 {
            ffi::lua_pushvalue(L, -2);
            ffi::lua_insert(L, -2);
            ffi::lua_rawset(L, UP_NODES);
        }
    }
    0
}

unsafe extern "C-unwind" fn l_stringpointer(L: *mut lua_State) -> c_int {
    // SAFETY: the pointer is only meaningful while the string lives (the caller keeps
    // it).
    unsafe {
        let p = ffi::luaL_checklstring(L, 1, std::ptr::null_mut());
        ffi::lua_pushlightuserdata(L, p as *mut c_void);
    }
    1
}

unsafe fn weak_table(L: *mut lua_State, mode: &CStr) {
    // SAFETY: table creation.
    unsafe {
        ffi::lua_newtable(L);
        ffi::lua_createtable(L, 0, 1);
        ffi::lua_pushstring(L, mode.as_ptr());
        ffi::lua_setfield(L, -2, c"__mode".as_ptr());
        ffi::lua_setmetatable(L, -2);
    }
}

/// `require "skynet.datasheet.core"`.
///
/// # Safety
/// `L` must be a valid Lua state.
pub unsafe extern "C-unwind" fn luaopen_skynet_datasheet_core(L: *mut lua_State) -> c_int {
    // SAFETY: module setup: three shared upvalues for every closure.
    unsafe {
        ffi::lua_createtable(L, 0, 3); // module
        ffi::lua_createtable(L, 0, 3); // metatable
        let meta = ffi::lua_gettop(L);
        weak_table(L, c"kv"); // slot address -> proxy
        let nodes = ffi::lua_gettop(L);
        weak_table(L, c"k"); // proxy -> Slot
        let slots = ffi::lua_gettop(L);
        let push_closure = |L: *mut lua_State, f: ffi::lua_CFunction| {
            ffi::lua_pushvalue(L, meta);
            ffi::lua_pushvalue(L, nodes);
            ffi::lua_pushvalue(L, slots);
            ffi::lua_pushcclosure(L, f, 3);
        };
        for (name, f) in [
            (c"__index", l_index as ffi::lua_CFunction),
            (c"__pairs", l_pairs),
            (c"__len", l_len),
        ] {
            push_closure(L, f);
            ffi::lua_setfield(L, meta, name.as_ptr());
        }
        for (name, f) in [(c"new", l_new as ffi::lua_CFunction), (c"update", l_update)] {
            push_closure(L, f);
            ffi::lua_setfield(L, meta - 1, name.as_ptr());
        }
        ffi::lua_settop(L, meta - 1);
        ffi::lua_pushcfunction(L, l_stringpointer);
        ffi::lua_setfield(L, -2, c"stringpointer".as_ptr());
    }
    1
}
