//! `skynet.mongo.driver` through Lua, as upstream's `lualib/skynet/db/mongo.lua` uses it:
//! OP_MSG framing of a `bson.encode_order` command, `length` of a reply head, `reply`
//! parsing to a light userdata that `bson.decode` reads, and the error texts. The
//! layout checked is MongoDB's documented wire format (16-byte standard header, 32-bit
//! flagBits, kind-0 section). Runs in a plain Lua state and in a `skynet` service.

mod common;

use std::time::Duration;

use mlua::{Lua, Table};
use skynet::lua::modules::bson::luaopen_bson;
use skynet::lua::modules::mongo::luaopen_skynet_mongo_driver;

const CHECKS: &str = r#"
local bson = require "bson"
local driver = require "skynet.mongo.driver"
local function deq(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) ~= "table" then return a == b end
    for k, v in pairs(a) do if not deq(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end
local function err(f, ...)
    local ok, e = pcall(f, ...)
    assert(not ok, "no error")
    return e
end

-- a command, framed as mongo_db:runCommand does
local cmd = bson.encode_order("ping", 1, "$db", "admin")
local pack = driver.op_msg(0x01020304, 0, cmd)
assert(#pack == 21 + #cmd)
local len, id, to, op, flags, kind, rest = string.unpack("<i4i4i4i4i4B", pack)
assert(len == #pack and id == 0x01020304 and to == 0 and op == 2013 and flags == 0 and kind == 0)
assert(pack:sub(22) == tostring(cmd))
-- send_command's fire-and-forget flag; request ids wrap to 32 bits as C ints
local len2, id2, _, _, flags2 = string.unpack("<i4i4i4i4i4", driver.op_msg(-1, 2, cmd))
assert(flags2 == 2 and id2 == -1 and len2 == #pack)
assert(select(2, string.unpack("<i4i4", driver.op_msg((1 << 32) + 9, 0, cmd))) == 9)
-- a light userdata document (a reply's) frames too
assert(driver.op_msg(1, 0, bson.to_lightuserdata(cmd)) == driver.op_msg(1, 0, cmd))

-- a reply, read as dispatch_reply does: 4 bytes of length, then the rest
local answer = bson.encode_order("ok", 1.0, "n", 3, "cursor", {firstBatch = {{_id = 1}}})
local wire = string.pack("<i4i4i4i4i4B", 21 + #answer, 77, 0x01020304, 2013, 0, 0) .. tostring(answer)
local need = driver.length(wire:sub(1, 4))
assert(need == #wire - 4)
local data = wire:sub(5, 4 + need)
local succ, reply_id, doc = driver.reply(data)
assert(succ == true and reply_id == 0x01020304 and type(doc) == "userdata")
assert(deq(bson.decode(doc), {ok = 1.0, n = 3, cursor = {firstBatch = {{_id = 1}}}}))
-- moreToCome replies are accepted
local more = string.pack("<i4i4i4i4B", 1, 2, 2013, 2, 0) .. tostring(answer)
assert(select(2, driver.reply(more)) == 2)
-- too short for a header: false
assert(driver.reply(("x"):rep(15)) == false)

-- errors
local e = {
    err(driver.op_msg, 1, 0, nil),
    err(driver.reply, string.pack("<i4i4i4i4B", 1, 2, 1, 0, 0) .. tostring(answer)),
    err(driver.reply, string.pack("<i4i4i4i4B", 1, 2, 2013, 1, 0) .. tostring(answer)),
    err(driver.reply, string.pack("<i4i4i4i4B", 1, 2, 2013, 4, 0) .. tostring(answer)),
    err(driver.reply, string.pack("<i4i4i4i4B", 1, 2, 2013, 0, 1) .. tostring(answer)),
    err(driver.reply, string.pack("<i4i4i4i4B", 1, 2, 2013, 0, 0) .. tostring(answer) .. tostring(answer)),
    err(driver.reply, string.pack("<i4i4i4i4", 1, 2, 2013, 0)),
    err(driver.length, "ab"),
    err(driver.op_msg, "x", 0, cmd),
}
local want = {
    "opmsg require cmd document",
    "Unsupported opcode:1",
    "Unsupported OP_MSG flag checksumPresent",
    "Unsupported OP_MSG flag:4",
    "Unsupported OP_MSG payload type: 1",
    "Unsupported OP_MSG reply: >1 section",
    "Invalid OP_MSG reply: truncated",
    "Invalid reply length",
    "(number expected, got string)",
}
for i, w in ipairs(want) do
    assert(e[i]:sub(-#w) == w, i .. ": " .. e[i])
end
return "MONGO OK"
"#;

#[test]
fn driver_in_a_lua_state() {
    let lua = Lua::new();
    // SAFETY: valid lua_CFunctions.
    let (b, d) = unsafe {
        (
            lua.create_c_function(luaopen_bson).unwrap(),
            lua.create_c_function(luaopen_skynet_mongo_driver).unwrap(),
        )
    };
    let package: Table = lua.globals().get("package").unwrap();
    let preload: Table = package.get("preload").unwrap();
    preload.set("bson", b).unwrap();
    preload.set("skynet.mongo.driver", d).unwrap();
    let r: String = lua.load(CHECKS).eval().unwrap();
    assert_eq!(r, "MONGO OK");
}

#[test]
fn driver_in_a_service() {
    let src = format!(
        "local skynet = require 'skynet'\nlocal function checks()\n{CHECKS}\nend\nskynet.start(function()\n  skynet.error(checks())\n  skynet.error('MONGO DONE')\nend)\n"
    );
    let log = common::run_service("mongotest", &src, "MONGO DONE", Duration::from_secs(10));
    assert!(log.contains("MONGO OK"), "{log}");
}
