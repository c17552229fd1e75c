//! Native Lua modules given bad arguments from a script: each case must fail that one
//! call with a Lua error (or return a sane value) and leave the process running. Runs
//! the real binary with one service that checks every case and logs a verdict.

mod common;

use common::{config_text, Skynet, TempDir};
use std::time::Duration;

const EDGES: &str = r#"
local skynet = require "skynet"
require "skynet.manager"
local c = require "skynet.core"
local netpack = require "skynet.netpack"
local driver = require "skynet.socketdriver"

local function fails(name, f, ...)
    local ok, err = pcall(f, ...)
    if ok then
        skynet.error("EDGE-BAD " .. name .. " did not fail")
    else
        skynet.error("EDGE-OK " .. name .. " : " .. tostring(err))
    end
end

local function equal(name, got, want)
    if got == want then
        skynet.error("EDGE-OK " .. name)
    else
        skynet.error(string.format("EDGE-BAD %s got %q want %q", name, tostring(got), tostring(want)))
    end
end

skynet.start(function()
    local p, sz = driver.str2p "abc"
    -- Negative sizes once became huge reads (a crash).
    fails("core.tostring negative", c.tostring, p, -1)
    fails("netpack.tostring negative", netpack.tostring, p, -1)
    fails("socketdriver.unpack negative", driver.unpack, p, -5)
    equal("netpack.filter negative", netpack.filter(nil, p, -1), nil)
    -- A table once fell through to a NULL pointer: pack sent uninitialised bytes.
    fails("netpack.pack table", netpack.pack, {}, 10)
    fails("netpack.pack nil", netpack.pack)
    local q, n = netpack.pack(123)
    equal("netpack.pack number", netpack.tostring(q, n), "\0\3" .. "123")
    -- A bad parameter was once passed on as the command's parameter.
    fails("intcommand table param", c.intcommand, "STAT", {})
    -- Level arithmetic once overflowed (a panic in a debug build).
    c.trace("edge", "user", coroutine.running(), math.maxinteger)
    c.trace("edge", "user", 0x7fffffff)
    equal("trace survived", true, true)
    -- Numbers in a strings table are converted by Lua (no Rust buffer alive then).
    local listen = driver.listen("127.0.0.1", 0)
    fails("send bad table", driver.send, listen, { "a", {} })
    equal("resolve literal", driver.resolve("127.0.0.1")[1], "127.0.0.1")
    equal("udp_address bad", pcall(driver.udp_address, "x"), false)
    driver.close(listen)
    c.trash(p, sz)
    -- A script-made harbor "envelope" (any 64 bytes as PTYPE_SYSTEM, with a payload
    -- pointer in it) is refused, not freed.
    c.send(5, skynet.PTYPE_SYSTEM, 0, string.pack("<jc16jI4i4i4xxxxjj", 1234, "EDGEG", 5, 1, 0, 10, 16, 4))
    -- Keep running after the binary "Unknown request (6)" log lines (listen/close
    -- events with no socket protocol): the log must still be read past them.
    skynet.sleep(1)
    skynet.error("EDGE-DONE")
end)
"#;

#[test]
fn bad_arguments_fail_the_call_not_the_process() {
    let dir = TempDir::new("edges");
    dir.write("edges.lua", EDGES);
    let conf = dir.write("config", &config_text(dir.path(), "edges", ""));
    let mut sk = Skynet::start(&conf, dir.path());
    sk.wait_for("EDGE-DONE", Duration::from_secs(8));
    let log = sk.log();
    assert!(!log.contains("EDGE-BAD"), "{log}");
    assert_eq!(log.matches("EDGE-OK").count(), 12, "{log}");
    sk.wait_for("forged envelope", Duration::from_secs(2));
    sk.stop();
}
