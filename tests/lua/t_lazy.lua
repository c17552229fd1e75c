-- The framework loads its less used parts on first use: an idle service has only
-- skynet.lua; skynet/ext.lua, skynet/ext_debug.lua, skynet/debug.lua and
-- skynet/require.lua come in when something needs them, and behave the same.
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	local peer = skynet.newservice "t_lazy_peer"
	T.eq(skynet.call(peer, "lua", "loaded"), "lazy", "idle service")
	local ok, l = skynet.call(peer, "lua", "time")
	T.eq(ok, true, "skynet.time")
	T.eq(l, "skynet.ext lazy", "after skynet.time")
	T.eq(type(skynet.call(peer, "debug", "MEM")), "number", "debug MEM")
	T.eq(skynet.call(peer, "lua", "loaded"), "skynet.ext skynet.debug lazy", "after a debug message")
	local n, l2 = skynet.call(peer, "lua", "task")
	T.eq(n, 0, "skynet.task")
	T.eq(l2, "skynet.ext skynet.ext_debug skynet.debug complete", "after skynet.task")
	local lazy, l3 = skynet.call(peer, "lua", "require")
	T.eq(lazy, true, "require from a handler")
	T.eq(l3, "skynet.ext skynet.ext_debug skynet.debug skynet.require complete", "after require")

	-- a traced request to a fresh service loads the tracing part by itself
	local peer2 = skynet.newservice "t_lazy_peer"
	skynet.trace "lazy"
	T.eq(skynet.call(peer2, "lua", "loaded"), "skynet.ext skynet.ext_debug complete", "traced request")

	-- unknown fields stay nil; a field set to nil stays nil
	T.eq(skynet.no_such_field, nil, "unknown field")
	skynet.memlimit = nil
	T.eq(skynet.memlimit, nil, "removed field")
end)
