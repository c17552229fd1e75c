-- The process-wide code cache shares compiled prototypes between services
-- (crates/lua54, src/lua/codecache.rs): shared code must behave exactly like code
-- compiled in the state, strings from either side compare and index alike, and an
-- idle service holds no copy of the framework.
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"
local cache = require "skynet.codecache"

T.run(function()
	T.eq(cache.mode(), "ON", "default mode")
	T.eq(cache.shared(skynet.start), true, "the framework runs shared code")
	T.eq(cache.shared(print), false, "a C function")
	local mod = require "t_codecache_mod"
	T.eq(cache.shared(mod.make), true, "a required module runs shared code")

	-- strings made at run time in this state vs the shared constants
	local a = ("al"):rep(1) .. "pha"
	local long = ("a key that is longer than forty characters, "):rep(1) .. "so a long string"
	local t = mod.make()
	T.eq(t[a], 1, "state string indexes a table built by shared code")
	T.eq(rawget(t, a), 1, "rawget")
	T.eq(t[long], 3, "long key")
	local ok_next, k = pcall(next, t, a)
	T.eq(ok_next, true, "next from a state string: " .. tostring(k))
	T.eq(k == nil or t[k] ~= nil, true, "next gives a key of the table")
	local u = {}
	u[a] = 10
	T.eq(mod.get_alpha(u), 10, "shared constant indexes a table keyed by a state string")
	u[long] = 30
	T.eq(mod.get_long(u), 30, "long keys")
	T.eq(mod.is_alpha(a), true, "== across sides")
	T.eq(rawequal(a, "alpha"), true, "rawequal")
	local fresh = load("return 'alpha'")()
	T.eq(cache.shared(load("return 1")), false, "code compiled by load is the state's own")
	T.eq(mod.get_alpha({ [fresh] = 7 }), 7, "string from code compiled in the state")
	local seen = 0
	for key in pairs(t) do
		if key == a or key == long or key == "beta" then
			seen = seen + 1
		end
	end
	T.eq(seen, 3, "pairs")
	-- metamethod names: a metatable built by shared code, looked up by the VM
	local mt = setmetatable({}, { __index = function(_, key) return key .. "!" end })
	T.eq(mt[a], "alpha!", "__index from shared code")

	-- modes
	local f = assert(loadfile(SERVICE_PATH .. "t_codecache_mod.lua"))
	T.eq(cache.shared(f), true, "loadfile of a cached file")
	T.eq(cache.mode "OFF", "OFF", "mode OFF")
	local g = assert(loadfile(SERVICE_PATH .. "t_codecache_mod.lua"))
	T.eq(cache.shared(g), false, "OFF compiles in the state")
	T.eq(g().get_alpha(t), 1, "and works")
	T.eq(cache.mode "EXIST", "EXIST", "mode EXIST")
	T.eq(cache.shared(assert(loadfile(SERVICE_PATH .. "t_codecache_mod.lua"))), true, "EXIST uses the cache")
	T.eq(cache.shared(assert(loadfile(SERVICE_PATH .. "t_codecache_peer.lua"))), false, "EXIST adds nothing")
	cache.mode "ON"
	local ok, err = pcall(cache.mode, "SOMETIMES")
	T.eq(ok, false, "bad mode")
	T.eq(tostring(err):find("invalid option 'SOMETIMES'", 1, true) ~= nil, true, "bad mode text: " .. tostring(err))

	-- an idle service's heap holds no framework code (67 KB before sharing)
	local peer = skynet.newservice "t_codecache_peer"
	local kb = skynet.call(peer, "lua", "heap")
	T.eq(kb < 45, true, string.format("idle service heap %.1f KB", kb))
	skynet.kill(peer)
end)
