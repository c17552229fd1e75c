//! Embeds the Lua framework (the whole `skynet/` tree: `skynet/lualib`, `skynet/service`)
//! into the binaries, as the fallback used when a config's paths do not lead to our Lua
//! files. Files on disk always win. Embedded names drop the `skynet/` prefix
//! (`lualib/skynet.lua`, `service/launcher.lua`). The sample game server's own Lua
//! (top-level `lualib/`, `service/`) is an application and is never embedded.

use std::fmt::Write as _;
use std::path::Path;

fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = format!("{}/{}", prefix, e.file_name().to_string_lossy());
        if path.is_dir() {
            collect(&path, &name, out);
        } else if name.ends_with(".lua") {
            out.push((name, path.canonicalize().unwrap().display().to_string()));
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("skynet");
    let mut files = Vec::new();
    for top in ["lualib", "service"] {
        collect(&root.join(top), top, &mut files);
    }
    let mut code = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        writeln!(code, "    ({name:?}, include_bytes!({path:?})),").unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_lua.rs");
    std::fs::write(out, code).unwrap();
    export_lua_api();
}

/// The Lua 5.4 C API as declared by lua.h, lauxlib.h and lualib.h (5.4.9, the version
/// mlua's `vendored` feature builds), plus the data symbol `lua_ident`.
#[rustfmt::skip]
const LUA_API: &[&str] = &[
    "luaL_addgsub", "luaL_addlstring", "luaL_addstring", "luaL_addvalue", "luaL_argerror",
    "luaL_buffinit", "luaL_buffinitsize", "luaL_callmeta", "luaL_checkany",
    "luaL_checkinteger", "luaL_checklstring", "luaL_checknumber", "luaL_checkoption",
    "luaL_checkstack", "luaL_checktype", "luaL_checkudata", "luaL_checkversion_", "luaL_error",
    "luaL_execresult", "luaL_fileresult", "luaL_getmetafield", "luaL_getsubtable", "luaL_gsub",
    "luaL_len", "luaL_loadbufferx", "luaL_loadfilex", "luaL_loadstring", "luaL_newmetatable",
    "luaL_newstate", "luaL_openlibs", "luaL_optinteger", "luaL_optlstring", "luaL_optnumber",
    "luaL_prepbuffsize", "luaL_pushresult", "luaL_pushresultsize", "luaL_ref", "luaL_requiref",
    "luaL_setfuncs", "luaL_setmetatable", "luaL_testudata", "luaL_tolstring", "luaL_traceback",
    "luaL_typeerror", "luaL_unref", "luaL_where", "lua_absindex", "lua_arith", "lua_atpanic",
    "lua_callk", "lua_checkstack", "lua_close", "lua_closeslot", "lua_closethread",
    "lua_compare", "lua_concat", "lua_copy", "lua_createtable", "lua_dump", "lua_error",
    "lua_gc", "lua_getallocf", "lua_getfield", "lua_getglobal", "lua_gethook",
    "lua_gethookcount", "lua_gethookmask", "lua_geti", "lua_getinfo", "lua_getiuservalue",
    "lua_getlocal", "lua_getmetatable", "lua_getstack", "lua_gettable", "lua_gettop",
    "lua_getupvalue", "lua_ident", "lua_iscfunction", "lua_isinteger", "lua_isnumber",
    "lua_isstring", "lua_isuserdata", "lua_isyieldable", "lua_len", "lua_load", "lua_newstate",
    "lua_newthread", "lua_newuserdatauv", "lua_next", "lua_pcallk", "lua_pushboolean",
    "lua_pushcclosure", "lua_pushfstring", "lua_pushinteger", "lua_pushlightuserdata",
    "lua_pushlstring", "lua_pushnil", "lua_pushnumber", "lua_pushstring", "lua_pushthread",
    "lua_pushvalue", "lua_pushvfstring", "lua_rawequal", "lua_rawget", "lua_rawgeti",
    "lua_rawgetp", "lua_rawlen", "lua_rawset", "lua_rawseti", "lua_rawsetp", "lua_resetthread",
    "lua_resume", "lua_rotate", "lua_setallocf", "lua_setcstacklimit", "lua_setfield",
    "lua_setglobal", "lua_sethook", "lua_seti", "lua_setiuservalue", "lua_setlocal",
    "lua_setmetatable", "lua_settable", "lua_settop", "lua_setupvalue", "lua_setwarnf",
    "lua_status", "lua_stringtonumber", "lua_toboolean", "lua_tocfunction", "lua_toclose",
    "lua_tointegerx", "lua_tolstring", "lua_tonumberx", "lua_topointer", "lua_tothread",
    "lua_touserdata", "lua_type", "lua_typename", "lua_upvalueid", "lua_upvaluejoin",
    "lua_version", "lua_warning", "lua_xmove", "lua_yieldk", "luaopen_base",
    "luaopen_coroutine", "luaopen_debug", "luaopen_io", "luaopen_math", "luaopen_os",
    "luaopen_package", "luaopen_string", "luaopen_table", "luaopen_utf8",
];

/// Export the Lua C API from the `skynet` and `skynet-lua` binaries (issue 11), so a
/// Lua 5.4 C module found on `package.cpath` (lua-cjson, lpeg, ...) resolves its
/// `lua_*`/`luaL_*` symbols against the Lua inside the binary, as it does with a stock
/// `lua` or upstream skynet. Two parts:
/// - a dynamic list of the globs `lua_*`, `luaL_*`, `luaopen_*`: only the Lua API goes
///   into the dynamic symbol table, not every Rust symbol as `--export-dynamic` would,
///   and the linker keeps exported symbols through `--gc-sections`;
/// - `--undefined` for every API function, so each one is linked in even when nothing
///   in the binary calls it (and a Lua that lacks one fails the link, not a module).
///
/// The vendored Lua is C compiled outside Rust's LTO, so LTO cannot drop it.
fn export_lua_api() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if !matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        return;
    }
    let list = Path::new(&std::env::var("OUT_DIR").unwrap()).join("lua-api.list");
    std::fs::write(&list, "{\n  lua_*;\n  luaL_*;\n  luaopen_*;\n};\n").unwrap();
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--dynamic-list={}",
        list.display()
    );
    for name in LUA_API {
        println!("cargo:rustc-link-arg-bins=-Wl,--undefined={name}");
    }
}
