//! The Lua host: Lua 5.4 states for snlua services and the native modules they require.

pub mod modules;
