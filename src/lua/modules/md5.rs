//! `md5`: the two functions of the `md5` Lua module upstream builds from
//! `3rd/lua-md5` that its Lua uses (`skynet.db.mongo`'s SCRAM-SHA-1 login):
//! `md5.sum(s)` (the 16-byte digest) and `md5.sumhexa(s)` (32 lowercase hex digits).
//! The digest is skynet-crypt's MD5; the result is built on the stack.

#![allow(non_snake_case)]

use std::ffi::{c_char, c_int};

use mlua::ffi::{self, lua_State};
use skynet_crypt::md5;

use crate::lua::ffi::{check_bytes, new_lib};

/// Lowercase hex of an MD5 digest.
pub fn hex(d: &[u8; 16]) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in d.iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 15) as usize];
    }
    out
}

unsafe extern "C-unwind" fn l_sum(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; the input stays at index 1 while hashed.
    unsafe {
        let d = md5::md5(check_bytes(L, 1));
        ffi::lua_pushlstring(L, d.as_ptr() as *const c_char, d.len());
        1
    }
}

unsafe extern "C-unwind" fn l_sumhexa(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; the input stays at index 1 while hashed.
    unsafe {
        let h = hex(&md5::md5(check_bytes(L, 1)));
        ffi::lua_pushlstring(L, h.as_ptr() as *const c_char, h.len());
        1
    }
}

/// `require "md5"`.
///
/// # Safety
/// Called by Lua as a `lua_CFunction`.
pub unsafe extern "C-unwind" fn luaopen_md5(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        new_lib(
            L,
            &[
                (c"sum", l_sum as ffi::lua_CFunction),
                (c"sumhexa", l_sumhexa),
            ],
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1321_vectors() {
        assert_eq!(&hex(&md5::md5(b"")), b"d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            &hex(&md5::md5(b"message digest")),
            b"f96b697d7cb7938d525a2f31aaf161d0"
        );
    }
}
