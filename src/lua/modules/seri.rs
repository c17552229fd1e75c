//! `skynet.pack` / `skynet.unpack` / `skynet.packstring`: the lua-seri wire format.
//!
//! Values are encoded straight from the Lua stack into a byte buffer and decoded straight
//! back onto the stack; there is no intermediate Rust value tree. The full contract is
//! `docs/spec/seri.md`; in short:
//!
//! * A packed buffer is the concatenation of one encoding per value (no header, no count,
//!   no terminator). Each encoding starts with a type byte `type | cookie << 3`.
//! * Types: 0 nil, 1 boolean (cookie = value), 2 number, 3 light userdata (8-byte pointer),
//!   4 short string (cookie = length < 32), 5 long string (cookie 2 → u16 length,
//!   4 → u32 length), 6 table. Type 7 is invalid.
//! * Number cookies: 0 → integer 0; 1 → u8; 2 → u16; 4 → i32; 6 → i64; 8 → f64.
//!   Writers pick: zero, then i64 if the value does not fit i32, then i32 for negatives,
//!   then u8 / u16 / i32 by magnitude. Floats are always written as f64, even when
//!   integral. Readers accept every width for every value.
//! * Tables: cookie = raw array length `n` (`lua_rawlen`) when `n < 31`, otherwise
//!   cookie 31 followed by `n` as an integer number value; then `t[1..=n]` (raw reads,
//!   nils included), then `key, value` for every other `lua_next` entry, then a nil
//!   terminator. A table whose metatable has `__pairs` is written with array length 0
//!   and the pairs produced by that iterator (called under `lua_pcall`).
//!
//! Invariants and limits:
//!
//! * Byte order and sizes are hard-coded: little-endian, 8-byte pointers, IEEE-754
//!   binary64 — the layout every skynet target uses, so buffers stay compatible with the
//!   C implementation.
//! * Packing: a value nested deeper than [`MAX_DEPTH`] tables is rejected
//!   (`serialize can't pack too depth table`); functions, threads and full userdata are
//!   rejected (`Unsupport type <name> to serialize`); strings longer than `u32::MAX`
//!   bytes are rejected (the C code would silently truncate the length).
//! * Unpacking never trusts a length field: a string or array count larger than the
//!   remaining input is rejected before anything is allocated, nesting is bounded by
//!   [`MAX_UNPACK_DEPTH`] (C recursion depth), and stack space is checked with
//!   `lua_checkstack` for every value and table level. Any malformed input yields
//!   `Invalid serialize stream <remaining bytes> (<reason>)`.
//! * Lua errors are `longjmp`s. The workers (`pack_values`, `unpack_values`) never raise:
//!   metamethods run under `lua_pcall` and failures come back as `Err`. Only the
//!   `extern "C-unwind"` wrappers raise, after every Rust value with a destructor has been
//!   dropped or moved into a `ManuallyDrop`. Allocation failures inside the Lua API can
//!   still `longjmp` through the workers, whose frames hold only references and plain
//!   data (at worst a scratch buffer is leaked).

// `L` is the conventional name for the Lua state in C API code.
#![allow(non_snake_case)]

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::mem::ManuallyDrop;

use crate::lua::ffi::{push_str, raise, raise_owned, type_name_of};
use mlua::ffi::{
    luaL_checkinteger, luaL_getmetafield, lua_State, lua_absindex, lua_checkstack, lua_copy,
    lua_createtable, lua_error, lua_gettop, lua_isinteger, lua_isnoneornil, lua_next, lua_pcall,
    lua_pop, lua_pushboolean, lua_pushinteger, lua_pushlightuserdata, lua_pushnil, lua_pushnumber,
    lua_pushvalue, lua_rawgeti, lua_rawlen, lua_rawset, lua_rawseti, lua_settop, lua_toboolean,
    lua_tointegerx, lua_tolstring, lua_tonumberx, lua_touserdata, lua_type, LUA_MINSTACK, LUA_OK,
    LUA_TBOOLEAN, LUA_TLIGHTUSERDATA, LUA_TNIL, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE,
};

const TYPE_NIL: u8 = 0;
const TYPE_BOOLEAN: u8 = 1;
const TYPE_NUMBER: u8 = 2;
const TYPE_USERDATA: u8 = 3;
const TYPE_SHORT_STRING: u8 = 4;
const TYPE_LONG_STRING: u8 = 5;
const TYPE_TABLE: u8 = 6;

const NUMBER_ZERO: u8 = 0;
const NUMBER_BYTE: u8 = 1;
const NUMBER_WORD: u8 = 2;
const NUMBER_DWORD: u8 = 4;
const NUMBER_QWORD: u8 = 6;
const NUMBER_REAL: u8 = 8;

/// Cookies are 5 bits; the largest one (31) on a table means "size follows".
const MAX_COOKIE: u8 = 32;

/// Deepest table nesting accepted when packing (top-level arguments are at depth 0).
pub const MAX_DEPTH: u32 = 32;

/// Deepest table nesting accepted when unpacking. Compliant packers never exceed
/// `MAX_DEPTH + 1` levels; the bound only keeps hostile input from exhausting the C stack.
pub const MAX_UNPACK_DEPTH: u32 = 128;

/// Scratch buffers above this capacity are released after use instead of being kept.
const KEEP_BUFFER_CAPACITY: usize = 1 << 20;

#[inline(always)]
const fn combine(t: u8, cookie: u8) -> u8 {
    t | (cookie << 3)
}

// ---------------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------------

/// Why packing stopped.
enum PackError {
    /// A message to raise.
    Msg(String),
    /// A metamethod raised; its error object is on top of the Lua stack.
    Raised,
}

type PackResult = Result<(), PackError>;

#[inline]
fn write_integer(out: &mut Vec<u8>, v: i64) {
    if v == 0 {
        out.push(combine(TYPE_NUMBER, NUMBER_ZERO));
    } else if v != i64::from(v as i32) {
        out.push(combine(TYPE_NUMBER, NUMBER_QWORD));
        out.extend_from_slice(&v.to_le_bytes());
    } else if v < 0 {
        out.push(combine(TYPE_NUMBER, NUMBER_DWORD));
        out.extend_from_slice(&(v as i32).to_le_bytes());
    } else if v < 0x100 {
        out.extend_from_slice(&[combine(TYPE_NUMBER, NUMBER_BYTE), v as u8]);
    } else if v < 0x10000 {
        out.push(combine(TYPE_NUMBER, NUMBER_WORD));
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else {
        out.push(combine(TYPE_NUMBER, NUMBER_DWORD));
        out.extend_from_slice(&(v as i32).to_le_bytes());
    }
}

#[inline]
fn write_string(out: &mut Vec<u8>, s: &[u8]) -> PackResult {
    let len = s.len();
    if len < MAX_COOKIE as usize {
        out.reserve(len + 1);
        out.push(combine(TYPE_SHORT_STRING, len as u8));
    } else if len < 0x10000 {
        out.reserve(len + 3);
        out.push(combine(TYPE_LONG_STRING, 2));
        out.extend_from_slice(&(len as u16).to_le_bytes());
    } else if let Ok(len32) = u32::try_from(len) {
        out.reserve(len + 5);
        out.push(combine(TYPE_LONG_STRING, 4));
        out.extend_from_slice(&len32.to_le_bytes());
    } else {
        return Err(PackError::Msg("string too long to serialize".to_owned()));
    }
    out.extend_from_slice(s);
    Ok(())
}

/// Encode the value at absolute index `idx`, which sits at table depth `depth`.
unsafe fn pack_one(L: *mut lua_State, out: &mut Vec<u8>, idx: c_int, depth: u32) -> PackResult {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        if depth > MAX_DEPTH {
            return Err(PackError::Msg(
                "serialize can't pack too depth table".to_owned(),
            ));
        }
        match lua_type(L, idx) {
            LUA_TNIL => out.push(TYPE_NIL),
            LUA_TBOOLEAN => out.push(combine(TYPE_BOOLEAN, (lua_toboolean(L, idx) != 0) as u8)),
            LUA_TNUMBER => {
                if lua_isinteger(L, idx) != 0 {
                    write_integer(out, lua_tointegerx(L, idx, std::ptr::null_mut()));
                } else {
                    let v = lua_tonumberx(L, idx, std::ptr::null_mut());
                    out.push(combine(TYPE_NUMBER, NUMBER_REAL));
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            LUA_TSTRING => {
                let mut len = 0usize;
                // The value is a real string, so this never converts anything in place.
                let p = lua_tolstring(L, idx, &mut len) as *const u8;
                write_string(out, std::slice::from_raw_parts(p, len))?;
            }
            LUA_TLIGHTUSERDATA => {
                let p = lua_touserdata(L, idx) as usize as u64;
                out.push(combine(TYPE_USERDATA, 0));
                out.extend_from_slice(&p.to_le_bytes());
            }
            LUA_TTABLE => pack_table(L, out, idx, depth)?,
            t => {
                return Err(PackError::Msg(format!(
                    "Unsupport type {} to serialize",
                    type_name_of(L, t)
                )))
            }
        }
        Ok(())
    }
}

unsafe fn pack_table(L: *mut lua_State, out: &mut Vec<u8>, idx: c_int, depth: u32) -> PackResult {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        if lua_checkstack(L, LUA_MINSTACK) == 0 {
            return Err(PackError::Msg("out of memory".to_owned()));
        }
        if luaL_getmetafield(L, idx, c"__pairs".as_ptr()) != LUA_TNIL {
            // The metamethod is on top of the stack.
            return pack_table_metapairs(L, out, idx, depth);
        }
        let n = lua_rawlen(L, idx);
        if n < (MAX_COOKIE - 1) as usize {
            out.push(combine(TYPE_TABLE, n as u8));
        } else {
            out.push(combine(TYPE_TABLE, MAX_COOKIE - 1));
            write_integer(out, n as i64);
        }
        for i in 1..=n {
            lua_rawgeti(L, idx, i as i64);
            pack_one(L, out, lua_gettop(L), depth + 1)?;
            lua_pop(L, 1);
        }
        lua_pushnil(L);
        while lua_next(L, idx) != 0 {
            // Stack: ... key value
            if lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2) != 0 {
                let k = lua_tointegerx(L, -2, std::ptr::null_mut());
                if k > 0 && k as u64 <= n as u64 {
                    lua_pop(L, 1);
                    continue;
                }
            }
            let top = lua_gettop(L);
            pack_one(L, out, top - 1, depth + 1)?;
            pack_one(L, out, top, depth + 1)?;
            lua_pop(L, 1);
        }
        out.push(TYPE_NIL);
        Ok(())
    }
}

/// The `__pairs` metamethod of the table at `idx` is on top of the stack.
unsafe fn pack_table_metapairs(
    L: *mut lua_State,
    out: &mut Vec<u8>,
    idx: c_int,
    depth: u32,
) -> PackResult {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        out.push(combine(TYPE_TABLE, 0));
        lua_pushvalue(L, idx);
        if lua_pcall(L, 1, 3, 0) != LUA_OK {
            return Err(PackError::Raised);
        }
        // Stack: ... iterator state control
        let iter = lua_gettop(L) - 2;
        loop {
            lua_pushvalue(L, iter);
            lua_pushvalue(L, iter + 1);
            lua_pushvalue(L, iter + 2);
            if lua_pcall(L, 2, 2, 0) != LUA_OK {
                return Err(PackError::Raised);
            }
            let top = lua_gettop(L);
            if lua_type(L, top - 1) == LUA_TNIL {
                lua_pop(L, 2);
                break;
            }
            pack_one(L, out, top - 1, depth + 1)?;
            pack_one(L, out, top, depth + 1)?;
            lua_copy(L, top - 1, iter + 2);
            lua_pop(L, 2);
        }
        lua_pop(L, 3);
        out.push(TYPE_NIL);
        Ok(())
    }
}

unsafe fn pack_range(L: *mut lua_State, from: c_int, to: c_int, out: &mut Vec<u8>) -> PackResult {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        for idx in from..=to {
            pack_one(L, out, idx, 0)?;
        }
        Ok(())
    }
}

/// Describe the error object at `idx` without running any metamethod.
unsafe fn error_object_string(L: *mut lua_State, idx: c_int) -> String {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match lua_type(L, idx) {
            LUA_TSTRING | LUA_TNUMBER => {
                lua_pushvalue(L, idx);
                let mut len = 0usize;
                let p = lua_tolstring(L, -1, &mut len) as *const u8;
                let s = String::from_utf8_lossy(std::slice::from_raw_parts(p, len)).into_owned();
                lua_pop(L, 1);
                s
            }
            t => format!("(error object is a {} value)", type_name_of(L, t)),
        }
    }
}

/// Encode stack slots `from..=to` (absolute indices), appending to `out`.
///
/// Never raises a Lua error for serialization failures or failing `__pairs` metamethods:
/// those come back as `Err` (a metamethod's error object is converted to text without
/// calling `__tostring`) and the stack is restored to its height on entry.
///
/// # Safety
/// `L` must be a valid Lua state and `from..=to` valid stack slots.
pub unsafe fn pack_values(
    L: *mut lua_State,
    from: c_int,
    to: c_int,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: the `# Safety` contract above covers every call below.
    unsafe {
        let top = lua_gettop(L);
        // Negative (top-relative) indices are accepted too; 0 stays 0 (empty range `1..=0`).
        let abs = |i: c_int| if i < 0 { lua_absindex(L, i) } else { i };
        let (from, to) = (abs(from), abs(to));
        match pack_range(L, from, to, out) {
            Ok(()) => Ok(()),
            Err(PackError::Msg(m)) => {
                lua_settop(L, top);
                Err(m)
            }
            Err(PackError::Raised) => {
                let m = error_object_string(L, -1);
                lua_settop(L, top);
                Err(m)
            }
        }
    }
}

thread_local! {
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Borrow this thread's scratch buffer (empty). Held in `ManuallyDrop` so that a stray
/// `longjmp` merely leaks it; nested packs (from a `__pairs` metamethod) get a fresh one.
fn take_scratch() -> ManuallyDrop<Vec<u8>> {
    let mut v = SCRATCH.try_with(Cell::take).unwrap_or_default();
    v.clear();
    if v.capacity() == 0 {
        v.reserve(256);
    }
    ManuallyDrop::new(v)
}

fn return_scratch(buf: ManuallyDrop<Vec<u8>>) {
    let mut v = ManuallyDrop::into_inner(buf);
    if v.capacity() <= KEEP_BUFFER_CAPACITY {
        v.clear();
        let _ = SCRATCH.try_with(|c| c.set(v));
    }
}

/// Raise a packing error; for `Raised` the error object is already on top.
unsafe fn raise_pack_error(L: *mut lua_State, e: PackError) -> ! {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        match e {
            PackError::Msg(m) => raise_owned(L, m),
            PackError::Raised => lua_error(L),
        }
    }
}

/// `skynet.pack(...)` → `lightuserdata, size`: a `payload_alloc` block owned by the caller
/// (freed with libc `free`).
///
/// # Safety
/// Lua C function; call only through Lua.
pub unsafe extern "C-unwind" fn l_pack(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let n = lua_gettop(L);
        let mut buf = take_scratch();
        let r = pack_range(L, 1, n, &mut buf);
        match r {
            Ok(()) => {
                let len = buf.len();
                let p = crate::message::payload_alloc(len);
                std::ptr::copy_nonoverlapping(buf.as_ptr(), p, len);
                return_scratch(buf);
                lua_pushlightuserdata(L, p as *mut c_void);
                lua_pushinteger(L, len as i64);
                2
            }
            Err(e) => {
                return_scratch(buf);
                raise_pack_error(L, e)
            }
        }
    }
}

/// `skynet.packstring(...)` → the packed bytes as a Lua string.
///
/// # Safety
/// Lua C function; call only through Lua.
pub unsafe extern "C-unwind" fn l_packstring(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        let n = lua_gettop(L);
        let mut buf = take_scratch();
        let r = pack_range(L, 1, n, &mut buf);
        match r {
            Ok(()) => {
                push_str(L, buf.as_slice());
                return_scratch(buf);
                1
            }
            Err(e) => {
                return_scratch(buf);
                raise_pack_error(L, e)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Unpacking
// ---------------------------------------------------------------------------------------

/// Why unpacking stopped; the message is built once, at the outermost level.
enum ReadError {
    /// Malformed input (`Invalid serialize stream`), with a short reason.
    Invalid(&'static str),
    /// Any other failure, reported verbatim.
    Other(&'static str),
}

type ReadResult<T> = Result<T, ReadError>;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    #[inline(always)]
    fn byte(&mut self) -> ReadResult<u8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(ReadError::Invalid("truncated")),
        }
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> ReadResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(ReadError::Invalid("truncated"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> ReadResult<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// The payload of an integer number whose type byte had `cookie`.
    #[inline]
    fn integer(&mut self, cookie: u8) -> ReadResult<i64> {
        Ok(match cookie {
            NUMBER_ZERO => 0,
            NUMBER_BYTE => i64::from(self.byte()?),
            NUMBER_WORD => i64::from(u16::from_le_bytes(self.array()?)),
            NUMBER_DWORD => i64::from(i32::from_le_bytes(self.array()?)),
            NUMBER_QWORD => i64::from_le_bytes(self.array()?),
            _ => return Err(ReadError::Invalid("bad number type")),
        })
    }
}

/// Decode one value and push it (the caller guarantees one free stack slot).
unsafe fn push_value(L: *mut lua_State, r: &mut Reader<'_>, depth: u32) -> ReadResult<()> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        let b = r.byte()?;
        let cookie = b >> 3;
        match b & 7 {
            TYPE_NIL => lua_pushnil(L),
            TYPE_BOOLEAN => lua_pushboolean(L, (cookie != 0) as c_int),
            TYPE_NUMBER => {
                if cookie == NUMBER_REAL {
                    lua_pushnumber(L, f64::from_le_bytes(r.array()?));
                } else {
                    lua_pushinteger(L, r.integer(cookie)?);
                }
            }
            TYPE_USERDATA => {
                let p = u64::from_le_bytes(r.array()?) as usize;
                lua_pushlightuserdata(L, p as *mut c_void);
            }
            TYPE_SHORT_STRING => {
                let s = r.take(cookie as usize)?;
                push_str(L, s);
            }
            TYPE_LONG_STRING => {
                let len = match cookie {
                    2 => usize::from(u16::from_le_bytes(r.array()?)),
                    4 => u32::from_le_bytes(r.array()?) as usize,
                    _ => return Err(ReadError::Invalid("bad long string length size")),
                };
                let s = r.take(len)?;
                push_str(L, s);
            }
            TYPE_TABLE => push_table(L, r, cookie, depth)?,
            _ => return Err(ReadError::Invalid("bad type")),
        }
        Ok(())
    }
}

unsafe fn push_table(
    L: *mut lua_State,
    r: &mut Reader<'_>,
    cookie: u8,
    depth: u32,
) -> ReadResult<()> {
    // SAFETY: `L` is a valid state used by this thread (this helper's contract).
    unsafe {
        if depth >= MAX_UNPACK_DEPTH {
            return Err(ReadError::Invalid("table nested too deep"));
        }
        // The table, a key and a value, plus room for the caller's slots.
        if lua_checkstack(L, LUA_MINSTACK) == 0 {
            return Err(ReadError::Other("stack overflow (table nested too deep)"));
        }
        let n = if cookie == MAX_COOKIE - 1 {
            let b = r.byte()?;
            let sub = b >> 3;
            if b & 7 != TYPE_NUMBER || sub == NUMBER_REAL {
                return Err(ReadError::Invalid("bad array size"));
            }
            r.integer(sub)?
        } else {
            i64::from(cookie)
        };
        // Every array item takes at least one byte, so a count beyond the remaining input is
        // malformed; rejecting it first keeps a hostile count from sizing the allocation.
        if n < 0 || n as u64 > r.remaining() as u64 || n > i64::from(c_int::MAX) {
            return Err(ReadError::Invalid("bad array size"));
        }
        lua_createtable(L, n as c_int, 0);
        for i in 1..=n {
            push_value(L, r, depth + 1)?;
            lua_rawseti(L, -2, i);
        }
        loop {
            match r.data.get(r.pos) {
                None => return Err(ReadError::Invalid("unterminated table")),
                Some(&k) if k & 7 == TYPE_NIL => {
                    r.pos += 1;
                    break;
                }
                Some(&k) => {
                    push_value(L, r, depth + 1)?;
                    if k == combine(TYPE_NUMBER, NUMBER_REAL)
                        && lua_tonumberx(L, -1, std::ptr::null_mut()).is_nan()
                    {
                        return Err(ReadError::Other("table index is NaN"));
                    }
                    push_value(L, r, depth + 1)?;
                    lua_rawset(L, -3);
                }
            }
        }
        Ok(())
    }
}

/// Decode every value in `data` and push them in order; returns how many were pushed.
///
/// Malformed input gives `Err("Invalid serialize stream <remaining> (<reason>)")`, a NaN
/// table key gives `Err("table index is NaN")`, and running out of Lua stack (about a
/// million values) gives a `stack overflow` error. On error the stack is restored to its
/// height on entry. Never raises for malformed input.
///
/// # Safety
/// `L` must be a valid Lua state. `data` must stay valid for the duration of the call.
pub unsafe fn unpack_values(L: *mut lua_State, data: &[u8]) -> Result<c_int, String> {
    // SAFETY: the `# Safety` contract above covers every call below.
    unsafe {
        let top = lua_gettop(L);
        let mut r = Reader { data, pos: 0 };
        let mut count: c_int = 0;
        let mut result = Ok(());
        while r.pos < data.len() {
            if lua_checkstack(L, LUA_MINSTACK) == 0 {
                result = Err(ReadError::Other(
                    "stack overflow (too many values to unpack)",
                ));
                break;
            }
            if let Err(e) = push_value(L, &mut r, 0) {
                result = Err(e);
                break;
            }
            count += 1;
        }
        match result {
            Ok(()) => Ok(count),
            Err(e) => {
                lua_settop(L, top);
                Err(match e {
                    ReadError::Invalid(why) => {
                        format!("Invalid serialize stream {} ({})", r.remaining(), why)
                    }
                    ReadError::Other(m) => m.to_owned(),
                })
            }
        }
    }
}

/// `skynet.unpack(msg, sz)` or `skynet.unpack(string)` → every packed value.
///
/// `nil` (or no argument) and an empty input give no values; a NULL pointer with a
/// non-zero size raises `deserialize null pointer`. The buffer is not freed.
///
/// # Safety
/// Lua C function; call only through Lua. A pointer argument must address `sz` bytes.
pub unsafe extern "C-unwind" fn l_unpack(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function with a valid `L`, on the thread running it.
    unsafe {
        if lua_isnoneornil(L, 1) != 0 {
            return 0;
        }
        let (ptr, len) = if lua_type(L, 1) == LUA_TSTRING {
            let mut len = 0usize;
            (lua_tolstring(L, 1, &mut len) as *const u8, len)
        } else {
            let ptr = lua_touserdata(L, 1) as *const u8;
            let sz = luaL_checkinteger(L, 2);
            if sz < 0 {
                raise(L, "deserialize invalid size");
            }
            (ptr, sz as usize)
        };
        if len == 0 {
            return 0;
        }
        if ptr.is_null() {
            raise(L, "deserialize null pointer");
        }
        // Keep only the input (a string stays anchored at index 1 while we read it).
        lua_settop(L, 1);
        let data = std::slice::from_raw_parts(ptr, len);
        match unpack_values(L, data) {
            Ok(n) => n,
            Err(m) => raise_owned(L, m),
        }
    }
}
