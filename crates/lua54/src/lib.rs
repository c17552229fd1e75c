//! Lua 5.4 for skynet-rs, with prototypes shared between states.
//!
//! This crate compiles the Lua 5.4 sources of the `lua-src` crate with a small patch
//! (see build.rs) and links them into the process; mlua's `ffi` (mlua-sys with its
//! `external` feature) declares the standard API against these symbols. On top of the
//! standard API it adds three functions (csrc/shared.c):
//!
//! - [`skynet_lua_shareproto`]: in a dedicated *master* state whose collector is
//!   stopped, flag a loaded function's prototype tree as shared (immutable, never
//!   collected) and get its root;
//! - [`skynet_lua_pushshared`]: in any state, push a closure over a shared root, with
//!   `_ENV` set to that state's globals (what `lua_load` does for a main chunk);
//! - [`skynet_lua_isshared`]: whether a function runs shared code.
//!
//! Invariant for callers: the master state is used under one lock, never runs code and
//! never collects (`lua_gc(L, LUA_GCSTOP)` before the first load); roots it hands out
//! stay valid for the life of the process.

#![allow(non_snake_case)]

use std::ffi::{c_int, c_void};

/// An opaque `lua_State`.
pub type LuaState = c_void;

extern "C-unwind" {
    /// Flags the prototype tree of the Lua function at `idx` of the master state `L`
    /// shared; returns its root, or null when the value is not a Lua function.
    pub fn skynet_lua_shareproto(L: *mut LuaState, idx: c_int) -> *const c_void;
    /// Shares every short string the master state `L` holds (once, after opening the
    /// standard libraries in it, before any other state exists).
    pub fn skynet_lua_sharestrings(L: *mut LuaState);
    /// Pushes onto `L` a closure over the shared root `proto`.
    pub fn skynet_lua_pushshared(L: *mut LuaState, proto: *const c_void);
    /// 1 if the Lua function at `idx` runs a shared prototype, else 0.
    pub fn skynet_lua_isshared(L: *mut LuaState, idx: c_int) -> c_int;
    /// Lua 5.4.6's `lua_closethread` (mlua-sys declares it only for its own build).
    pub fn lua_closethread(L: *mut LuaState, from: *mut LuaState) -> c_int;
}
