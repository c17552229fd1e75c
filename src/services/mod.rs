//! Native services of the framework: the modules a `LAUNCH "<module> <args>"` can name
//! (the sample's `package` is in [`crate::sample`]).
//!
//! Upstream loads these from shared objects on `cpath`; we serve them from a static
//! registry, whatever `cpath` says, so configs written for upstream work unchanged.
//! Start-up hands [`create`] (with the sample's) to the runtime, which knows only the
//! [`NativeService`] trait.
//!
//! To add one: implement [`NativeService`] in its own file and add a line to [`create`].
//! Services reach the runtime through [`crate::api`] only.

use crate::api::NativeService;

pub mod gate;
pub mod harbor;
pub mod logger;
pub mod snlua;

/// Instantiate the native module `name`, if we have it.
pub fn create(name: &str) -> Option<Box<dyn NativeService>> {
    match name {
        "snlua" => Some(Box::new(snlua::Snlua::new())),
        "logger" => Some(Box::new(logger::Logger::new())),
        "harbor" => Some(Box::new(harbor::Harbor::new())),
        "gate" => Some(Box::new(gate::Gate::new())),
        _ => None,
    }
}
