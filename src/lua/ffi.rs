//! Raw Lua C API helpers shared by the Lua host, the native Lua modules and the
//! `skynet-lua` interpreter: raising errors, protected bodies, reading and pushing
//! strings, type names, module tables.
//!
//! A leaf: it depends on `mlua::ffi` only, never on the runtime, so modules that do not
//! talk to services (`sproto.core`, the sample's `lsocket`) can use it in a plain Lua
//! interpreter.
//!
//! # Invariants
//!
//! * Every function takes a `lua_State` that must be valid and used by the calling
//!   thread only (the `# Safety` sections say "`L` is a valid state").
//! * Raising (`lua_error`) is a `longjmp` through the Rust frames between the raise and
//!   the enclosing `lua_pcall`: those frames must hold no value with a destructor.
//!   [`raise_string`] and [`raise_owned`] drop their `String` before they raise;
//!   [`protected`] lets a caller keep owned values alive across raising API calls.
//! * Slices returned by [`to_bytes`] and [`check_bytes`] borrow the Lua string at that
//!   stack index: they are valid while the value stays on the stack.

#![allow(non_snake_case)] // `L` is the Lua C API convention for a lua_State.

use mlua::ffi::{self, lua_State};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::ManuallyDrop;

/// Raise a Lua error with `msg` (never returns).
///
/// # Safety
/// `L` is a valid state inside a protected call; no value with a destructor may be
/// alive in the frames this unwinds.
pub unsafe fn raise(L: *mut lua_State, msg: &str) -> ! {
    // SAFETY: per the contract above; the pushed copy belongs to Lua.
    unsafe {
        ffi::lua_pushlstring(L, msg.as_ptr() as *const c_char, msg.len());
        error(L)
    }
}

/// `lua_error` kept out of line, so a raise is one call at its call sites.
///
/// # Safety
/// As [`raise`], with the error object on top of the stack.
#[inline(never)]
unsafe fn error(L: *mut lua_State) -> ! {
    // SAFETY: per the contract.
    unsafe { ffi::lua_error(L) }
}

/// Longest message [`raise_string`] keeps.
pub const RAISE_MAX: usize = 1024;

/// Raise an owned message, truncated to [`RAISE_MAX`] bytes. The text is copied to a
/// stack buffer and the `String` dropped *before* the push, because pushing allocates
/// and can itself raise a memory error.
///
/// # Safety
/// As [`raise`].
pub unsafe fn raise_string(L: *mut lua_State, msg: String) -> ! {
    let mut buf = [0u8; RAISE_MAX];
    let n = msg.len().min(RAISE_MAX);
    buf[..n].copy_from_slice(&msg.as_bytes()[..n]);
    drop(msg);
    // SAFETY: as `raise`; nothing with a destructor is alive here any more.
    unsafe {
        ffi::lua_pushlstring(L, buf.as_ptr() as *const c_char, n);
        ffi::lua_error(L)
    }
}

/// Raise an owned message whole (no truncation). The `String` is freed after the push;
/// if the push itself raises (out of memory) its buffer leaks, nothing worse.
///
/// # Safety
/// As [`raise`].
pub unsafe fn raise_owned(L: *mut lua_State, msg: String) -> ! {
    let m = ManuallyDrop::new(msg);
    // SAFETY: as `raise`; `m` has no destructor to skip.
    unsafe { ffi::lua_pushlstring(L, m.as_ptr() as *const c_char, m.len()) };
    drop(ManuallyDrop::into_inner(m));
    // SAFETY: as `raise`.
    unsafe { ffi::lua_error(L) }
}

/// Re-raise the error object on top of the stack (after [`protected`] failed).
///
/// # Safety
/// As [`raise`].
pub unsafe fn reraise(L: *mut lua_State) -> ! {
    // SAFETY: as `raise`.
    unsafe { ffi::lua_error(L) }
}

/// A Lua error was raised inside [`protected`]; its error object is on the stack top.
#[derive(Debug, PartialEq, Eq)]
pub struct Raised;

/// The body run by [`protected`].
pub type ProtectedBody<'a> = &'a mut dyn FnMut(*mut lua_State) -> c_int;

unsafe extern "C-unwind" fn protected_trampoline(L: *mut lua_State) -> c_int {
    // SAFETY: `protected` pushed a pointer to its live `ProtectedBody` at index 1; the
    // body runs while `protected`'s frame (which owns it) is still on the Rust stack.
    unsafe {
        let body = &mut *(ffi::lua_touserdata(L, 1) as *mut ProtectedBody);
        ffi::lua_remove(L, 1);
        body(L)
    }
}

/// Run `body` (which pushes results and returns how many) under `lua_pcall`, for code
/// that must call raising Lua API functions (allocation, metamethods) while Rust values
/// with destructors are alive: keep those values in the *caller's* frame and let the
/// body borrow them. A raise inside the body then unwinds only to the pcall; the caller
/// drops its values and re-raises with [`reraise`]. The body must not own such values
/// itself. The top `nargs` values of the caller's stack are moved to the body's stack
/// (indices 1..=nargs); it sees nothing else.
///
/// Returns the number of results left on top of the stack, or `Err` with the error
/// object on top.
///
/// # Safety
/// `L` is a valid state with `nargs` values pushed and two free stack slots.
pub unsafe fn protected(
    L: *mut lua_State,
    nargs: c_int,
    mut body: ProtectedBody,
) -> Result<c_int, Raised> {
    // SAFETY: per the contract; `body` outlives the pcall that uses its address.
    unsafe {
        let base = ffi::lua_gettop(L) - nargs;
        ffi::lua_pushcfunction(L, protected_trampoline);
        ffi::lua_insert(L, base + 1);
        ffi::lua_pushlightuserdata(L, &mut body as *mut ProtectedBody as *mut c_void);
        ffi::lua_insert(L, base + 2);
        if ffi::lua_pcall(L, nargs + 1, ffi::LUA_MULTRET, 0) != ffi::LUA_OK {
            return Err(Raised);
        }
        Ok(ffi::lua_gettop(L) - base)
    }
}

/// The string (or number, converted in place) at `idx` as bytes; None for other types.
///
/// # Safety
/// `L` is a valid state and `idx` an acceptable index. The slice borrows the Lua string:
/// use it only while that value stays on the stack.
pub unsafe fn to_bytes<'a>(L: *mut lua_State, idx: c_int) -> Option<&'a [u8]> {
    let mut len = 0usize;
    // SAFETY: per the contract; Lua returns `len` readable bytes or null.
    unsafe {
        let p = ffi::lua_tolstring(L, idx, &mut len);
        if p.is_null() {
            None
        } else {
            Some(std::slice::from_raw_parts(p as *const u8, len))
        }
    }
}

/// The string argument at `idx` as bytes (`luaL_checklstring`: raises for other types).
///
/// # Safety
/// As [`to_bytes`], and the raise rule of [`raise`].
pub unsafe fn check_bytes<'a>(L: *mut lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: per the contract; luaL_checklstring returns `len` readable bytes.
    unsafe {
        let p = ffi::luaL_checklstring(L, idx, &mut len);
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// Push bytes (a `&str`, `&[u8]`, `String`, ...) as a Lua string.
///
/// # Safety
/// `L` is a valid state with a free stack slot; the push may raise (memory error).
#[inline]
pub unsafe fn push_str<S: AsRef<[u8]> + ?Sized>(L: *mut lua_State, s: &S) {
    let s = s.as_ref();
    // SAFETY: per the contract; Lua copies the bytes.
    unsafe { ffi::lua_pushlstring(L, s.as_ptr() as *const c_char, s.len()) };
}

/// The name of type code `t` ("nil", "number", ...).
///
/// # Safety
/// `L` is a valid state.
pub unsafe fn type_name_of(L: *mut lua_State, t: c_int) -> &'static str {
    // SAFETY: lua_typename returns a static C string for every type code.
    unsafe { CStr::from_ptr(ffi::lua_typename(L, t)) }
        .to_str()
        .unwrap_or("?")
}

/// The type name of the value at `idx` (`luaL_typename`).
///
/// # Safety
/// `L` is a valid state and `idx` an acceptable index.
pub unsafe fn type_name(L: *mut lua_State, idx: c_int) -> &'static str {
    // SAFETY: per the contract.
    unsafe { type_name_of(L, ffi::lua_type(L, idx)) }
}

/// Push a table of `(name, function)` pairs (`luaL_newlib`).
///
/// # Safety
/// `L` is a valid state with free stack slots; may raise (memory error).
pub unsafe fn new_lib(L: *mut lua_State, funcs: &[(&CStr, ffi::lua_CFunction)]) {
    // SAFETY: per the contract.
    unsafe {
        ffi::lua_createtable(L, 0, funcs.len() as c_int);
        for (name, f) in funcs {
            ffi::lua_pushcfunction(L, *f);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C-unwind" fn raises_owned(L: *mut lua_State) -> c_int {
        // SAFETY: called by lua_pcall below with its state.
        unsafe { raise_string(L, "x".repeat(5000)) }
    }

    unsafe extern "C-unwind" fn raises_whole(L: *mut lua_State) -> c_int {
        // SAFETY: called by lua_pcall below with its state.
        unsafe { raise_owned(L, "y".repeat(5000)) }
    }

    #[test]
    fn protected_bodies_raise_to_the_caller_not_past_it() {
        // SAFETY: a fresh state used by this thread only.
        unsafe {
            let L = ffi::luaL_newstate();
            // Caller-owned values stay in the caller's frame; the body borrows them.
            let owned = vec![1u8, 2, 3];
            let r = protected(L, 0, &mut |L| {
                ffi::lua_pushinteger(L, owned.len() as ffi::lua_Integer);
                1
            });
            assert_eq!(r, Ok(1));
            assert_eq!(ffi::lua_tointeger(L, -1), 3);
            ffi::lua_settop(L, 0);
            // A raise inside comes back as Err with the error object on top.
            let r = protected(L, 0, &mut |L| raise(L, "boom"));
            assert!(r.is_err());
            assert_eq!(to_bytes(L, -1), Some(&b"boom"[..]));
            ffi::lua_settop(L, 0);
            // Arguments move to the body's stack.
            ffi::lua_pushinteger(L, 7);
            ffi::lua_pushinteger(L, 8);
            let r = protected(L, 2, &mut |L| {
                let sum = ffi::lua_tointeger(L, 1) + ffi::lua_tointeger(L, 2);
                ffi::lua_pushinteger(L, sum + ffi::lua_gettop(L) as ffi::lua_Integer);
                1
            });
            assert_eq!(r, Ok(1));
            assert_eq!(ffi::lua_gettop(L), 1);
            assert_eq!(ffi::lua_tointeger(L, 1), 17);
            ffi::lua_settop(L, 0);
            // raise_string keeps at most RAISE_MAX bytes; raise_owned keeps everything.
            ffi::lua_pushcfunction(L, raises_owned);
            assert_ne!(ffi::lua_pcall(L, 0, 0, 0), ffi::LUA_OK);
            assert_eq!(to_bytes(L, -1).map(|b| b.len()), Some(RAISE_MAX));
            ffi::lua_pushcfunction(L, raises_whole);
            assert_ne!(ffi::lua_pcall(L, 0, 0, 0), ffi::LUA_OK);
            assert_eq!(to_bytes(L, -1).map(|b| b.len()), Some(5000));
            drop(owned);
            ffi::lua_close(L);
        }
    }

    #[test]
    fn strings_and_type_names() {
        // SAFETY: a fresh state used by this thread only.
        unsafe {
            let L = ffi::luaL_newstate();
            push_str(L, "abc");
            push_str(L, b"d\0e");
            ffi::lua_pushinteger(L, 12);
            ffi::lua_pushboolean(L, 1);
            assert_eq!(to_bytes(L, 1), Some(&b"abc"[..]));
            assert_eq!(to_bytes(L, 2), Some(&b"d\0e"[..]));
            assert_eq!(to_bytes(L, 3), Some(&b"12"[..]));
            assert_eq!(to_bytes(L, 4), None);
            assert_eq!(type_name(L, 4), "boolean");
            assert_eq!(type_name(L, 5), "no value");
            assert_eq!(type_name_of(L, ffi::LUA_TNIL), "nil");
            ffi::lua_close(L);
        }
    }
}
