//! Native services: the modules a `LAUNCH "<module> <args>"` can name.
//!
//! Upstream loads these from shared objects on `cpath`; we serve them from a static
//! registry, whatever `cpath` says, so configs written for upstream work unchanged.
//!
//! To add one: implement [`NativeService`] in its own file and add a line to [`create`].

use crate::context::Context;
use crate::message::Message;
use std::sync::Arc;

pub mod gate;
pub mod harbor;
pub mod logger;
pub mod snlua;

/// A service implemented in Rust.
///
/// The runtime calls `init` once on the launching thread, then `dispatch` for each
/// message, never concurrently for one service (a service's queue is held by one
/// worker at a time), so implementations need no locking of their own.
pub trait NativeService: Send {
    /// `param` is the text after the module name (None when there was no delimiter).
    fn init(&mut self, ctx: &Arc<Context>, param: Option<&str>) -> Result<(), String>;

    /// Handle one message. Return `true` when the service took ownership of
    /// `msg.data` (kept or forwarded it); otherwise the runtime frees it.
    fn dispatch(&mut self, ctx: &Arc<Context>, msg: &mut Message) -> bool;

    /// The `SIGNAL` command.
    fn signal(&mut self, _ctx: &Arc<Context>, _sig: i32) {}
}

/// Instantiate the native module `name`, if we have it.
pub fn create(name: &str) -> Option<Box<dyn NativeService>> {
    match name {
        "snlua" => Some(Box::new(snlua::Snlua::new())),
        "logger" => Some(Box::new(logger::Logger::new())),
        "harbor" => Some(Box::new(harbor::Harbor::new())),
        "gate" => Some(Box::new(gate::Gate::new())),
        "package" => Some(Box::new(crate::sample::package::Package::new())),
        _ => None,
    }
}
