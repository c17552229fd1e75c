//! `skynet.crypt` (and `client.crypt` in `skynet-lua`; the 2016 name `crypt` is
//! `skynet/lualib/compat10/crypt.lua`): the Lua binding of the `skynet-crypt` crate,
//! with upstream's function set, argument order, argument checks and error texts.
//!
//! Functions: `hashkey`, `randomkey`, `desencode`/`desdecode` (optional padding mode,
//! a value of `crypt.padding = { iso7816_4 = 0, pkcs7 = 1 }`), `hexencode`/`hexdecode`,
//! `hmac64`, `hmac64_md5`, `hmac_hash`, `hmac_sha1`, `sha1`, `dhexchange`, `dhsecret`,
//! `base64encode`/`base64decode`, `xor_str`.
//!
//! Arguments are read with the same `luaL_check*`/`luaL_opt*` calls, in the same order,
//! as upstream, so type errors (`bad argument #1 to 'sha1' (string expected, got nil)`),
//! number-to-string coercion and which of two bad arguments is reported all match.
//! Size checks that upstream makes between two argument reads (a DES key, the first
//! 8-byte value of `hmac64`/`dhsecret`, the key of `hmac_hash`) are made here at the
//! same point.
//!
//! # Invariants
//!
//! * Lua errors are `longjmp`s: no frame of this module holds a value with a destructor
//!   when a Lua API call that can raise runs. Outputs go to a stack array (up to 256
//!   bytes) or to a scratch userdata allocated *before* the computation; results and
//!   errors are `Copy`; error texts are formatted into a stack buffer.
//! * No Rust panic reaches Lua: the crate is panic-free by construction, and each call
//!   into it is wrapped in `catch_unwind` anyway (a panic becomes a Lua error).

#![allow(non_snake_case)]

use std::ffi::{c_char, c_int, CStr};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::ffi::{self, lua_State};
use skynet_crypt::{self as crypt, base64, des, hex, xor, DesKey, Error, Padding};

use crate::lua::ffi::{check_bytes, push_str, raise};

/// Outputs up to this size live on the C stack (as upstream's `SMALL_CHUNK`).
const SMALL: usize = 256;

const INTERNAL: &str = "skynet.crypt: internal error";

/// An error text formatted without allocating.
struct Msg {
    buf: [u8; 96],
    len: usize,
}

impl std::fmt::Write for Msg {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Raises `e` with upstream's text (no location prefix, as `luaL_error` from a C
/// function gives none).
unsafe fn raise_error(L: *mut lua_State, e: Error) -> ! {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let mut m = Msg {
            buf: [0; 96],
            len: 0,
        };
        let _ = write!(m, "{e}");
        ffi::lua_pushlstring(L, m.buf.as_ptr() as *const c_char, m.len);
        ffi::lua_error(L)
    }
}

/// Runs a crate call, turning a panic into `None`.
fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// The value of a guarded crate call, or raises its error.
unsafe fn value<T: Copy>(L: *mut lua_State, r: Option<crypt::Result<T>>) -> T {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        match r {
            Some(Ok(v)) => v,
            Some(Err(e)) => raise_error(L, e),
            None => raise(L, INTERNAL),
        }
    }
}

/// An output buffer of `n` bytes: `small` when it fits, else a scratch userdata left on
/// the stack (allocated now, before any Rust work, so an allocation error raises from a
/// clean frame).
unsafe fn scratch(L: *mut lua_State, n: usize, small: &mut [u8; SMALL]) -> &mut [u8] {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        if n <= SMALL {
            &mut small[..n]
        } else {
            let p = ffi::lua_newuserdatauv(L, n, 0) as *mut u8;
            std::slice::from_raw_parts_mut(p, n)
        }
    }
}

/// Reads two 8-byte strings as upstream's `read64`: the first is checked for size
/// before the second is read.
unsafe fn read64<'a>(L: *mut lua_State) -> (&'a [u8], &'a [u8]) {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let x = check_bytes(L, 1);
        if x.len() != 8 {
            raise_error(L, Error::Uint64X);
        }
        (x, check_bytes(L, 2))
    }
}

/// A DES key from argument 1, checked for size before anything else is read.
unsafe fn des_key(L: *mut lua_State) -> DesKey {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let key = check_bytes(L, 1);
        match guard(|| DesKey::new(key)) {
            Some(Ok(k)) => k,
            Some(Err(e)) => raise_error(L, e),
            None => raise(L, INTERNAL),
        }
    }
}

/// The padding mode argument (`luaL_optinteger`, truncated to a C `int` as upstream).
unsafe fn padding(L: *mut lua_State, idx: c_int) -> Padding {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let mode = ffi::luaL_optinteger(L, idx, Padding::Iso7816_4 as ffi::lua_Integer) as i32;
        value(L, Some(Padding::from_mode(mode)))
    }
}

unsafe extern "C-unwind" fn lhashkey(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let text = check_bytes(L, 1);
        let out = value(L, guard(|| Ok(crypt::hashkey(text))));
        push_str(L, &out);
        1
    }
}

unsafe extern "C-unwind" fn lrandomkey(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let out = value(L, guard(|| Ok(crypt::random_key())));
        push_str(L, &out);
        1
    }
}

unsafe extern "C-unwind" fn ldesencode(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let key = des_key(L);
        let text = check_bytes(L, 2);
        let pad = padding(L, 3);
        let mut small = [0u8; SMALL];
        let out = scratch(L, des::encrypted_len(text.len()), &mut small);
        value(L, guard(|| key.encrypt_into(text, pad, out)));
        push_str(L, out);
        1
    }
}

unsafe extern "C-unwind" fn ldesdecode(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let key = des_key(L);
        let text = check_bytes(L, 2);
        value(L, Some(des::check_cipher_len(text.len())));
        let pad = padding(L, 3);
        let mut small = [0u8; SMALL];
        let out = scratch(L, text.len(), &mut small);
        let n = value(L, guard(|| key.decrypt_into(text, pad, out)));
        push_str(L, out.get(..n).unwrap_or_default());
        1
    }
}

unsafe extern "C-unwind" fn lhexencode(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let text = check_bytes(L, 1);
        let mut small = [0u8; SMALL];
        let out = scratch(L, hex::encoded_len(text.len()), &mut small);
        value(L, guard(|| hex::encode_into(text, out)));
        push_str(L, out);
        1
    }
}

unsafe extern "C-unwind" fn lhexdecode(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let text = check_bytes(L, 1);
        let n = value(L, Some(hex::decoded_len(text.len())));
        let mut small = [0u8; SMALL];
        let out = scratch(L, n, &mut small);
        value(L, guard(|| hex::decode_into(text, out)));
        push_str(L, out);
        1
    }
}

unsafe extern "C-unwind" fn lhmac64(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let (x, y) = read64(L);
        let out = value(L, guard(|| crypt::hmac64(x, y)));
        push_str(L, &out);
        1
    }
}

unsafe extern "C-unwind" fn lhmac64_md5(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let (x, y) = read64(L);
        let out = value(L, guard(|| crypt::hmac64_md5(x, y)));
        push_str(L, &out);
        1
    }
}

unsafe extern "C-unwind" fn lhmac_hash(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let key = check_bytes(L, 1);
        if key.len() != 8 {
            raise_error(L, Error::Uint64Key);
        }
        let text = check_bytes(L, 2);
        let out = value(L, guard(|| crypt::hmac_hash(key, text)));
        push_str(L, &out);
        1
    }
}

unsafe extern "C-unwind" fn lhmac_sha1(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let key = check_bytes(L, 1);
        let text = check_bytes(L, 2);
        let out = value(L, guard(|| Ok(crypt::hmac_sha1(key, text))));
        push_str(L, &out);
        1
    }
}

unsafe extern "C-unwind" fn lsha1(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let text = check_bytes(L, 1);
        let out = value(L, guard(|| Ok(crypt::sha1(text))));
        push_str(L, &out);
        1
    }
}

unsafe extern "C-unwind" fn ldhexchange(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let key = check_bytes(L, 1);
        let out = value(L, guard(|| crypt::dh_exchange(key)));
        push_str(L, &out);
        1
    }
}

unsafe extern "C-unwind" fn ldhsecret(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let (x, y) = read64(L);
        let out = value(L, guard(|| crypt::dh_secret(x, y)));
        push_str(L, &out);
        1
    }
}

unsafe extern "C-unwind" fn lbase64encode(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let text = check_bytes(L, 1);
        let mut small = [0u8; SMALL];
        let out = scratch(L, base64::encoded_len(text.len()), &mut small);
        value(L, guard(|| base64::encode_into(text, out)));
        push_str(L, out);
        1
    }
}

unsafe extern "C-unwind" fn lbase64decode(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let text = check_bytes(L, 1);
        let mut small = [0u8; SMALL];
        let out = scratch(L, base64::decoded_max(text.len()), &mut small);
        let n = value(L, guard(|| base64::decode_into(text, out)));
        push_str(L, out.get(..n).unwrap_or_default());
        1
    }
}

unsafe extern "C-unwind" fn lxor_str(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let text = check_bytes(L, 1);
        let key = check_bytes(L, 2);
        let mut small = [0u8; SMALL];
        let out = scratch(L, text.len(), &mut small);
        value(L, guard(|| xor::xor_into(text, key, out)));
        push_str(L, out);
        1
    }
}

/// `require "skynet.crypt"` (also registered as `client.crypt`).
///
/// # Safety
/// Called by Lua as a `lua_CFunction`.
pub unsafe extern "C-unwind" fn luaopen_skynet_crypt(L: *mut lua_State) -> c_int {
    // SAFETY: `L` is the valid state of the Lua call that got us here, used by
    // this thread only; pointers come from that state's stack.
    unsafe {
        let funcs: [(&CStr, ffi::lua_CFunction); 16] = [
            (c"hashkey", lhashkey),
            (c"randomkey", lrandomkey),
            (c"desencode", ldesencode),
            (c"desdecode", ldesdecode),
            (c"hexencode", lhexencode),
            (c"hexdecode", lhexdecode),
            (c"hmac64", lhmac64),
            (c"hmac64_md5", lhmac64_md5),
            (c"dhexchange", ldhexchange),
            (c"dhsecret", ldhsecret),
            (c"base64encode", lbase64encode),
            (c"base64decode", lbase64decode),
            (c"sha1", lsha1),
            (c"hmac_sha1", lhmac_sha1),
            (c"hmac_hash", lhmac_hash),
            (c"xor_str", lxor_str),
        ];
        ffi::lua_createtable(L, 0, funcs.len() as c_int + 1);
        for (name, f) in funcs {
            ffi::lua_pushcfunction(L, f);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
        ffi::lua_createtable(L, 0, Padding::ALL.len() as c_int);
        for (name, mode) in Padding::ALL {
            push_str(L, name.as_bytes());
            ffi::lua_pushinteger(L, mode as ffi::lua_Integer);
            ffi::lua_rawset(L, -3);
        }
        ffi::lua_setfield(L, -2, c"padding".as_ptr());
        1
    }
}
