//! Throughput of `skynet.pack` / `skynet.unpack` (lua-seri).
//!
//! Run with `cargo run --release --example seri_bench`. Measures, for a typical RPC
//! argument list and for a ~1 KB table:
//! * the Lua-visible path (`pack` → lightuserdata, `unpack(ptr, size)`, `free`) driven by a
//!   Lua loop, as a service would use it (with, for scale, the cost of constructing the
//!   same values with Lua code);
//! * the worker API (`pack_values` into a reused `Vec`, `unpack_values`) driven from Rust.

#![allow(non_snake_case)]

use std::ffi::{c_char, c_int, CString};
use std::time::Instant;

use mlua::ffi::*;
use skynet::lua::modules::seri;

unsafe extern "C-unwind" fn l_trash(L: *mut lua_State) -> c_int {
    skynet::message::payload_free(lua_touserdata(L, 1) as *mut u8);
    0
}

unsafe extern "C-unwind" fn l_clock(L: *mut lua_State) -> c_int {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    lua_pushnumber(L, START.get_or_init(Instant::now).elapsed().as_secs_f64());
    1
}

unsafe fn exec(L: *mut lua_State, src: &str) -> c_int {
    lua_settop(L, 0);
    let name = c"=bench";
    if luaL_loadbufferx(
        L,
        src.as_ptr() as *const c_char,
        src.len(),
        name.as_ptr(),
        std::ptr::null(),
    ) != LUA_OK
        || lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK
    {
        let mut len = 0;
        let p = lua_tolstring(L, -1, &mut len) as *const u8;
        panic!(
            "{}",
            String::from_utf8_lossy(std::slice::from_raw_parts(p, len))
        );
    }
    lua_gettop(L)
}

const RPC_ARGS: &str = r#""LOGIN", 12345, "some name", { x = 1, y = 2 }"#;

const TABLE_1K: &str = r#"(function()
    local t = { name = "player_0001", level = 42, gold = 123456789, vip = true,
                pos = { x = 10.5, y = -3.25, z = 0 }, tags = { "a", "bb", "ccc" } }
    local items = {}
    for i = 1, 45 do items[i] = { id = 1000 + i, n = i % 7 } end
    t.items = items
    t.bio = string.rep("lorem ipsum ", 30)
    return t
end)()"#;

unsafe fn bench_lua(L: *mut lua_State, label: &str, args: &str, iters: u32) {
    let src = format!(
        r#"local args = table.pack({args})
        local n = args.n
        local p, sz = pack(table.unpack(args, 1, n))
        trash(p)
        local t0 = clock()
        for i = 1, {iters} do
            local p, sz = pack(table.unpack(args, 1, n))
            unpack(p, sz)
            trash(p)
        end
        local t1 = clock()
        for i = 1, {iters} do
            local p, sz = pack(table.unpack(args, 1, n))
            trash(p)
        end
        local t2 = clock()
        local s = packstring(table.unpack(args, 1, n))
        local t3 = clock()
        for i = 1, {iters} do unpack(s) end
        local t4 = clock()
        for i = 1, {iters} do local v = table.pack({args}) end
        local t5 = clock()
        return sz, t1 - t0, t2 - t1, t4 - t3, t5 - t4"#
    );
    exec(L, &src);
    let size = lua_tointegerx(L, 1, std::ptr::null_mut());
    let ns = |i: c_int| lua_tonumberx(L, i, std::ptr::null_mut()) * 1e9 / f64::from(iters);
    let (both, pack, unpack, build) = (ns(2), ns(3), ns(4), ns(5));
    println!(
        "{label:<10} {size:>5} B  Lua path:  pack+unpack {both:>7.0} ns  ({:>5.2} M/s, {:>6.0} MB/s)   pack {pack:>6.0} ns   unpack {unpack:>6.0} ns   (building the values in Lua: {build:.0} ns)",
        1e3 / both,
        size as f64 * 1e3 / both,
    );
    lua_settop(L, 0);
}

unsafe fn bench_rust(L: *mut lua_State, label: &str, args: &str, iters: u32) {
    let n = exec(L, &format!("return {args}"));
    let mut buf = Vec::with_capacity(256);
    seri::pack_values(L, 1, n, &mut buf).unwrap();
    let size = buf.len();
    let t0 = Instant::now();
    for _ in 0..iters {
        buf.clear();
        seri::pack_values(L, 1, n, &mut buf).unwrap();
    }
    let t1 = Instant::now();
    for _ in 0..iters {
        let k = seri::unpack_values(L, &buf).unwrap();
        lua_settop(L, n);
        assert_eq!(k, n);
    }
    let t2 = Instant::now();
    let pack = (t1 - t0).as_secs_f64() * 1e9 / f64::from(iters);
    let unpack = (t2 - t1).as_secs_f64() * 1e9 / f64::from(iters);
    println!(
        "{label:<10} {size:>5} B  Rust API:  pack {pack:>6.0} ns ({:>6.0} MB/s)   unpack {unpack:>6.0} ns ({:>6.0} MB/s)",
        size as f64 * 1e3 / pack,
        size as f64 * 1e3 / unpack,
    );
    lua_settop(L, 0);
}

fn main() {
    let iters: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(500_000);
    unsafe {
        let L = luaL_newstate();
        luaL_openlibs(L);
        let funcs: [(&str, lua_CFunction); 5] = [
            ("pack", seri::l_pack),
            ("unpack", seri::l_unpack),
            ("packstring", seri::l_packstring),
            ("trash", l_trash),
            ("clock", l_clock),
        ];
        for (name, f) in funcs {
            let name = CString::new(name).unwrap();
            lua_pushcfunction(L, f);
            lua_setglobal(L, name.as_ptr());
        }
        for (label, args, k) in [
            ("rpc args", RPC_ARGS, iters),
            ("1 KB table", TABLE_1K, iters / 10),
        ] {
            bench_lua(L, label, args, k);
            bench_rust(L, label, args, k);
        }
        lua_close(L);
    }
}
