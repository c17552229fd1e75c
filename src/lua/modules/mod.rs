//! Native Lua modules (`skynet.core`, `skynet.socketdriver`, `skynet.netpack`, `sproto.core`, ...).
//!
//! Hot-path functions are raw `lua_CFunction`s over `mlua::ffi`.

pub mod seri;
pub mod netpack;
