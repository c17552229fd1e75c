//! Rust that serves the sample game server and its command-line client, not the
//! framework: a skynet node that runs only framework services never uses it.
//!
//! * [`package`]: the native `package` service, one per client connection of the
//!   sample server (framing, packet queue, heartbeat; `sample.md` §5), a native
//!   service like the framework's.
//! * [`lsocket`]: the `lsocket` Lua module of `skynet-lua` (`src/bin/skynet-lua.rs`),
//!   the plain interpreter that runs the sample's client (`sample.md` §8). It uses
//!   only [`crate::lua::ffi`], no runtime.

pub mod lsocket;
pub mod package;
