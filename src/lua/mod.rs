//! The Lua host: Lua 5.4 states for snlua services ([`host`]), the Lua framework
//! embedded in the binary (`embedded`), the native modules ([`modules`]) and the raw
//! C API helpers they share ([`ffi`], a leaf without the runtime).
//!
//! Unsafe code: the crate denies `unsafe_op_in_unsafe_fn`, so unsafe fns spell their
//! unsafe operations out in `unsafe` blocks, and here every such block carries a
//! `// SAFETY:` note (enforced below).

#![allow(non_snake_case)] // `L` is the Lua C API convention for a lua_State.
#![deny(clippy::undocumented_unsafe_blocks)]

pub(crate) mod codecache;
pub(crate) mod embedded;
pub mod ffi;
// Public because `skynet-lua` also takes the embedded framework's searcher from here
// (work in progress on main); the host's own items are crate-private.
pub mod host;
pub mod modules;
pub mod prestart;
