//! `skynet.mysqlaux` (also `skynet.mysqlaux.c`, upstream's name): helpers for
//! `skynet.db.mysql`.
//!
//! Functions:
//! * `quote_sql_str(s)` (upstream's function set): `s` between single quotes, with
//!   NUL, backspace, newline, carriage return, tab, Ctrl-Z (26), backslash, `'` and
//!   `"` written as backslash escapes (`\0 \b \n \r \t \Z \\ \' \"`); every other byte,
//!   including all bytes >= 0x80, unchanged. Exactly one argument (`expecting one
//!   argument` otherwise), as upstream.
//! * extra: `native_token(password, scramble)`: the `mysql_native_password` reply,
//!   SHA1(password) XOR SHA1(scramble .. SHA1(SHA1(password))); "" for "".
//! * extra: `sha2_token(password, scramble)`: the `caching_sha2_password` fast-auth
//!   reply, SHA256(password) XOR SHA256(SHA256(SHA256(password)) .. scramble); "" for "".
//! * extra: `rsa_encrypt(pem, data)`: RSA-OAEP (SHA-1) encryption of `data` with the
//!   PEM public key, with a fresh random seed: the `caching_sha2_password` full
//!   authentication over a plain connection. Errors: `mysqlaux: <why>`.
//!
//! Design: the escaped size is counted first and the result written straight into a
//! Lua buffer of exactly that size (one allocation, no Rust-owned memory while Lua may
//! raise). The tokens are fixed-size stack arrays.

#![allow(non_snake_case)]

use std::ffi::{c_char, c_int};
use std::io::Read;
use std::mem::ManuallyDrop;

use mlua::ffi::{self, lua_State};
use skynet_crypt::{rsa, sha1, sha256};

use crate::lua::ffi::{check_bytes, new_lib, raise, raise_string};

/// The escape for byte `c`, if it needs one.
#[inline]
fn escape(c: u8) -> Option<u8> {
    Some(match c {
        0 => b'0',
        8 => b'b',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        26 => b'Z',
        b'\\' => b'\\',
        b'\'' => b'\'',
        b'"' => b'"',
        _ => return None,
    })
}

/// Size of `quote(s)`.
pub fn quoted_len(s: &[u8]) -> usize {
    2 + s.len() + s.iter().filter(|&&c| escape(c).is_some()).count()
}

/// Writes the quoted form of `s` into `out`, which is exactly [`quoted_len`] long.
pub fn quote_into(s: &[u8], out: &mut [u8]) {
    let mut i = 0;
    out[i] = b'\'';
    i += 1;
    for &c in s {
        match escape(c) {
            Some(e) => {
                out[i] = b'\\';
                out[i + 1] = e;
                i += 2;
            }
            None => {
                out[i] = c;
                i += 1;
            }
        }
    }
    out[i] = b'\'';
}

/// The `mysql_native_password` auth reply.
pub fn native_token(password: &[u8], scramble: &[u8]) -> [u8; 20] {
    let stage1 = sha1::sha1(password);
    let stage2 = sha1::sha1(&stage1);
    let mut h = sha1::Sha1::new();
    h.update(scramble);
    h.update(&stage2);
    let mut out = h.finalize();
    for (o, s) in out.iter_mut().zip(stage1) {
        *o ^= s;
    }
    out
}

/// The `caching_sha2_password` fast-auth reply.
pub fn sha2_token(password: &[u8], scramble: &[u8]) -> [u8; 32] {
    let p1 = sha256::sha256(password);
    let p2 = sha256::sha256(&p1);
    let mut out = sha256::sha256_parts(&[&p2, scramble]);
    for (o, s) in out.iter_mut().zip(p1) {
        *o ^= s;
    }
    out
}

unsafe extern "C-unwind" fn l_quote_sql_str(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; `s` borrows the string at index 1, which
    // stays on the stack while the buffer (whose box may be pushed above it) is filled.
    unsafe {
        if ffi::lua_gettop(L) != 1 {
            raise(L, "expecting one argument");
        }
        let s = check_bytes(L, 1);
        let n = quoted_len(s);
        let mut b: ffi::luaL_Buffer = std::mem::zeroed();
        let p = ffi::luaL_buffinitsize(L, &mut b, n) as *mut u8;
        quote_into(s, std::slice::from_raw_parts_mut(p, n));
        ffi::luaL_pushresultsize(&mut b, n);
        1
    }
}

unsafe fn push_token(L: *mut lua_State, f: fn(&[u8], &[u8]) -> Vec<u8>) -> c_int {
    // SAFETY: called from a lua_CFunction with its state; both strings stay at
    // indices 1 and 2 while they are read.
    unsafe {
        let password = check_bytes(L, 1);
        let scramble = check_bytes(L, 2);
        if password.is_empty() {
            ffi::lua_pushlstring(L, c"".as_ptr(), 0);
            return 1;
        }
        let mut buf = [0u8; 32];
        let t = f(password, scramble);
        let n = t.len();
        buf[..n].copy_from_slice(&t);
        drop(t); // nothing owned survives into the (allocating) push
        ffi::lua_pushlstring(L, buf.as_ptr() as *const c_char, n);
        1
    }
}

unsafe extern "C-unwind" fn l_native_token(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe { push_token(L, |p, s| native_token(p, s).to_vec()) }
}

unsafe extern "C-unwind" fn l_sha2_token(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe { push_token(L, |p, s| sha2_token(p, s).to_vec()) }
}

/// RSA-OAEP encryption of `data` under the PEM key, seeded from the OS.
pub fn rsa_encrypt(pem: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let key = rsa::parse_public_pem(pem).map_err(|e| e.to_string())?;
    let mut seed = [0u8; 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| format!("no random seed: {e}"))?;
    rsa::oaep_encrypt(&key, data, &seed).map_err(|e| e.to_string())
}

unsafe extern "C-unwind" fn l_rsa_encrypt(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; both strings stay at indices 1 and 2 while
    // read. The result Vec is wrapped in ManuallyDrop across the (allocating) push: a
    // raise there leaks it instead of unwinding over a destructor.
    unsafe {
        let pem = check_bytes(L, 1);
        let data = check_bytes(L, 2);
        match rsa_encrypt(pem, data) {
            Ok(v) => {
                let v = ManuallyDrop::new(v);
                ffi::lua_pushlstring(L, v.as_ptr() as *const c_char, v.len());
                drop(ManuallyDrop::into_inner(v));
                1
            }
            Err(e) => raise_string(L, format!("mysqlaux: {e}")),
        }
    }
}

/// `require "skynet.mysqlaux"` / `require "skynet.mysqlaux.c"`.
///
/// # Safety
/// Called by Lua as a `lua_CFunction`.
pub unsafe extern "C-unwind" fn luaopen_skynet_mysqlaux(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        new_lib(
            L,
            &[
                (c"quote_sql_str", l_quote_sql_str as ffi::lua_CFunction),
                (c"native_token", l_native_token),
                (c"sha2_token", l_sha2_token),
                (c"rsa_encrypt", l_rsa_encrypt),
            ],
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(s: &[u8]) -> Vec<u8> {
        let mut out = vec![0; quoted_len(s)];
        quote_into(s, &mut out);
        out
    }

    #[test]
    fn quotes_like_upstream() {
        assert_eq!(quote(b""), b"''");
        assert_eq!(quote(b"abc"), b"'abc'");
        assert_eq!(
            quote(b"\0\x08\n\r\t\x1a\\'\"x"),
            b"'\\0\\b\\n\\r\\t\\Z\\\\\\'\\\"x'"
        );
        // bytes >= 0x80 (UTF-8) pass through untouched
        assert_eq!(quote("é'".as_bytes()), "'é\\''".as_bytes());
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn native_token_matches_the_definition() {
        // SHA1("secret") etc. computed independently (python hashlib)
        let scramble = b"01234567890123456789";
        let t = native_token(b"secret", scramble);
        assert_eq!(hex(&t), "7abe1a8776b59e931059451f81e596a60dbbf7a8");
    }

    #[test]
    fn sha2_token_matches_the_definition() {
        let scramble = b"01234567890123456789";
        let t = sha2_token(b"secret", scramble);
        assert_eq!(
            hex(&t),
            "1a2da2573c2faa367e2afddb54cdfd11a95ed22eef0167151196a6fc8e3d3813"
        );
    }
}
