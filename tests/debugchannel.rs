//! `skynet.debugchannel` in plain Lua states: a channel created in one state and
//! connected from another (as `debug_agent` and the debugged service do), FIFO
//! `write`/`read`, the single-connection rule, stale and bad handles, idempotent
//! release, and `sethook` with a hook that yields the coroutine it runs in; then the
//! module as the real binary preloads it, across two services.

mod common;

use std::time::Duration;

use mlua::{Lua, Table};
use skynet::lua::modules::debugchannel::luaopen_skynet_debugchannel;

fn lua() -> Lua {
    let lua = Lua::new();
    // SAFETY: a valid lua_CFunction.
    let open = unsafe { lua.create_c_function(luaopen_skynet_debugchannel) }.unwrap();
    let package: Table = lua.globals().get("package").unwrap();
    let preload: Table = package.get("preload").unwrap();
    preload.set("skynet.debugchannel", open).unwrap();
    lua.load("dc = require 'skynet.debugchannel'")
        .exec()
        .unwrap();
    lua
}

#[test]
fn channel_between_two_states() {
    let agent = lua();
    let debugged = lua();
    let handle: mlua::LightUserData = agent
        .load("local c, h = dc.create() chan = c return h")
        .eval()
        .unwrap();
    debugged.globals().set("h", handle).unwrap();
    debugged
        .load(
            r##"
            chan = dc.connect(h)
            local ok, e = pcall(dc.connect, h)
            assert(not ok and e:find "new channel failed", e)
            local ok, e = pcall(dc.connect, nil)
            assert(not ok and e:find "Invalid channel pointer", e)
            assert(chan:read() == nil)
            assert(select("#", chan:read(0.01)) == 0)
            "##,
        )
        .exec()
        .unwrap();
    agent
        .load("chan:write 'first' chan:write '' chan:write 'third\\0bytes'")
        .exec()
        .unwrap();
    debugged
        .load(
            r##"
            assert(chan:read() == "first")
            assert(chan:read() == "")
            assert(chan:read() == "third\0bytes")
            assert(chan:read() == nil)
            "##,
        )
        .exec()
        .unwrap();
    // The creator lets go (twice: explicitly, then by GC); the reader keeps working.
    agent
        .load("dc.release(chan) dc.release(chan) local ok = pcall(chan.write, chan, 'x') assert(not ok) chan = nil collectgarbage()")
        .exec()
        .unwrap();
    debugged
        .load("assert(chan:read() == nil) dc.release(chan) chan = nil collectgarbage()")
        .exec()
        .unwrap();
    // Both gone: the handle is stale now.
    let e: String = debugged
        .load("local ok, e = pcall(dc.connect, h) assert(not ok) return e")
        .eval()
        .unwrap();
    assert!(e.contains("new channel failed"), "{e}");
    // Wrong argument types.
    let e: String = debugged
        .load("local ok, e = pcall(function() local c = dc.create() c.read({}) end) return e")
        .eval()
        .unwrap();
    assert!(e.contains("debugchannel expected"), "{e}");
}

#[test]
fn sethook_yields_from_the_hook() {
    let lua = lua();
    lua.load(
        r##"
        local events = {}
        local co = coroutine.create(function(a)
            local x = a
            x = x + 1
            x = x + 1
            return x
        end)
        dc.sethook(co, function(ev, line)
            events[#events + 1] = ev .. ":" .. tostring(line)
            return ev == "line"
        end, "l")
        local resumes = 0
        local ok, r
        repeat
            ok, r = coroutine.resume(co, 1)
            assert(ok, r)
            resumes = resumes + 1
        until coroutine.status(co) == "dead"
        assert(r == 3, r)
        assert(resumes == #events + 1, resumes .. " " .. #events)
        assert(#events >= 4 and events[1]:match "^line:%d+$", events[1])

        -- cleared: runs straight through
        local co2 = coroutine.create(function() local y = 1 y = y + 1 return y end)
        dc.sethook(co2, function() return true end, "l")
        dc.sethook(co2)
        assert(select(2, coroutine.resume(co2)) == 2)

        -- count hook on the running thread (no yield), then off
        local n = 0
        dc.sethook(function(ev) n = n + 1 assert(ev == "count") end, "", 10)
        for i = 1, 100 do end
        dc.sethook()
        assert(n > 0)
        local ok, e = pcall(dc.sethook, function() end, {})
        assert(not ok)
        "##,
    )
    .exec()
    .unwrap();
}

#[test]
fn channel_across_services() {
    let src = r##"
local skynet = require "skynet"
local dc = require "skynet.debugchannel"
local mode = ...
if mode == "reader" then
    skynet.start(function()
        skynet.dispatch("lua", function(_, _, h)
            local c = dc.connect(h)
            local got = {}
            for _ = 1, 100 do
                local s = c:read(0.01)
                if s then got[#got + 1] = s end
                if #got == 2 then break end
            end
            skynet.ret(skynet.pack(table.concat(got, ",")))
        end)
    end)
else
    skynet.start(function()
        local c, h = dc.create()
        c:write "hello"
        c:write "world"
        local reader = skynet.newservice(SERVICE_NAME, "reader")
        skynet.error("DC " .. skynet.call(reader, "lua", h))
        skynet.error "DC DONE"
    end)
end
"##;
    let log = common::run_service("dctest", src, "DC DONE", Duration::from_secs(10));
    assert!(log.contains("DC hello,world"), "{log}");
}
