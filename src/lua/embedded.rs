//! The Lua framework compiled into the binary (see build.rs): the files of the
//! repo's `skynet/lualib` and `skynet/service` as `lualib/...` and `service/...`.

include!(concat!(env!("OUT_DIR"), "/embedded_lua.rs"));

/// The embedded file at `path` (e.g. `lualib/skynet.lua`).
pub fn file(path: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// Prefix of virtual paths that `loadfile` resolves from the embedded files.
pub const VIRTUAL_ROOT: &str = "[embedded]/";
