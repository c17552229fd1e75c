//! `sproto.core`: the Lua binding of the `sproto` crate, with the function set of
//! upstream's C module (`newproto`, `deleteproto`, `dumpproto`, `querytype`, `encode`,
//! `decode`, `protocol`, `pack`, `unpack`, `default`, `saveproto`, `loadproto`) plus
//! `parse` (schema text -> bundle) which backs our `sprotoparser.lua`.
//!
//! Handles: a schema is a lightuserdata pointing to a leaked `LuaProto` (freed by
//! `deleteproto`); a type is a lightuserdata pointing to one of its `TypeHandle`s, so
//! a type handle alone reaches the whole schema. A NULL lightuserdata as type stands
//! for `response nil`.
//!
//! Hot path: `encode` reads Lua tables directly through [`sproto::StructSource`] and
//! `decode` writes Lua tables directly through [`sproto::StructSink`]; no intermediate
//! value tree is built. Field names are pre-NUL-terminated in the schema, so
//! `lua_getfield`/`lua_setfield` need no allocation.
//!
//! Error-safety invariant: Lua errors are `longjmp`s. While Lua API calls that can raise
//! are running (metamethods, allocation), no Rust frame between the C entry point and
//! the raising call owns a value with a destructor:
//!
//! * encode output goes into a `Vec` owned by a Lua userdata (an upvalue of `encode`,
//!   `pack`, `unpack`), not by a Rust frame; `encode` runs the codec under `lua_pcall`
//!   so it can clear the buffer's busy flag before re-raising;
//! * codec errors come back as `Err` values; the entry point copies the message onto
//!   the Lua stack, drops every Rust value, and only then calls `lua_error`.
//!
//! `saveproto`/`loadproto` slots are process-global atomics: every service (each its
//! own Lua state on any thread) can load a schema saved by another. Saved schemas are
//! never freed; `Sproto` is immutable and `Sync`.

use std::ffi::{c_int, c_void, CStr};
use std::fmt::Write as _;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::lua::ffi::{push_str, raise_string, to_bytes, type_name};
use mlua::ffi::{self, lua_State};
use sproto::{
    ArrayReader, ArrayWriter, Container, Error, Field, FieldType, FieldValue, FieldWriter, Sproto,
    StructSink, StructSource,
};

/// Number of process-global schema slots (`saveproto`/`loadproto`).
pub(crate) const GLOBAL_SLOTS: usize = 16;

/// A schema as handed to Lua.
pub(crate) struct LuaProto {
    sp: Sproto,
    handles: Box<[TypeHandle]>,
}

/// The target of a type lightuserdata.
pub(crate) struct TypeHandle {
    proto: *const LuaProto,
    index: usize,
}

// SAFETY: `LuaProto` is immutable after construction; the raw pointers only point back
// into the same (leaked, never moved) allocation.
unsafe impl Send for LuaProto {}
// SAFETY: as above.
unsafe impl Sync for LuaProto {}

static SLOTS: [AtomicPtr<LuaProto>; GLOBAL_SLOTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; GLOBAL_SLOTS];

/// Leaks `sp` as a [`LuaProto`] with one stable handle per type.
fn leak_proto(sp: Sproto) -> *mut LuaProto {
    let raw = Box::into_raw(Box::new(LuaProto {
        sp,
        handles: Box::new([]),
    }));
    // SAFETY: `raw` is a fresh, valid allocation.
    unsafe {
        let n = (*raw).sp.types().len();
        (*raw).handles = (0..n)
            .map(|index| TypeHandle { proto: raw, index })
            .collect();
    }
    raw
}

/// Raises `msg` as a Lua error; `msg` is dropped before the push and the `longjmp`.
unsafe fn raise(L: *mut lua_State, msg: String) -> ! {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe { raise_string(L, msg) }
}

/// Raises a codec error.
unsafe fn raise_err(L: *mut lua_State, e: Error) -> ! {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let msg = e.to_string();
        drop(e);
        raise(L, msg)
    }
}

unsafe fn bytes_at<'a>(L: *mut lua_State, idx: c_int) -> &'a [u8] {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe { to_bytes(L, idx).unwrap_or(&[]) }
}

/// The schema lightuserdata at `idx` (raises if absent).
unsafe fn check_proto<'a>(L: *mut lua_State, idx: c_int) -> &'a LuaProto {
    // SAFETY: `L` is the calling C function's valid state. Schema lightuserdata come from
    // `newproto`/`loadproto` and are never freed; a script passing some other lightuserdata
    // breaks this, as upstream.
    unsafe {
        let p = ffi::lua_touserdata(L, idx) as *const LuaProto;
        if p.is_null() {
            ffi::luaL_argerror(L, idx, c"Need a sproto object".as_ptr());
        }
        &*p
    }
}

/// Type argument: `Some(handle)`, `None` for the NULL (response nil) handle; raises for
/// anything that is not a lightuserdata.
unsafe fn type_arg<'a>(L: *mut lua_State, idx: c_int) -> Option<&'a TypeHandle> {
    // SAFETY: as `check_proto`: type handles live in their (never freed) schema.
    unsafe {
        if ffi::lua_type(L, idx) != ffi::LUA_TLIGHTUSERDATA {
            ffi::luaL_argerror(L, idx, c"Need a sproto_type object".as_ptr());
        }
        let p = ffi::lua_touserdata(L, idx) as *const TypeHandle;
        (!p.is_null()).then(|| &*p)
    }
}

/// Byte input given as `string` or `(lightuserdata, size)` starting at `idx`.
/// Returns the bytes and the index of the next argument.
unsafe fn bytes_arg<'a>(L: *mut lua_State, idx: c_int) -> (&'a [u8], c_int) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match ffi::lua_type(L, idx) {
            ffi::LUA_TSTRING => (bytes_at(L, idx), idx + 1),
            ffi::LUA_TLIGHTUSERDATA | ffi::LUA_TUSERDATA => {
                let p = ffi::lua_touserdata(L, idx) as *const u8;
                let n = ffi::luaL_checkinteger(L, idx + 1);
                if n < 0 {
                    ffi::luaL_argerror(L, idx + 1, c"negative size".as_ptr());
                }
                if p.is_null() || n == 0 {
                    (&[], idx + 2)
                } else {
                    (std::slice::from_raw_parts(p, n as usize), idx + 2)
                }
            }
            _ => {
                ffi::luaL_argerror(L, idx, c"string or userdata expected".as_ptr());
                unreachable!()
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Output buffers owned by Lua

/// Reusable output buffer living in a full userdata.
struct Buffer {
    busy: bool,
    bytes: Vec<u8>,
}

unsafe extern "C-unwind" fn buffer_gc(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let b = ffi::lua_touserdata(L, 1) as *mut Buffer;
        if !b.is_null() {
            ptr::drop_in_place(b);
        }
        0
    }
}

/// Pushes a new buffer userdata and returns it.
unsafe fn push_buffer(L: *mut lua_State) -> *mut Buffer {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let b = ffi::lua_newuserdatauv(L, std::mem::size_of::<Buffer>(), 0) as *mut Buffer;
        ptr::write(
            b,
            Buffer {
                busy: false,
                bytes: Vec::new(),
            },
        );
        if ffi::luaL_newmetatable(L, c"sproto.core.buffer".as_ptr()) != 0 {
            ffi::lua_pushcfunction(L, buffer_gc);
            ffi::lua_setfield(L, -2, c"__gc".as_ptr());
        }
        ffi::lua_setmetatable(L, -2);
        b
    }
}

unsafe fn upvalue_buffer(L: *mut lua_State) -> *mut Buffer {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe { ffi::lua_touserdata(L, ffi::lua_upvalueindex(1)) as *mut Buffer }
}

/// Pushes the buffer contents as a string; drops oversized capacity afterwards.
unsafe fn push_buffer_string(L: *mut lua_State, b: *mut Buffer) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let bytes = &mut (*b).bytes;
        push_str(L, bytes.as_slice());
        if bytes.capacity() > 1 << 20 {
            *bytes = Vec::new();
        }
    }
}

// ---------------------------------------------------------------------------------
// Encoding from Lua tables

/// The struct at stack index `index` (a table, or anything `lua_getfield` accepts).
struct LuaStruct {
    L: *mut lua_State,
    index: c_int,
}

/// One `*T()` map entry: the key and value at these stack indices.
struct LuaPair {
    L: *mut lua_State,
    key: c_int,
    value: c_int,
}

fn not_a(owner: &sproto::Type, field: &Field, index: i64, what: &str, actual: &str) -> Error {
    Error::Encode(format!(
        "{}.{}[{index}] is not {what} (Is a {actual})",
        owner.name(),
        field.name()
    ))
}

/// Converts the Lua value at `idx` to the wire integer of an integer/decimal field.
unsafe fn integer_at(
    L: *mut lua_State,
    idx: c_int,
    owner: &sproto::Type,
    field: &Field,
    index: i64,
) -> sproto::Result<i64> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let mut ok = 0;
        if field.precision().is_some() {
            let n = ffi::lua_tonumberx(L, idx, &mut ok);
            return Ok(field.decimal_to_wire(if ok != 0 { n } else { 0.0 }));
        }
        let v = ffi::lua_tointegerx(L, idx, &mut ok);
        if ok == 0 {
            return Err(not_a(owner, field, index, "an integer", type_name(L, idx)));
        }
        Ok(v)
    }
}

unsafe fn double_at(L: *mut lua_State, idx: c_int) -> f64 {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let mut ok = 0;
        let n = ffi::lua_tonumberx(L, idx, &mut ok);
        if ok != 0 {
            n
        } else {
            0.0
        }
    }
}

unsafe fn boolean_at(
    L: *mut lua_State,
    idx: c_int,
    owner: &sproto::Type,
    field: &Field,
    index: i64,
) -> sproto::Result<bool> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        if ffi::lua_type(L, idx) != ffi::LUA_TBOOLEAN {
            return Err(not_a(owner, field, index, "a boolean", type_name(L, idx)));
        }
        Ok(ffi::lua_toboolean(L, idx) != 0)
    }
}

unsafe fn string_at<'a>(
    L: *mut lua_State,
    idx: c_int,
    owner: &sproto::Type,
    field: &Field,
    index: i64,
) -> sproto::Result<&'a [u8]> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        if ffi::lua_type(L, idx) != ffi::LUA_TSTRING {
            return Err(not_a(owner, field, index, "a string", type_name(L, idx)));
        }
        Ok(bytes_at(L, idx))
    }
}

/// Writes the (non-nil) Lua value at `idx` into field `w`.
unsafe fn write_value(L: *mut lua_State, idx: c_int, w: FieldWriter<'_>) -> sproto::Result<()> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let (owner, field) = (w.owner(), w.field());
        if !field.is_array() {
            return match field.field_type() {
                FieldType::Integer => w.integer(integer_at(L, idx, owner, field, 0)?),
                FieldType::Boolean => w.boolean(boolean_at(L, idx, owner, field, 0)?),
                FieldType::Double => w.double(double_at(L, idx)),
                FieldType::String | FieldType::Binary => {
                    w.bytes(string_at(L, idx, owner, field, 0)?)
                }
                FieldType::Struct(_) => w.structure(&mut LuaStruct { L, index: idx }),
            };
        }
        let t = ffi::lua_type(L, idx);
        if t != ffi::LUA_TTABLE && t != ffi::LUA_TUSERDATA {
            return Err(Error::Encode(format!(
                "{}.{}(1) should be a table or an userdata with metamethods (Is a {})",
                owner.name(),
                field.name(),
                type_name(L, idx)
            )));
        }
        match field.container() {
            Container::Array => w.array(|a| write_sequence(L, idx, a)),
            Container::KeyMap { .. } => w.array(|a| {
                for_each_pair(L, idx, |_, value| {
                    a.push_struct(&mut LuaStruct { L, index: value })
                })
            }),
            Container::PairMap => w.array(|a| {
                for_each_pair(L, idx, |key, value| {
                    a.push_struct(&mut LuaPair { L, key, value })
                })
            }),
            Container::Single => unreachable!("is_array checked"),
        }
    }
}

/// `t[1], t[2], ...` until the first nil (metamethods honoured).
unsafe fn write_sequence(
    L: *mut lua_State,
    idx: c_int,
    a: &mut ArrayWriter<'_>,
) -> sproto::Result<()> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let (owner, field) = (a.owner(), a.field());
        let mut i: i64 = 1;
        loop {
            ffi::luaL_checkstack(L, 4, ptr::null());
            if ffi::lua_geti(L, idx, i) == ffi::LUA_TNIL {
                ffi::lua_pop(L, 1);
                return Ok(());
            }
            let top = ffi::lua_gettop(L);
            match field.field_type() {
                FieldType::Integer => a.push_integer(integer_at(L, top, owner, field, i)?)?,
                FieldType::Boolean => a.push_boolean(boolean_at(L, top, owner, field, i)?)?,
                FieldType::Double => a.push_double(double_at(L, top))?,
                FieldType::String | FieldType::Binary => {
                    a.push_bytes(string_at(L, top, owner, field, i)?)?
                }
                FieldType::Struct(_) => a.push_struct(&mut LuaStruct { L, index: top })?,
            }
            ffi::lua_settop(L, top - 1);
            i += 1;
        }
    }
}

/// Iterates `pairs(t)` (honouring `__pairs`), calling `f(key_index, value_index)`.
unsafe fn for_each_pair(
    L: *mut lua_State,
    idx: c_int,
    mut f: impl FnMut(c_int, c_int) -> sproto::Result<()>,
) -> sproto::Result<()> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        ffi::luaL_checkstack(L, 6, ptr::null());
        if ffi::luaL_getmetafield(L, idx, c"__pairs".as_ptr()) != ffi::LUA_TNIL {
            ffi::lua_pushvalue(L, idx);
            ffi::lua_call(L, 1, 3);
            let base = ffi::lua_gettop(L) - 2; // iterator, state, control
            loop {
                ffi::luaL_checkstack(L, 4, ptr::null());
                ffi::lua_pushvalue(L, base);
                ffi::lua_pushvalue(L, base + 1);
                ffi::lua_pushvalue(L, base + 2);
                ffi::lua_call(L, 2, 2);
                let top = ffi::lua_gettop(L);
                if ffi::lua_type(L, top - 1) == ffi::LUA_TNIL {
                    break;
                }
                f(top - 1, top)?;
                ffi::lua_settop(L, top - 1);
                ffi::lua_replace(L, base + 2);
            }
            ffi::lua_settop(L, base - 1);
            return Ok(());
        }
        ffi::lua_pushnil(L);
        while ffi::lua_next(L, idx) != 0 {
            let top = ffi::lua_gettop(L);
            f(top - 1, top)?;
            ffi::lua_settop(L, top - 1);
        }
        Ok(())
    }
}

impl StructSource for LuaStruct {
    fn write_field(&mut self, w: FieldWriter<'_>) -> sproto::Result<()> {
        // SAFETY: `index` is a live stack slot of `L` for the whole encode call.
        unsafe {
            let L = self.L;
            ffi::luaL_checkstack(L, 8, ptr::null());
            let t = ffi::lua_getfield(L, self.index, w.field().c_name().as_ptr());
            let top = ffi::lua_gettop(L);
            let r = if t == ffi::LUA_TNIL {
                Ok(())
            } else {
                write_value(L, top, w)
            };
            ffi::lua_settop(L, top - 1);
            r
        }
    }
}

impl StructSource for LuaPair {
    fn write_field(&mut self, w: FieldWriter<'_>) -> sproto::Result<()> {
        let is_key = w.owner().fields()[0].tag() == w.field().tag();
        let idx = if is_key { self.key } else { self.value };
        // SAFETY: key and value are live stack slots during the map iteration.
        unsafe {
            if ffi::lua_type(self.L, idx) == ffi::LUA_TNIL {
                return Ok(());
            }
            write_value(self.L, idx, w)
        }
    }
}

/// Runs inside `lua_pcall`: (type handle, value, buffer) -> fills the buffer.
unsafe extern "C-unwind" fn encode_protected(L: *mut lua_State) -> c_int {
    // SAFETY: called by `lua_pcall` from `encode` with (type handle, value, buffer
    // userdata) at 1..=3, checked there.
    unsafe {
        let handle = &*(ffi::lua_touserdata(L, 1) as *const TypeHandle);
        let buffer = ffi::lua_touserdata(L, 3) as *mut Buffer;
        let out = &mut (*buffer).bytes;
        out.clear();
        let proto = &*handle.proto;
        let r = sproto::encode(&proto.sp, handle.index, &mut LuaStruct { L, index: 2 }, out);
        if let Err(e) = r {
            raise_err(L, e);
        }
        0
    }
}

/// `encode(type, table)` -> string. A NULL type (`response nil`) requires `nil` and
/// encodes to "".
unsafe extern "C-unwind" fn lencode(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let Some(handle) = type_arg(L, 1) else {
            if ffi::lua_isnoneornil(L, 2) == 0 {
                let msg = ffi::lua_pushfstring(
                    L,
                    c"nil expected, got %s".as_ptr(),
                    ffi::luaL_typename(L, 2),
                );
                ffi::luaL_argerror(L, 2, msg);
            }
            ffi::lua_pushlstring(L, c"".as_ptr(), 0);
            return 1;
        };
        ffi::lua_settop(L, 2);
        let mut buffer = upvalue_buffer(L);
        if (*buffer).busy {
            // Re-entered from a metamethod: use a temporary buffer (kept alive at slot 3).
            buffer = push_buffer(L);
        }
        (*buffer).busy = true;
        ffi::lua_pushcfunction(L, encode_protected);
        ffi::lua_pushlightuserdata(L, handle as *const TypeHandle as *mut c_void);
        ffi::lua_pushvalue(L, 2);
        ffi::lua_pushlightuserdata(L, buffer as *mut c_void);
        let status = ffi::lua_pcall(L, 3, 0, 0);
        (*buffer).busy = false;
        if status != ffi::LUA_OK {
            ffi::lua_error(L);
        }
        push_buffer_string(L, buffer);
        1
    }
}

// ---------------------------------------------------------------------------------
// Decoding into Lua tables

/// Fills the table at stack index `table`.
struct LuaTable {
    L: *mut lua_State,
    table: c_int,
}

impl StructSink for LuaTable {
    fn field<'a>(&mut self, field: &'a Field, value: FieldValue<'a>) -> sproto::Result<()> {
        // SAFETY: `table` is a live stack slot of `L` for the whole decode call.
        unsafe {
            ffi::luaL_checkstack(self.L, 8, ptr::null());
            push_field_value(self.L, field, value)?;
            ffi::lua_setfield(self.L, self.table, field.c_name().as_ptr());
        }
        Ok(())
    }
}

unsafe fn push_integer(L: *mut lua_State, field: &Field, v: i64) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match field.precision() {
            Some(_) => ffi::lua_pushnumber(L, field.decimal_from_wire(v)),
            None => ffi::lua_pushinteger(L, v),
        }
    }
}

/// Pushes a decoded struct as a new table.
unsafe fn push_struct(L: *mut lua_State, r: sproto::StructReader<'_>) -> sproto::Result<()> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        ffi::lua_createtable(L, 0, r.struct_type().fields().len() as c_int);
        let table = ffi::lua_gettop(L);
        r.decode(&mut LuaTable { L, table })
    }
}

unsafe fn push_field_value(
    L: *mut lua_State,
    field: &Field,
    value: FieldValue<'_>,
) -> sproto::Result<()> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match value {
            FieldValue::Integer(v) => push_integer(L, field, v),
            FieldValue::Boolean(b) => ffi::lua_pushboolean(L, b as c_int),
            FieldValue::Double(d) => ffi::lua_pushnumber(L, d),
            FieldValue::Bytes(b) => {
                push_str(L, b);
            }
            FieldValue::Struct(r) => push_struct(L, r)?,
            FieldValue::Array(reader) => push_array(L, field, reader)?,
        }
        Ok(())
    }
}

unsafe fn push_array(
    L: *mut lua_State,
    field: &Field,
    reader: ArrayReader<'_>,
) -> sproto::Result<()> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match reader {
            ArrayReader::Integers(mut s) => {
                ffi::lua_createtable(L, s.remaining() as c_int, 0);
                let mut i = 1;
                while let Some(v) = s.next_integer() {
                    push_integer(L, field, v);
                    ffi::lua_rawseti(L, -2, i);
                    i += 1;
                }
            }
            ArrayReader::Doubles(mut s) => {
                ffi::lua_createtable(L, s.remaining() as c_int, 0);
                let mut i = 1;
                while let Some(v) = s.next_double() {
                    ffi::lua_pushnumber(L, v);
                    ffi::lua_rawseti(L, -2, i);
                    i += 1;
                }
            }
            ArrayReader::Booleans(bytes) => {
                ffi::lua_createtable(L, bytes.len() as c_int, 0);
                for (i, &b) in bytes.enumerate() {
                    ffi::lua_pushboolean(L, (b != 0) as c_int);
                    ffi::lua_rawseti(L, -2, i as i64 + 1);
                }
            }
            ArrayReader::Bytes(blobs) => {
                ffi::lua_createtable(L, 0, 0);
                for (i, b) in blobs.enumerate() {
                    let b = b?;
                    push_str(L, b);
                    ffi::lua_rawseti(L, -2, i as i64 + 1);
                }
            }
            ArrayReader::Structs(elems) => {
                ffi::lua_createtable(L, 0, 0);
                let result = ffi::lua_gettop(L);
                match field.container() {
                    Container::KeyMap { key_tag, key_field } => {
                        for e in elems {
                            let e = e?;
                            let key = e.struct_type().fields()[key_field].c_name();
                            push_struct(L, e)?;
                            if ffi::lua_getfield(L, -1, key.as_ptr()) == ffi::LUA_TNIL {
                                return Err(Error::Map(format!(
                                    "Can't find main index (tag={key_tag}) in [{}]",
                                    field.name()
                                )));
                            }
                            ffi::lua_pushvalue(L, -2);
                            ffi::lua_rawset(L, result);
                            ffi::lua_pop(L, 1);
                        }
                    }
                    Container::PairMap => {
                        // One scratch table per field, like lsproto: an entry lacking its
                        // value inherits the previous entry's value.
                        ffi::lua_createtable(L, 0, 2);
                        let scratch = ffi::lua_gettop(L);
                        for e in elems {
                            let e = e?;
                            let fields = e.struct_type().fields();
                            let (key, value) = (fields[0].c_name(), fields[1].c_name());
                            e.decode(&mut LuaTable { L, table: scratch })?;
                            if ffi::lua_getfield(L, scratch, key.as_ptr()) == ffi::LUA_TNIL {
                                return Err(Error::Map(format!(
                                    "Can't find key field in [{}]",
                                    field.name()
                                )));
                            }
                            if ffi::lua_getfield(L, scratch, value.as_ptr()) == ffi::LUA_TNIL {
                                return Err(Error::Map(format!(
                                    "Can't find value field in [{}]",
                                    field.name()
                                )));
                            }
                            ffi::lua_rawset(L, result);
                        }
                        ffi::lua_settop(L, result);
                    }
                    _ => {
                        for (i, e) in elems.enumerate() {
                            push_struct(L, e?)?;
                            ffi::lua_rawseti(L, result, i as i64 + 1);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `decode(type, string | (ptr, size) [, result])` -> `table, consumed`. A NULL type
/// returns nothing.
unsafe extern "C-unwind" fn ldecode(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let Some(handle) = type_arg(L, 1) else {
            return 0;
        };
        let (bytes, next) = bytes_arg(L, 2);
        if ffi::lua_type(L, next) == ffi::LUA_TTABLE {
            ffi::lua_pushvalue(L, next);
        } else {
            let ty = (*handle.proto).sp.type_at(handle.index);
            ffi::lua_createtable(L, 0, ty.fields().len() as c_int);
        }
        let table = ffi::lua_gettop(L);
        let proto = &*handle.proto;
        match sproto::decode(&proto.sp, handle.index, bytes, &mut LuaTable { L, table }) {
            Ok(used) => {
                ffi::lua_settop(L, table);
                ffi::lua_pushinteger(L, used as i64);
                2
            }
            Err(e) => raise_err(L, e),
        }
    }
}

// ---------------------------------------------------------------------------------
// Schema functions

/// `newproto(bundle)` -> schema, or nothing if the bundle is rejected.
unsafe extern "C-unwind" fn lnewproto(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let mut len = 0;
        let p = ffi::luaL_checklstring(L, 1, &mut len);
        let bundle = std::slice::from_raw_parts(p as *const u8, len);
        match Sproto::from_bundle(bundle) {
            Ok(sp) => {
                ffi::lua_pushlightuserdata(L, leak_proto(sp) as *mut c_void);
                1
            }
            Err(_) => 0,
        }
    }
}

/// `deleteproto(schema)`.
unsafe extern "C-unwind" fn ldeleteproto(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let p = ffi::lua_touserdata(L, 1) as *mut LuaProto;
        if !p.is_null() {
            drop(Box::from_raw(p));
        }
        0
    }
}

/// Human-readable schema listing (for `dumpproto`).
fn describe(sp: &Sproto) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "=== {} types ===", sp.types().len());
    for t in sp.types() {
        let _ = writeln!(s, "{}", t.name());
        for f in t.fields() {
            let ty = match f.field_type() {
                FieldType::Struct(i) => sp.type_at(i).name().to_string(),
                FieldType::Integer => match f.precision() {
                    Some(p) => format!("decimal({p})"),
                    None => "integer".into(),
                },
                other => format!("{other:?}").to_lowercase(),
            };
            let shape = match f.container() {
                Container::Single => String::new(),
                Container::Array => "*".into(),
                Container::KeyMap { key_tag, .. } => format!("*(key={key_tag}) "),
                Container::PairMap => "*() ".into(),
            };
            let _ = writeln!(s, "\t{} ({}) {shape}{ty}", f.name(), f.tag());
        }
    }
    let _ = writeln!(s, "=== {} protocol ===", sp.protocols().len());
    for p in sp.protocols() {
        let name = |i: Option<usize>| i.map(|i| sp.type_at(i).name()).unwrap_or("nil");
        let response = if p.confirm() && p.response().is_none() {
            "nil (confirm)"
        } else {
            name(p.response())
        };
        let _ = writeln!(
            s,
            "\t{} ({}) request:{} response:{response}",
            p.name(),
            p.tag(),
            name(p.request())
        );
    }
    s
}

/// `dumpproto(schema)`: prints the schema to stdout.
unsafe extern "C-unwind" fn ldumpproto(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let text = describe(&check_proto(L, 1).sp);
        use std::io::Write;
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        0
    }
}

/// `querytype(schema, name)` -> type, or nothing.
unsafe extern "C-unwind" fn lquerytype(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let proto = check_proto(L, 1);
        let mut len = 0;
        let p = ffi::luaL_checklstring(L, 2, &mut len);
        let name = std::slice::from_raw_parts(p as *const u8, len);
        let index = std::str::from_utf8(name)
            .ok()
            .and_then(|n| proto.sp.type_index(n));
        match index {
            Some(i) => {
                let h = &proto.handles[i] as *const TypeHandle as *mut c_void;
                ffi::lua_pushlightuserdata(L, h);
                1
            }
            None => 0,
        }
    }
}

unsafe fn push_type(L: *mut lua_State, proto: &LuaProto, index: Option<usize>) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match index {
            Some(i) => {
                ffi::lua_pushlightuserdata(L, &proto.handles[i] as *const TypeHandle as *mut c_void)
            }
            None => ffi::lua_pushnil(L),
        }
    }
}

/// `protocol(schema, name | tag)` -> `tag | name, request, response`, or nothing.
/// `response` is a NULL lightuserdata for `response nil`.
unsafe extern "C-unwind" fn lprotocol(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let proto = check_proto(L, 1);
        let by_tag = ffi::lua_type(L, 2) == ffi::LUA_TNUMBER;
        let found = if by_tag {
            let mut ok = 0;
            let tag = ffi::lua_tointegerx(L, 2, &mut ok);
            if ok == 0 {
                return 0;
            }
            proto.sp.protocol_by_tag(tag)
        } else {
            let mut len = 0;
            let p = ffi::luaL_checklstring(L, 2, &mut len);
            std::str::from_utf8(std::slice::from_raw_parts(p as *const u8, len))
                .ok()
                .and_then(|n| proto.sp.protocol_by_name(n))
        };
        let Some(i) = found else { return 0 };
        let p = &proto.sp.protocols()[i];
        if by_tag {
            push_str(L, p.name());
        } else {
            ffi::lua_pushinteger(L, p.tag() as i64);
        }
        push_type(L, proto, p.request());
        if p.response().is_none() && p.confirm() {
            ffi::lua_pushlightuserdata(L, ptr::null_mut());
        } else {
            push_type(L, proto, p.response());
        }
        3
    }
}

/// Pushes the default value of a field's element (struct elements: type name).
unsafe fn push_scalar_default(L: *mut lua_State, sp: &Sproto, f: &Field) {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match f.field_type() {
            FieldType::Integer if f.precision().is_some() => ffi::lua_pushnumber(L, 0.0),
            FieldType::Integer => ffi::lua_pushinteger(L, 0),
            FieldType::Boolean => ffi::lua_pushboolean(L, 0),
            FieldType::Double => ffi::lua_pushnumber(L, 0.0),
            FieldType::String | FieldType::Binary => {
                ffi::lua_pushlstring(L, c"".as_ptr(), 0);
            }
            FieldType::Struct(i) => {
                let n = sp.type_at(i).name();
                push_str(L, n);
            }
        }
    }
}

/// `default(type)` -> table with every field's zero value.
unsafe extern "C-unwind" fn ldefault(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let Some(handle) = type_arg(L, 1) else {
            ffi::luaL_argerror(L, 1, c"Need a sproto_type object".as_ptr());
            return 0;
        };
        let sp = &(*handle.proto).sp;
        let ty = sp.type_at(handle.index);
        ffi::luaL_checkstack(L, 4, ptr::null());
        ffi::lua_createtable(L, 0, ty.fields().len() as c_int);
        for f in ty.fields() {
            match (f.is_array(), f.field_type()) {
                (true, _) => {
                    ffi::lua_createtable(L, 0, 1);
                    push_scalar_default(L, sp, f);
                    ffi::lua_setfield(L, -2, c"__array".as_ptr());
                }
                (false, FieldType::Struct(_)) => {
                    ffi::lua_createtable(L, 0, 1);
                    push_scalar_default(L, sp, f);
                    ffi::lua_setfield(L, -2, c"__type".as_ptr());
                }
                (false, _) => push_scalar_default(L, sp, f),
            }
            ffi::lua_setfield(L, -2, f.c_name().as_ptr());
        }
        1
    }
}

unsafe fn slot_arg(L: *mut lua_State, idx: c_int) -> usize {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let slot = ffi::luaL_optinteger(L, idx, 0);
        if !(0..GLOBAL_SLOTS as i64).contains(&slot) {
            ffi::luaL_error(L, c"Invalid global slot index %I".as_ptr(), slot);
        }
        slot as usize
    }
}

/// `saveproto(schema | nil, slot)`: stores into a process-global slot.
unsafe extern "C-unwind" fn lsaveproto(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let p = ffi::lua_touserdata(L, 1) as *mut LuaProto;
        let slot = slot_arg(L, 2);
        SLOTS[slot].store(p, Ordering::Release);
        0
    }
}

/// `loadproto(slot)` -> schema saved in that slot.
unsafe extern "C-unwind" fn lloadproto(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let slot = slot_arg(L, 1);
        let p = SLOTS[slot].load(Ordering::Acquire);
        if p.is_null() {
            ffi::luaL_error(L, c"nil sproto at index %d".as_ptr(), slot as c_int);
        }
        ffi::lua_pushlightuserdata(L, p as *mut c_void);
        1
    }
}

/// `parse(text [, chunkname])` -> bundle string (our `sprotoparser` backend).
unsafe extern "C-unwind" fn lparse(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let text = {
            let mut len = 0;
            let p = ffi::luaL_checklstring(L, 1, &mut len);
            std::slice::from_raw_parts(p as *const u8, len)
        };
        let chunk = if ffi::lua_isnoneornil(L, 2) != 0 {
            "=text"
        } else {
            let mut len = 0;
            let p = ffi::luaL_checklstring(L, 2, &mut len);
            std::str::from_utf8(std::slice::from_raw_parts(p as *const u8, len)).unwrap_or("?")
        };
        let Ok(text) = std::str::from_utf8(text) else {
            ffi::luaL_argerror(L, 1, c"schema text is not UTF-8".as_ptr());
            return 0;
        };
        match sproto::parse(text, chunk) {
            Ok(bundle) => {
                push_str(L, &bundle);
                drop(bundle);
                1
            }
            Err(e) => raise(L, e.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------
// 0-pack

/// `pack(string | (ptr, size))` -> packed string.
unsafe extern "C-unwind" fn lpack(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let (input, _) = bytes_arg(L, 1);
        let buffer = upvalue_buffer(L);
        let out = &mut (*buffer).bytes;
        out.clear();
        sproto::pack_into(input, out);
        let bound = sproto::packed_bound(input.len());
        if out.len() > bound {
            let msg = format!("packing error, return size = {}", out.len());
            raise(L, msg);
        }
        push_buffer_string(L, buffer);
        1
    }
}

/// `unpack(string | (ptr, size))` -> unpacked string.
unsafe extern "C-unwind" fn lunpack(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let (input, _) = bytes_arg(L, 1);
        let buffer = upvalue_buffer(L);
        let out = &mut (*buffer).bytes;
        out.clear();
        if let Err(e) = sproto::unpack_into(input, out) {
            raise_err(L, e);
        }
        push_buffer_string(L, buffer);
        1
    }
}

/// `require "sproto.core"`.
///
/// # Safety
/// Called by Lua with a valid state.
pub unsafe extern "C-unwind" fn luaopen_sproto_core(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let plain: [(&CStr, ffi::lua_CFunction); 10] = [
            (c"newproto", lnewproto),
            (c"deleteproto", ldeleteproto),
            (c"dumpproto", ldumpproto),
            (c"querytype", lquerytype),
            (c"decode", ldecode),
            (c"protocol", lprotocol),
            (c"default", ldefault),
            (c"saveproto", lsaveproto),
            (c"loadproto", lloadproto),
            (c"parse", lparse),
        ];
        let buffered: [(&CStr, ffi::lua_CFunction); 3] =
            [(c"encode", lencode), (c"pack", lpack), (c"unpack", lunpack)];
        ffi::lua_createtable(L, 0, (plain.len() + buffered.len()) as c_int);
        for (name, f) in plain {
            ffi::lua_pushcfunction(L, f);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
        for (name, f) in buffered {
            push_buffer(L);
            ffi::lua_pushcclosure(L, f, 1);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
        1
    }
}
