//! `bson`: BSON documents for `skynet.db.mongo`, with upstream's function set, value
//! conventions and bytes.
//!
//! Functions: `encode(t)`, `encode_order(k1, v1, k2, v2, ...)`, `decode(doc)`,
//! `date(sec)`, `timestamp(t[, inc])`, `regex(pattern[, flags])`, `binary(s)`,
//! `objectid([hex])`, `int64(n)`, `to_lightuserdata(doc)`, `type(v)`, and the constants
//! `null`, `minkey`, `maxkey`. An encoded document is a full userdata (metatable
//! `bson`: `doc:decode()`, `tostring(doc)` for its bytes, `#doc` for its size,
//! `doc:makeindex()` then `doc[key] = v` to overwrite a top-level number, boolean,
//! objectid, date or timestamp in place).
//!
//! Values without a Lua counterpart are strings starting with `"\0"` and a BSON type
//! byte, as upstream: `"\0\5" .. subtype .. data` (binary), `"\0\7" .. 12 bytes`
//! (objectid), `"\0\9" .. u32 seconds` (date), `"\0\17" .. u32 inc .. u32 time`
//! (timestamp), `"\0\11" .. pattern .. "\0" .. flags .. "\0"` (regex), `"\0\18" .. i64`
//! (int64), `"\0\10"`, `"\0\255"`, `"\0\127"` (null, minkey, maxkey). Little-endian.
//!
//! Differences from upstream, all on input upstream mishandles: a full userdata whose
//! length header exceeds its size, a negative length, an empty binary or a regex
//! without its separator raise a Lua error instead of reading out of bounds; decoding
//! stops at [`MAX_DECODE_DEPTH`] nested documents.
//!
//! # Invariants
//!
//! * Encoding builds a `Vec` owned by the calling frame and runs the table walk under
//!   [`protected`], so a raise (bad value, metamethod error, memory) unwinds to that
//!   pcall only; the `Vec` is dropped before the error is re-raised.
//! * Decoding and the constructors own nothing with a destructor while they call
//!   raising Lua API functions; error texts go through [`raise_string`].

#![allow(non_snake_case)]

use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use mlua::ffi::{self, lua_State};

use crate::lua::ffi::{new_lib, protected, push_str, raise, raise_string, reraise, to_bytes};

const REAL: u8 = 1;
const STRING: u8 = 2;
const DOCUMENT: u8 = 3;
const ARRAY: u8 = 4;
const BINARY: u8 = 5;
const OBJECTID: u8 = 7;
const BOOLEAN: u8 = 8;
const DATE: u8 = 9;
const NULL: u8 = 10;
const REGEX: u8 = 11;
const DBPOINTER: u8 = 12;
const JSCODE: u8 = 13;
const SYMBOL: u8 = 14;
const CODEWS: u8 = 15;
const INT32: u8 = 16;
const TIMESTAMP: u8 = 17;
const INT64: u8 = 18;
const MINKEY: u8 = 255;
const MAXKEY: u8 = 127;

/// Deepest table nesting `encode` accepts (upstream's guard against cycles).
const MAX_DEPTH: c_int = 128;
/// Deepest document nesting `decode` accepts (bounds the native recursion).
pub const MAX_DECODE_DEPTH: usize = 1000;

const META: &CStr = c"bson";

// ---------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------

/// Whether `s` is valid UTF-8 by upstream's rules: no overlong forms, nothing above
/// U+10FFFF; surrogate code points are accepted.
fn utf8_ok(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let (n, min, init) = match c {
            0x00..=0x7f => {
                i += 1;
                continue;
            }
            0xc0..=0xdf => (1, 0x80u32, u32::from(c & 0x1f)),
            0xe0..=0xef => (2, 0x800, u32::from(c & 0x0f)),
            0xf0..=0xf7 => (3, 0x10000, u32::from(c & 0x07)),
            _ => return false,
        };
        let mut cp = init;
        for k in 1..=n {
            match s.get(i + k) {
                Some(&b) if b & 0xc0 == 0x80 => cp = cp << 6 | u32::from(b & 0x3f),
                _ => return false,
            }
        }
        if cp < min || cp > 0x10_ffff {
            return false;
        }
        i += n + 1;
    }
    true
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Appends a NUL-terminated string after checking its UTF-8.
unsafe fn put_cstr(L: *mut lua_State, out: &mut Vec<u8>, s: &[u8]) {
    if !utf8_ok(s) {
        // SAFETY: `L` is the state of the protected encode body.
        unsafe { raise(L, "Invalid utf8 string") }
    }
    out.extend_from_slice(s);
    out.push(0);
}

/// Reserves a length slot; returns its offset.
fn open_len(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Fills a length slot with the bytes written since it was opened (itself included).
fn close_len(out: &mut [u8], at: usize) {
    let n = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

unsafe fn put_key(L: *mut lua_State, out: &mut Vec<u8>, t: u8, key: &[u8]) {
    out.push(t);
    // SAFETY: as the caller's.
    unsafe { put_cstr(L, out, key) }
}

/// The text of a Lua string up to its first NUL (for error messages).
fn shown(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Appends the value on the stack top under `key`.
unsafe fn append_one(L: *mut lua_State, out: &mut Vec<u8>, key: &[u8], depth: c_int) {
    // SAFETY: `L` is the state of the protected encode body, the value at -1; string
    // slices borrow values that stay on the stack while they are used.
    unsafe {
        match ffi::lua_type(L, -1) {
            ffi::LUA_TNUMBER => {
                if ffi::lua_isinteger(L, -1) != 0 {
                    let i = ffi::lua_tointeger(L, -1);
                    if let Ok(v) = i32::try_from(i) {
                        put_key(L, out, INT32, key);
                        out.extend_from_slice(&v.to_le_bytes());
                    } else {
                        put_key(L, out, INT64, key);
                        out.extend_from_slice(&i.to_le_bytes());
                    }
                } else {
                    let d = ffi::lua_tonumber(L, -1);
                    put_key(L, out, REAL, key);
                    out.extend_from_slice(&d.to_le_bytes());
                }
            }
            ffi::LUA_TLIGHTUSERDATA | ffi::LUA_TUSERDATA => {
                put_key(L, out, DOCUMENT, key);
                let doc = doc_bytes(L, -1).unwrap_or_default();
                if doc.len() < 5 {
                    raise(L, "Invalid bson document");
                }
                out.extend_from_slice(doc);
            }
            ffi::LUA_TSTRING => {
                let s = to_bytes(L, -1).unwrap_or_default();
                if s.len() > 1 && s[0] == 0 {
                    append_special(L, out, key, s[1], &s[2..]);
                } else {
                    put_key(L, out, STRING, key);
                    let at = open_len(out);
                    put_cstr(L, out, s);
                    let n = (s.len() + 1) as u32;
                    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
                }
            }
            ffi::LUA_TTABLE => append_table(L, out, key, depth + 1),
            ffi::LUA_TBOOLEAN => {
                put_key(L, out, BOOLEAN, key);
                out.push(ffi::lua_toboolean(L, -1) as u8);
            }
            ffi::LUA_TNIL => raise(L, "Bson array has a hole (nil), Use bson.null instead"),
            t => raise_string(
                L,
                format!(
                    "Invalid value type : {}",
                    crate::lua::ffi::type_name_of(L, t)
                ),
            ),
        }
    }
}

/// Appends a `"\0" .. type .. body` string value.
unsafe fn append_special(L: *mut lua_State, out: &mut Vec<u8>, key: &[u8], t: u8, body: &[u8]) {
    // SAFETY: as `append_one`.
    unsafe {
        put_key(L, out, t, key);
        match t {
            BINARY => {
                // body = subtype .. data; the length excludes the subtype.
                if body.is_empty() {
                    raise(L, "Invalid binary");
                }
                out.extend_from_slice(&((body.len() - 1) as u32).to_le_bytes());
                out.extend_from_slice(body);
            }
            OBJECTID | JSCODE | DBPOINTER | SYMBOL | CODEWS => {
                if t == OBJECTID && body.len() != 12 {
                    raise_string(L, format!("Invalid object id {}", shown(body)));
                }
                out.extend_from_slice(body);
            }
            DATE => {
                if body.len() != 4 {
                    raise(L, "Invalid date");
                }
                let ms = i64::from(le32(body)) * 1000;
                out.extend_from_slice(&ms.to_le_bytes());
            }
            TIMESTAMP => {
                if body.len() != 8 {
                    raise(L, "Invalid timestamp");
                }
                out.extend_from_slice(body);
            }
            REGEX => {
                // body = pattern .. "\0" .. flags .. "\0"; the pattern ends at the last
                // NUL before the final one.
                let Some(inner) = body.len().checked_sub(1).map(|n| &body[..n]) else {
                    raise(L, "Invalid regex");
                };
                let Some(sep) = inner.iter().rposition(|&c| c == 0) else {
                    raise(L, "Invalid regex");
                };
                put_cstr(L, out, &inner[..sep]);
                put_cstr(L, out, &inner[sep + 1..]);
            }
            MINKEY | MAXKEY | NULL => {}
            INT64 => {
                if body.len() != 8 {
                    raise(L, "Invalid int64");
                }
                out.extend_from_slice(body);
            }
            _ => raise_string(L, format!("Invalid subtype {t}")),
        }
    }
}

/// Appends elements `1..=len` of the table on the stack top as an array body.
unsafe fn pack_array(L: *mut lua_State, out: &mut Vec<u8>, depth: c_int, len: i64) {
    let at = open_len(out);
    let mut key = itoa_buf();
    for i in 1..=len {
        let k = itoa(&mut key, (i - 1) as u64);
        // SAFETY: as `append_one`; the table is at -1 before the push.
        unsafe {
            ffi::lua_geti(L, -1, i);
            append_one(L, out, k, depth);
            ffi::lua_pop(L, 1);
        }
    }
    out.push(0);
    close_len(out, at);
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

fn itoa(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends the pair at (-2 key, -1 value) and pops the value.
unsafe fn pack_pair(L: *mut lua_State, out: &mut Vec<u8>, depth: c_int) {
    // SAFETY: as `append_one`; the key stays on the stack while its bytes are used.
    unsafe {
        match ffi::lua_type(L, -2) {
            ffi::LUA_TNUMBER => raise(L, "Bson dictionary's key can't be number"),
            ffi::LUA_TSTRING => {
                let key = to_bytes(L, -2).unwrap_or_default();
                append_one(L, out, key, depth);
                ffi::lua_pop(L, 1);
            }
            t => raise_string(
                L,
                format!("Invalid key type : {}", crate::lua::ffi::type_name_of(L, t)),
            ),
        }
    }
}

/// Appends the table on the stack top as a document body, in `next` order.
unsafe fn pack_simple_dict(L: *mut lua_State, out: &mut Vec<u8>, depth: c_int) {
    let at = open_len(out);
    // SAFETY: as `append_one`; the table is at -1.
    unsafe {
        ffi::lua_pushnil(L);
        while ffi::lua_next(L, -2) != 0 {
            pack_pair(L, out, depth);
        }
    }
    out.push(0);
    close_len(out, at);
}

/// Appends the object at -2 as a document body through its `__pairs` (at -1, popped).
unsafe fn pack_meta_dict(L: *mut lua_State, out: &mut Vec<u8>, depth: c_int) {
    let at = open_len(out);
    // SAFETY: as `append_one`; stack: obj, __pairs.
    unsafe {
        ffi::lua_pushvalue(L, -2);
        ffi::lua_call(L, 1, 3); // obj, f, s, k
        loop {
            ffi::lua_pushvalue(L, -3);
            ffi::lua_pushvalue(L, -3);
            ffi::lua_pushvalue(L, -3);
            ffi::lua_call(L, 2, 2); // obj, f, s, k, k', v
            if ffi::lua_type(L, -2) == ffi::LUA_TNIL {
                ffi::lua_pop(L, 5);
                break;
            }
            pack_pair(L, out, depth); // obj, f, s, k, k'
            ffi::lua_remove(L, -2);
        }
    }
    out.push(0);
    close_len(out, at);
}

/// Whether the table on the stack top encodes as an array (upstream's test: its first
/// `next` key is 1, or an integer within the border).
unsafe fn is_rawarray(L: *mut lua_State) -> bool {
    // SAFETY: as `append_one`; the table is at -1.
    unsafe {
        ffi::lua_pushnil(L);
        if ffi::lua_next(L, -2) == 0 {
            return false;
        }
        let first = if ffi::lua_isinteger(L, -2) != 0 {
            ffi::lua_tointeger(L, -2)
        } else {
            0
        };
        ffi::lua_pop(L, 2);
        if first <= 1 {
            first > 0
        } else {
            first as u64 <= ffi::lua_rawlen(L, -1) as u64
        }
    }
}

/// Appends the table on the stack top under `key`, as an array or a document.
unsafe fn append_table(L: *mut lua_State, out: &mut Vec<u8>, key: &[u8], depth: c_int) {
    // SAFETY: as `append_one`; the table is at -1.
    unsafe {
        if depth > MAX_DEPTH {
            raise(L, "Too depth while encoding bson");
        }
        ffi::luaL_checkstack(L, 16, std::ptr::null());
        if ffi::luaL_getmetafield(L, -1, c"__len".as_ptr()) != ffi::LUA_TNIL {
            ffi::lua_pushvalue(L, -2);
            ffi::lua_call(L, 1, 1);
            if ffi::lua_isinteger(L, -1) == 0 {
                raise(L, "__len should return integer");
            }
            let len = ffi::lua_tointeger(L, -1);
            ffi::lua_pop(L, 1);
            put_key(L, out, ARRAY, key);
            pack_array(L, out, depth, len);
        } else if ffi::luaL_getmetafield(L, -1, c"__pairs".as_ptr()) != ffi::LUA_TNIL {
            put_key(L, out, DOCUMENT, key);
            pack_meta_dict(L, out, depth);
        } else if is_rawarray(L) {
            put_key(L, out, ARRAY, key);
            pack_array(L, out, depth, ffi::lua_rawlen(L, -1) as i64);
        } else {
            put_key(L, out, DOCUMENT, key);
            pack_simple_dict(L, out, depth);
        }
    }
}

/// Pushes `bytes` as a new `bson` document userdata (inside the protected body).
unsafe fn push_doc(L: *mut lua_State, bytes: &[u8]) {
    // SAFETY: `L` is valid; the userdata has room for `bytes`.
    unsafe {
        let p = ffi::lua_newuserdatauv(L, bytes.len(), 1) as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
    }
}

/// Runs `body` (which encodes into the buffer and pushes the document) protected, then
/// sets the document's metatable.
unsafe fn encode_with(
    L: *mut lua_State,
    nargs: c_int,
    body: &mut dyn FnMut(*mut lua_State, &mut Vec<u8>),
) -> c_int {
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    // SAFETY: `L` is valid with `nargs` arguments on the stack; the body borrows `buf`
    // from this frame, which outlives the protected call.
    let r = unsafe {
        protected(L, nargs, &mut |L| {
            body(L, &mut buf);
            1
        })
    };
    drop(buf);
    // SAFETY: nothing with a destructor is alive any more.
    unsafe {
        if r.is_err() {
            reraise(L);
        }
        set_meta(L);
    }
    1
}

unsafe extern "C-unwind" fn l_encode(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        ffi::lua_settop(L, 1);
        ffi::luaL_checktype(L, 1, ffi::LUA_TTABLE);
        encode_with(L, 1, &mut |L, out| {
            if ffi::luaL_getmetafield(L, 1, c"__pairs".as_ptr()) != ffi::LUA_TNIL {
                pack_meta_dict(L, out, 0);
            } else {
                pack_simple_dict(L, out, 0);
            }
            push_doc(L, out);
        })
    }
}

unsafe extern "C-unwind" fn l_encode_order(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        let n = ffi::lua_gettop(L);
        if n % 2 != 0 {
            raise(L, "Invalid ordered dict");
        }
        encode_with(L, n, &mut |L, out| {
            let at = open_len(out);
            for i in (1..=n).step_by(2) {
                let Some(key) = to_bytes(L, i) else {
                    raise_string(L, format!("Argument {i} need a string"));
                };
                ffi::lua_pushvalue(L, i + 1);
                append_one(L, out, key, 0);
                ffi::lua_pop(L, 1);
            }
            out.push(0);
            close_len(out, at);
            push_doc(L, out);
        })
    }
}

// ---------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------

/// A cursor over document bytes; every read is bounds-checked and raises on overrun.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    unsafe fn need(&self, L: *mut lua_State, n: i64) {
        if n < 0 || (self.b.len() as i64) < n {
            // SAFETY: `L` is the decoding call's state.
            unsafe { raise_string(L, format!("Invalid bson block ({}:{})", self.b.len(), n)) }
        }
    }
    unsafe fn bytes(&mut self, L: *mut lua_State, n: i64) -> &'a [u8] {
        // SAFETY: as `need`.
        unsafe { self.need(L, n) };
        let (h, t) = self.b.split_at(n as usize);
        self.b = t;
        h
    }
    unsafe fn byte(&mut self, L: *mut lua_State) -> u8 {
        // SAFETY: as `need`.
        unsafe { self.bytes(L, 1)[0] }
    }
    unsafe fn i32(&mut self, L: *mut lua_State) -> i32 {
        // SAFETY: as `need`.
        le32(unsafe { self.bytes(L, 4) }) as i32
    }
    unsafe fn i64(&mut self, L: *mut lua_State) -> i64 {
        // SAFETY: as `need`.
        let b = unsafe { self.bytes(L, 8) };
        i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
    }
    unsafe fn cstr(&mut self, L: *mut lua_State) -> &'a [u8] {
        let Some(n) = self.b.iter().position(|&c| c == 0) else {
            // SAFETY: as `need`.
            unsafe { raise(L, "Invalid bson block : cstring") }
        };
        let s = &self.b[..n];
        self.b = &self.b[n + 1..];
        s
    }
}

/// `strtol(key, NULL, 10)`: optional blanks and sign, then digits; 0 if none.
fn strtol(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && (s[i] == b' ' || (b'\t'..=b'\r').contains(&s[i])) {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        i += 1;
    }
    if neg {
        -v
    } else {
        v
    }
}

/// Pushes `"\0" .. t .. parts...` (one Lua string).
unsafe fn push_special(L: *mut lua_State, t: u8, parts: &[&[u8]]) {
    // SAFETY: `L` is valid; the buffer lives on the Lua stack while it is built.
    unsafe {
        let mut b: ffi::luaL_Buffer = std::mem::zeroed();
        ffi::luaL_buffinit(L, &mut b);
        ffi::luaL_addlstring(&mut b, [0u8, t].as_ptr() as *const c_char, 2);
        for p in parts {
            ffi::luaL_addlstring(&mut b, p.as_ptr() as *const c_char, p.len());
        }
        ffi::luaL_pushresult(&mut b);
    }
}

/// Reads one document (length, elements, terminator) and pushes it as a table.
unsafe fn unpack_dict(L: *mut lua_State, r: &mut Reader, array: bool, depth: usize) {
    // SAFETY: `L` is the decoding call's state; the bytes outlive the call.
    unsafe {
        if depth > MAX_DECODE_DEPTH {
            raise(L, "Too depth while decoding bson");
        }
        ffi::luaL_checkstack(L, 16, std::ptr::null());
        let sz = r.i32(L);
        let body = r.bytes(L, i64::from(sz) - 5);
        if r.byte(L) != 0 {
            raise(L, "Invalid document end");
        }
        let mut t = Reader { b: body };
        ffi::lua_createtable(L, 0, 0);
        while !t.b.is_empty() {
            let bt = t.byte(L);
            let key = t.cstr(L);
            if array {
                ffi::lua_pushinteger(L, i64::from((strtol(key) as i32).wrapping_add(1)));
            } else {
                push_str(L, key);
            }
            match bt {
                REAL => ffi::lua_pushnumber(L, f64::from_bits(t.i64(L) as u64)),
                BOOLEAN => ffi::lua_pushboolean(L, c_int::from(t.byte(L))),
                STRING => {
                    let n = t.i32(L);
                    if n <= 0 {
                        raise_string(L, format!("Invalid bson string , length = {n}"));
                    }
                    let s = t.bytes(L, i64::from(n));
                    push_str(L, &s[..s.len() - 1]);
                }
                DOCUMENT => unpack_dict(L, &mut t, false, depth + 1),
                ARRAY => unpack_dict(L, &mut t, true, depth + 1),
                BINARY => {
                    let n = t.i32(L);
                    let sub = t.byte(L);
                    let data = t.bytes(L, i64::from(n));
                    push_special(L, BINARY, &[&[sub], data]);
                }
                OBJECTID => push_special(L, OBJECTID, &[t.bytes(L, 12)]),
                DATE => {
                    let secs = (t.i64(L) / 1000) as u32;
                    push_special(L, DATE, &[&secs.to_le_bytes()]);
                }
                MINKEY | MAXKEY | NULL => push_special(L, bt, &[]),
                REGEX => {
                    let p = t.cstr(L);
                    let f = t.cstr(L);
                    push_special(L, REGEX, &[p, &[0], f, &[0]]);
                }
                INT32 => ffi::lua_pushinteger(L, i64::from(t.i32(L))),
                TIMESTAMP => push_special(L, TIMESTAMP, &[t.bytes(L, 8)]),
                INT64 => ffi::lua_pushinteger(L, t.i64(L)),
                DBPOINTER | JSCODE | SYMBOL | CODEWS => {
                    // Kept raw, length prefix included.
                    let start = t.b;
                    let n = i64::from(t.i32(L));
                    let rest = match bt {
                        DBPOINTER => n + 12,
                        CODEWS => n - 4,
                        _ => n,
                    };
                    t.bytes(L, rest);
                    push_special(L, bt, &[&start[..4 + rest as usize]]);
                }
                _ => raise_string(L, format!("Invalid bson type : {bt}")),
            }
            ffi::lua_rawset(L, -3);
        }
    }
}

/// The document bytes of the (light or full) userdata at `idx`, or None.
///
/// # Safety
/// `L` is a valid state; a light userdata at `idx` must point at a whole document
/// that outlives the returned slice.
pub(crate) unsafe fn doc_bytes<'a>(L: *mut lua_State, idx: c_int) -> Option<&'a [u8]> {
    // SAFETY: `L` is valid. A full userdata is bounded by its size; a light userdata
    // is trusted to point at a whole document (upstream's contract: it comes from
    // `to_lightuserdata` or the mongo driver's reply parsing).
    unsafe {
        let p = ffi::lua_touserdata(L, idx) as *const u8;
        if p.is_null() {
            return None;
        }
        if ffi::lua_type(L, idx) == ffi::LUA_TUSERDATA {
            let cap = ffi::lua_rawlen(L, idx);
            if cap < 4 {
                raise(L, "Invalid bson block");
            }
            let n = le32(std::slice::from_raw_parts(p, 4)) as i32;
            if n < 0 || n as usize > cap {
                raise_string(L, format!("Invalid bson block ({cap}:{n})"));
            }
            Some(std::slice::from_raw_parts(p, n as usize))
        } else {
            let n = le32(std::slice::from_raw_parts(p, 4)) as i32;
            Some(std::slice::from_raw_parts(p, n.max(4) as usize))
        }
    }
}

unsafe extern "C-unwind" fn l_decode(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; the document stays at index 1.
    unsafe {
        let Some(b) = doc_bytes(L, 1) else {
            return 0;
        };
        unpack_dict(L, &mut Reader { b }, false, 0);
        1
    }
}

unsafe extern "C-unwind" fn l_tostring(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state (a `bson` userdata at 1).
    unsafe {
        let n = ffi::lua_rawlen(L, 1);
        let p = ffi::lua_touserdata(L, 1) as *const c_char;
        if p.is_null() {
            return 0;
        }
        ffi::lua_pushlstring(L, p, n);
        1
    }
}

unsafe extern "C-unwind" fn l_len(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        ffi::lua_pushinteger(L, ffi::lua_rawlen(L, 1) as i64);
        1
    }
}

unsafe extern "C-unwind" fn l_to_lightuserdata(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        ffi::lua_pushlightuserdata(L, ffi::lua_touserdata(L, 1));
        1
    }
}

/// Sets the `bson` metatable on the value on the stack top.
unsafe fn set_meta(L: *mut lua_State) {
    // SAFETY: `L` is valid with a userdata on top.
    unsafe {
        if ffi::luaL_newmetatable(L, META.as_ptr()) != 0 {
            new_lib(
                L,
                &[
                    (c"decode", l_decode as ffi::lua_CFunction),
                    (c"makeindex", l_makeindex),
                ],
            );
            ffi::lua_setfield(L, -2, c"__index".as_ptr());
            ffi::lua_pushcfunction(L, l_replace);
            ffi::lua_setfield(L, -2, c"__newindex".as_ptr());
            ffi::lua_pushcfunction(L, l_tostring);
            ffi::lua_setfield(L, -2, c"__tostring".as_ptr());
            ffi::lua_pushcfunction(L, l_len);
            ffi::lua_setfield(L, -2, c"__len".as_ptr());
        }
        ffi::lua_setmetatable(L, -2);
    }
}

// ---------------------------------------------------------------------------------
// In-place updates: `doc:makeindex()`, then `doc[key] = value`
// ---------------------------------------------------------------------------------

/// Bits of an index entry holding the BSON type; the rest is the value's offset.
const TYPE_SHIFT: u32 = 5;

/// The size of a fixed-size value of type `t` (those `makeindex` records), else 0.
fn fixed_size(t: u8) -> usize {
    match t {
        INT64 | TIMESTAMP | DATE | REAL => 8,
        BOOLEAN => 1,
        OBJECTID => 12,
        INT32 => 4,
        _ => 0,
    }
}

/// `doc:makeindex()`: records where each top-level fixed-size value lives (key →
/// `type | offset << 5`) in the document's user value; returns the document.
unsafe extern "C-unwind" fn l_makeindex(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; the document stays at index 1.
    unsafe {
        ffi::luaL_checkudata(L, 1, META.as_ptr());
        let doc = doc_bytes(L, 1).unwrap_or_default();
        let mut r = Reader { b: doc };
        r.i32(L);
        let body_len = i64::try_from(doc.len()).unwrap_or(0) - 5;
        let body = r.bytes(L, body_len);
        let mut t = Reader { b: body };
        ffi::lua_createtable(L, 0, 0);
        while !t.b.is_empty() {
            let bt = t.byte(L);
            let key = t.cstr(L);
            match bt {
                STRING | JSCODE | SYMBOL => {
                    let n = t.i32(L);
                    t.bytes(L, i64::from(n));
                }
                CODEWS | ARRAY | DOCUMENT => {
                    let n = t.i32(L);
                    t.bytes(L, i64::from(n) - 4);
                }
                BINARY => {
                    let n = t.i32(L);
                    t.bytes(L, i64::from(n) + 1);
                }
                DBPOINTER => {
                    let n = t.i32(L);
                    t.bytes(L, i64::from(n) + 12);
                }
                REGEX => {
                    t.cstr(L);
                    t.cstr(L);
                }
                MINKEY | MAXKEY | NULL => {}
                _ if fixed_size(bt) > 0 => {
                    let offset = t.b.as_ptr() as usize - doc.as_ptr() as usize;
                    t.bytes(L, fixed_size(bt) as i64);
                    push_str(L, key);
                    ffi::lua_pushinteger(L, (offset as i64) << TYPE_SHIFT | i64::from(bt));
                    ffi::lua_rawset(L, -3);
                }
                _ => raise_string(L, format!("Invalid bson type : {bt}")),
            }
        }
        ffi::lua_setiuservalue(L, 1, 1);
        ffi::lua_settop(L, 1);
        1
    }
}

/// The bytes of a `"\0" .. t .. body` value for `replace`, checked for type `t`.
unsafe fn object_arg<'a>(L: *mut lua_State, t: u8) -> &'a [u8] {
    // SAFETY: `L` is the `replace` call's state; argument 3 stays on the stack.
    unsafe {
        let d = crate::lua::ffi::check_bytes(L, 3);
        if d.len() < 6 || d[0] != 0 || d[1] != t {
            raise_string(L, format!("Type mismatch, need bson type {t}"));
        }
        &d[2..]
    }
}

/// `doc[key] = value` after `makeindex`: overwrites a fixed-size value in place.
unsafe extern "C-unwind" fn l_replace(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state (the document at 1, key at 2, value at 3);
    // writes stay inside the document's bytes (checked against its size).
    unsafe {
        ffi::luaL_checkudata(L, 1, META.as_ptr());
        ffi::lua_getiuservalue(L, 1, 1);
        if ffi::lua_type(L, -1) != ffi::LUA_TTABLE {
            raise(L, "call makeindex first");
        }
        ffi::lua_pushvalue(L, 2);
        let found = ffi::lua_rawget(L, -2) == ffi::LUA_TNUMBER;
        let id = ffi::lua_tointeger(L, -1);
        let t = (id & ((1 << TYPE_SHIFT) - 1)) as u8;
        let offset = usize::try_from(id >> TYPE_SHIFT).unwrap_or(usize::MAX);
        let size = fixed_size(t);
        let cap = ffi::lua_rawlen(L, 1);
        if !found || size == 0 || offset.checked_add(size).is_none_or(|end| end > cap) {
            if !found {
                let k = to_bytes(L, 2).map(shown).unwrap_or_else(|| "(null)".into());
                raise_string(L, format!("Can't replace key : {k}"));
            }
            raise_string(L, format!("Can't replace type {t}"));
        }
        let mut v = [0u8; 12];
        match t {
            REAL => v[..8].copy_from_slice(&ffi::luaL_checknumber(L, 3).to_le_bytes()),
            BOOLEAN => v[0] = u8::from(ffi::lua_toboolean(L, 3) != 0),
            OBJECTID => {
                let d = object_arg(L, t);
                if d.len() != 12 {
                    raise(L, "Invalid object id");
                }
                v.copy_from_slice(d);
            }
            DATE => {
                let d = object_arg(L, t);
                if d.len() != 4 {
                    raise(L, "Invalid date");
                }
                v[..8].copy_from_slice(&(i64::from(le32(d)) * 1000).to_le_bytes());
            }
            TIMESTAMP => {
                let d = object_arg(L, t);
                if d.len() != 8 {
                    raise(L, "Invalid timestamp");
                }
                v[..8].copy_from_slice(d);
            }
            INT32 | INT64 => {
                if ffi::lua_isinteger(L, 3) == 0 {
                    let bits = if t == INT32 { 32 } else { 64 };
                    let n = ffi::lua_tonumber(L, 3);
                    raise_string(L, format!("{n:.6} must be a {bits}bit integer "));
                }
                let i = ffi::lua_tointeger(L, 3);
                v[..8].copy_from_slice(&i.to_le_bytes());
            }
            _ => raise_string(L, format!("Can't replace type {t}")),
        }
        let p = ffi::lua_touserdata(L, 1) as *mut u8;
        std::ptr::copy_nonoverlapping(v.as_ptr(), p.add(offset), size);
        0
    }
}

// ---------------------------------------------------------------------------------
// Constructors and `type`
// ---------------------------------------------------------------------------------

unsafe extern "C-unwind" fn l_date(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        let d = ffi::luaL_checkinteger(L, 1) as i32;
        push_special(L, DATE, &[&d.to_le_bytes()]);
        1
    }
}

unsafe extern "C-unwind" fn l_int64(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        let d = ffi::luaL_checkinteger(L, 1);
        push_special(L, INT64, &[&d.to_le_bytes()]);
        1
    }
}

static TS_INC: AtomicU32 = AtomicU32::new(0);

unsafe extern "C-unwind" fn l_timestamp(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        let d = ffi::luaL_checkinteger(L, 1) as i32;
        let inc = if ffi::lua_type(L, 2) <= ffi::LUA_TNIL {
            TS_INC.fetch_add(1, Ordering::Relaxed)
        } else {
            ffi::lua_tointeger(L, 2) as u32
        };
        push_special(L, TIMESTAMP, &[&inc.to_le_bytes(), &d.to_le_bytes()]);
        1
    }
}

unsafe extern "C-unwind" fn l_regex(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; both strings stay at indices 1 and 2.
    unsafe {
        ffi::luaL_checklstring(L, 1, std::ptr::null_mut());
        let p = to_bytes(L, 1).unwrap_or_default();
        let f = to_bytes(L, 2).unwrap_or_default();
        push_special(L, REGEX, &[p, &[0], f, &[0]]);
        1
    }
}

unsafe extern "C-unwind" fn l_binary(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        ffi::lua_settop(L, 1);
        let s = to_bytes(L, 1).unwrap_or_default();
        push_special(L, BINARY, &[&[0], s]);
        1
    }
}

/// The 5 bytes after the time in generated object ids: a hostname hash and the pid.
fn oid_header() -> &'static [u8; 5] {
    static H: OnceLock<[u8; 5]> = OnceLock::new();
    H.get_or_init(|| {
        let host = std::fs::read("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = host.strip_suffix(b"\n").unwrap_or(&host);
        let mut h: u32 = 0;
        for &c in host {
            h ^= (h << 5).wrapping_add(h >> 2).wrapping_add(u32::from(c));
        }
        h ^= host.len() as u32;
        let pid = std::process::id();
        [
            h as u8,
            (h >> 8) as u8,
            (h >> 16) as u8,
            pid as u8,
            (pid >> 8) as u8,
        ]
    })
}

fn oid_counter() -> &'static AtomicU32 {
    static C: OnceLock<AtomicU32> = OnceLock::new();
    C.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u32)
            .unwrap_or(1);
        AtomicU32::new(t ^ std::process::id())
    })
}

fn hexval(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'z' => c - b'a' + 10,
        b'A'..=b'Z' => c - b'A' + 10,
        _ => 0,
    }
}

unsafe extern "C-unwind" fn l_objectid(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        let mut oid = [0u8; 12];
        if ffi::lua_isstring(L, 1) != 0 {
            let s = to_bytes(L, 1).unwrap_or_default();
            if s.len() != 24 {
                raise_string(L, format!("Invalid objectid {}", shown(s)));
            }
            for (i, o) in oid.iter_mut().enumerate() {
                *o = (hexval(s[2 * i]) << 4) | hexval(s[2 * i + 1]);
            }
        } else {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as u32)
                .unwrap_or(0);
            let id = oid_counter().fetch_add(1, Ordering::Relaxed);
            oid[..4].copy_from_slice(&now.to_be_bytes());
            oid[4..9].copy_from_slice(oid_header());
            oid[9..].copy_from_slice(&id.to_be_bytes()[1..]);
        }
        push_special(L, OBJECTID, &[&oid]);
        1
    }
}

/// Pushes a type name (the first result of `type`).
unsafe fn name(L: *mut lua_State, n: &str) {
    // SAFETY: `L` is valid.
    unsafe { push_str(L, n) }
}

/// `type` for a `"\0" .. t .. body` string.
unsafe fn special_type(L: *mut lua_State, t: u8, b: &[u8]) -> c_int {
    // SAFETY: `L` is the `type` call's state; `b` borrows argument 1.
    unsafe {
        match t {
            BINARY => {
                let Some((&sub, data)) = b.split_first() else {
                    raise(L, "Invalid binary");
                };
                name(L, "binary");
                push_str(L, data);
                ffi::lua_pushinteger(L, i64::from(sub));
                3
            }
            OBJECTID => {
                if b.len() != 12 {
                    raise(L, "Invalid object id");
                }
                let mut hex = [0u8; 24];
                for (i, &c) in b.iter().enumerate() {
                    hex[2 * i] = b"0123456789abcdef"[usize::from(c >> 4)];
                    hex[2 * i + 1] = b"0123456789abcdef"[usize::from(c & 15)];
                }
                name(L, "objectid");
                push_str(L, &hex);
                2
            }
            DATE => {
                if b.len() != 4 {
                    raise(L, "Invalid date");
                }
                name(L, "date");
                ffi::lua_pushinteger(L, i64::from(le32(b) as i32));
                2
            }
            TIMESTAMP => {
                if b.len() != 8 {
                    raise(L, "Invalid timestamp");
                }
                name(L, "timestamp");
                ffi::lua_pushinteger(L, i64::from(le32(&b[4..])));
                ffi::lua_pushinteger(L, i64::from(le32(b)));
                3
            }
            REGEX => {
                let Some(inner) = b.len().checked_sub(1).map(|n| &b[..n]) else {
                    raise(L, "Invalid regex");
                };
                let Some(sep) = inner.iter().rposition(|&c| c == 0) else {
                    raise(L, "Invalid regex");
                };
                name(L, "regex");
                push_str(L, &inner[..sep]);
                push_str(L, &inner[sep + 1..]);
                3
            }
            MINKEY => {
                name(L, "minkey");
                1
            }
            MAXKEY => {
                name(L, "maxkey");
                1
            }
            NULL => {
                name(L, "nil");
                1
            }
            JSCODE | DBPOINTER | SYMBOL | CODEWS => {
                name(L, "unsupported");
                push_str(L, b);
                2
            }
            INT64 => {
                if b.len() != 8 {
                    raise(L, "Invalid int64");
                }
                name(L, "int64");
                ffi::lua_pushinteger(L, i64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
                2
            }
            _ => raise_string(L, format!("Invalid subtype {t}")),
        }
    }
}

unsafe extern "C-unwind" fn l_type(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        let t = ffi::lua_type(L, 1);
        let n = match t {
            ffi::LUA_TNUMBER => "number",
            ffi::LUA_TBOOLEAN => "boolean",
            ffi::LUA_TTABLE => "table",
            ffi::LUA_TNIL => {
                name(L, "nil");
                return 1;
            }
            ffi::LUA_TSTRING => {
                let s = to_bytes(L, 1).unwrap_or_default();
                if s.len() >= 2 && s[0] == 0 {
                    return special_type(L, s[1], &s[2..]);
                }
                "string"
            }
            _ => raise_string(
                L,
                format!("Invalid type {}", crate::lua::ffi::type_name_of(L, t)),
            ),
        };
        name(L, n);
        ffi::lua_pushvalue(L, 1);
        2
    }
}

/// `require "bson"`.
///
/// # Safety
/// Called by Lua as a `lua_CFunction`.
pub unsafe extern "C-unwind" fn luaopen_bson(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        new_lib(
            L,
            &[
                (c"encode", l_encode as ffi::lua_CFunction),
                (c"encode_order", l_encode_order),
                (c"date", l_date),
                (c"timestamp", l_timestamp),
                (c"regex", l_regex),
                (c"binary", l_binary),
                (c"objectid", l_objectid),
                (c"int64", l_int64),
                (c"decode", l_decode),
                (c"to_lightuserdata", l_to_lightuserdata),
                (c"type", l_type),
            ],
        );
        for (k, t) in [(c"null", NULL), (c"minkey", MINKEY), (c"maxkey", MAXKEY)] {
            push_str(L, &[0u8, t]);
            ffi::lua_setfield(L, -2, k.as_ptr());
        }
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_rules() {
        assert!(utf8_ok("héllo €𝄞".as_bytes()));
        assert!(utf8_ok(b"\xed\xa0\x80")); // a surrogate: accepted as upstream
        assert!(!utf8_ok(b"\xc0\x80")); // overlong
        assert!(!utf8_ok(b"\xf4\x90\x80\x80")); // above U+10FFFF
        assert!(!utf8_ok(b"\x80"));
        assert!(!utf8_ok(b"\xe2\x82"));
        assert!(!utf8_ok(b"\xf8\x80\x80\x80\x80"));
    }

    #[test]
    fn strtol_like_c() {
        assert_eq!(strtol(b"12"), 12);
        assert_eq!(strtol(b" -3x"), -3);
        assert_eq!(strtol(b"abc"), 0);
    }

    #[test]
    fn itoa_keys() {
        let mut b = itoa_buf();
        assert_eq!(itoa(&mut b, 0), b"0");
        assert_eq!(itoa(&mut b, 1023), b"1023");
    }
}
