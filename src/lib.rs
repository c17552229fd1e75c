//! skynet-rs: a Rust runtime for skynet-style game servers.
//!
//! One concern per module (see docs/ARCHITECTURE.md for the layers and the dependency
//! picture). Public (`pub`) are only what the binaries, the integration tests and the
//! examples use; the rest is crate-private.
//!
//! | module | layer | concern |
//! |---|---|---|
//! | [`start`] | start-up | process startup/shutdown, signals; installs the native-service registry |
//! | `config`, `env` | start-up | the config file and the string environment |
//! | `daemon` | start-up | daemon mode and the pid file |
//! | `runtime` | core | process-wide state; launch, send, retire, destroy, log |
//! | `scheduler` | core | global run queue, workers, endless-loop monitor |
//! | `context` | core | a service instance; the `NativeService` trait |
//! | `command` | core | the text commands (`skynet.core.command`) |
//! | `handle`, `mq`, `timer`, `cache_line` | core leaves | addresses and names, per-service queues, the centisecond timer |
//! | [`message`] | leaf | messages and payload blocks |
//! | `remote` | leaf | the envelope of a send to a global name |
//! | `api` | service API | what services and Lua modules may ask of the runtime (our `skynet.h`) |
//! | `services` | services | native services: logger, snlua, harbor, gate |
//! | [`lua`] | Lua layer | the Lua host, native Lua modules, raw C API helpers ([`lua::ffi`]) |
//! | [`socket`] | socket | the socket server thread |
//! | [`sample`] | sample | Rust that serves only the sample game server and its client |

#![deny(unsafe_op_in_unsafe_fn)]

// Public: what the two binaries (`skynet`, `skynet-lua`), the integration tests and
// the examples use. Everything else is the crate's own.
pub(crate) mod api;
pub(crate) mod cache_line;
pub(crate) mod command;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod daemon;
pub(crate) mod env;
pub(crate) mod handle;
pub mod lua;
pub mod message;
pub(crate) mod mq;
pub(crate) mod remote;
pub(crate) mod runtime;
pub mod sample;
pub(crate) mod scheduler;
pub(crate) mod services;
pub mod socket;
pub mod start;
pub(crate) mod timer;
