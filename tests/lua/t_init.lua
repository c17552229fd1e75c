-- init order, skynet.require from handler coroutines, loader globals
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
INIT_LOG = {}
LOAD_LOG = {}
INIT_LOG[#INIT_LOG + 1] = "main chunk"
local T = require "testlib"
skynet.init(function() INIT_LOG[#INIT_LOG + 1] = "init 1" end)
require "t_init_main_mod"
skynet.init(function() INIT_LOG[#INIT_LOG + 1] = "init 2" end)

local args = { ... }

T.run(function()
	INIT_LOG[#INIT_LOG + 1] = "start"
	T.seq(INIT_LOG, { "main chunk", "main_mod body", "init 1", "main_mod init", "init 2", "start" },
		"init order")
	T.eq(SERVICE_NAME, "t_init", "SERVICE_NAME")
	T.check(type(SERVICE_PATH) == "string" and SERVICE_PATH:sub(-1) == "/", "SERVICE_PATH")
	T.eq(LUA_PATH, nil, "LUA_PATH cleared")
	T.eq(LUA_SERVICE, nil, "LUA_SERVICE cleared")
	T.eq(#args, 0, "no args")

	-- after start, skynet.init runs at once (2016 semantics)
	local now = false
	skynet.init(function() now = true end)
	T.eq(now, true, "init after start runs immediately")

	-- concurrent requires of a module whose body blocks: loaded once, all wait
	local mods = {}
	local done = 0
	for i = 1, 3 do
		skynet.fork(function()
			mods[i] = require "t_init_mod"
			done = done + 1
		end)
	end
	while done < 3 do skynet.sleep(2) end
	T.eq(mods[1].loads, 1, "module body ran once")
	T.check(mods[1] == mods[2] and mods[2] == mods[3], "same module for everyone")
	T.eq(mods[1].inited, true, "module init ran")
	T.seq(LOAD_LOG, { "mod body", "mod init" }, "module init after body")

	T.errors("circular", "circular dependency", require, "t_init_circ_a")
	T.errors("missing module", "module 'no_such_module' not found", require, "no_such_module")

	-- a service with arguments
	local peer = skynet.newservice("t_args", "a", 2, "c")
	T.eq(skynet.call(peer, "lua"), "a,2,c,3", "service args")
end)
