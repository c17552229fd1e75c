//! skynet-rs: a Rust runtime for skynet-style game servers.
//!
//! The crate is laid out by concern, one per module (see docs/ARCHITECTURE.md):
//! configuration, the handle table, messages and queues, the scheduler, the timer,
//! the socket server, the Lua host and its native modules, and the native services.

pub mod message;
pub mod lua;
pub mod socket;
