#![allow(non_snake_case)] // `L` is the Lua C API convention for a lua_State.
//! The Lua host: Lua 5.4 states for snlua services ([`host`]), the Lua framework
//! embedded in the binary ([`embedded`]) and the native modules ([`modules`]).

pub mod codecache;
pub mod embedded;
pub mod host;
pub mod modules;
