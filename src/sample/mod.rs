//! Rust that serves the sample game server and its command-line client, not the
//! framework: a skynet node that runs only framework services never uses it.
//!
//! * `package`: the native `package` service, one per client connection of the
//!   sample server (framing, packet queue, heartbeat; `sample.md` §5). A native
//!   service like the framework's: it reaches the runtime only through `crate::api`,
//!   and start-up registers it with the others (`create`).
//! * [`lsocket`]: the `lsocket` Lua module of `skynet-lua` (`src/bin/skynet-lua.rs`),
//!   the plain interpreter that runs the sample's client (`sample.md` §8). It uses
//!   only [`crate::lua::ffi`], no runtime.
//! * [`clientsocket`]: `client.socket`, upstream's demo client library, also for
//!   `skynet-lua` (upstream's `examples/client.lua`).

pub mod clientsocket;
pub mod lsocket;
pub(crate) mod package;

use crate::api::NativeService;

/// Instantiate the sample's native module `name`, if it is one.
pub(crate) fn create(name: &str) -> Option<Box<dyn NativeService>> {
    match name {
        "package" => Some(Box::new(package::Package::new())),
        _ => None,
    }
}
