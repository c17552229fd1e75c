//! skynet-rs: a Rust runtime for skynet-style game servers.
//!
//! One concern per module (see docs/ARCHITECTURE.md):
//!
//! | module | concern |
//! |---|---|
//! | [`start`] | process startup/shutdown, signals |
//! | [`config`], [`env`] | the config file and the string environment |
//! | [`daemon`] | daemon mode and the pid file |
//! | [`handle`] | service addresses and local names |
//! | [`message`], [`mq`] | messages, per-service queues |
//! | [`context`] | a service instance |
//! | [`scheduler`] | global run queue, workers, endless-loop monitor |
//! | [`timer`] | the centisecond timer |
//! | [`runtime`] | process-wide state; launch, send, retire, log |
//! | [`command`] | the text commands (`skynet.core.command`) |
//! | [`socket`] | the socket server thread |
//! | [`lua`] | the Lua host and native Lua modules |
//! | [`services`] | native services: logger, snlua, harbor, gate |

#![deny(unsafe_op_in_unsafe_fn)]

pub mod api;
pub mod cache_line;
pub mod command;
pub mod config;
pub mod context;
pub mod daemon;
pub mod env;
pub mod handle;
pub mod lua;
pub mod message;
pub mod mq;
pub mod remote;
pub mod runtime;
pub mod sample;
pub mod scheduler;
pub mod services;
pub mod socket;
pub mod start;
pub mod timer;
