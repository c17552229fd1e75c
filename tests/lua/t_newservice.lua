-- newservice outcomes; launcher commands
local skynet = require "skynet"
require "skynet.manager"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	T.eq(skynet.newservice "t_exit_in_start", nil, "exit in start -> nil")
	T.errors("error in start", "call failed", skynet.newservice, "t_fail_in_start")
	T.errors("error in main chunk", "call failed", skynet.newservice, "t_fail_in_main")
	T.errors("missing service", "call failed", skynet.newservice, "t_no_such_service")

	local a = skynet.newservice("t_args", "x")
	local list = skynet.call(".launcher", "lua", "LIST")
	T.eq(list[skynet.address(a)], "snlua t_args x", "launcher LIST entry")
	local n = 0
	for k, v in pairs(list) do
		n = n + 1
		T.check(not v:find("t_exit_in_start", 1, true), "exited service not listed")
		T.check(not v:find("t_fail", 1, true), "failed service not listed")
	end
	T.check(list[skynet.address(skynet.self())] ~= nil, "we are listed")

	local stat = skynet.call(".launcher", "lua", "STAT")
	local s = stat[skynet.address(a)]
	T.check(type(s) == "table" and s.task ~= nil and s.mqlen ~= nil and s.message ~= nil and s.cpu ~= nil,
		"launcher STAT entry")
	local mem = skynet.call(".launcher", "lua", "MEM", 100)
	T.check(type(mem[skynet.address(a)]) == "string" and mem[skynet.address(a)]:match "^[%d.]+ Kb %(snlua t_args x%)$",
		"launcher MEM entry: " .. tostring(mem[skynet.address(a)]))
	local gc = skynet.call(".launcher", "lua", "GC")
	T.check(gc[skynet.address(a)] ~= nil, "launcher GC entry")
	local unk = skynet.call(".launcher", "lua", "NOSUCH")
	T.eq(type(unk) == "table" and unk[1], "Unknown command", "launcher unknown command")
	T.eq(skynet.call(".launcher", "lua", "list")[skynet.address(a)], "snlua t_args x", "lower-case command")

	local k = skynet.call(".launcher", "lua", "KILL", a)
	T.eq(k[skynet.address(a)], "snlua t_args x", "launcher KILL result")
	skynet.sleep(1)
	T.eq(skynet.call(".launcher", "lua", "LIST")[skynet.address(a)], nil, "killed service unlisted")
	T.errors("call to killed", "call to invalid address", skynet.call, a, "lua")

	-- skynet.launch bypasses the launcher
	local direct = skynet.launch("snlua", "t_args", "direct")
	T.eq(math.type(direct), "integer", "skynet.launch handle")
	T.eq(skynet.call(".launcher", "lua", "LIST")[skynet.address(direct)], nil, "launch() not listed")
	skynet.sleep(5)
	T.eq(skynet.call(direct, "lua"), "direct,1", "launched service works")
	skynet.kill(direct)

	-- env
	T.eq(skynet.getenv "harbor", "0", "getenv harbor")
	T.eq(skynet.getenv "standalone", "true", "bootstrap set standalone")
	T.eq(skynet.getenv "t_newservice_key", nil, "getenv missing")
	skynet.setenv("t_newservice_key", "v1")
	T.eq(skynet.getenv "t_newservice_key", "v1", "setenv")
	T.errors("setenv twice", "Can't setenv exist key : t_newservice_key", skynet.setenv, "t_newservice_key", "v2")

	-- datacenter
	local datacenter = require "skynet.datacenter"
	T.eq(datacenter.get "nokey", nil, "datacenter empty")
	local waited
	skynet.fork(function() waited = datacenter.wait("a", "b") end)
	skynet.sleep(1)
	T.eq(datacenter.set("a", "b", 42), nil, "datacenter set returns old value")
	T.eq(datacenter.get("a", "b"), 42, "datacenter get")
	T.eq(type(datacenter.get "a"), "table", "datacenter branch")
	skynet.sleep(1)
	T.eq(waited, 42, "datacenter wait woken")
	T.eq(datacenter.set("a", "b", 43), 42, "datacenter update old value")
	T.eq(datacenter.wait("a", "b"), 43, "datacenter wait existing")
	T.eq(require("datacenter"), datacenter, "2016 module name")

	-- global names
	local h = require "skynet.harbor"
	skynet.register "T_NEWSVC"
	T.eq(h.queryname "T_NEWSVC", skynet.self(), "global name registered")
	T.eq(h.queryname ".launcher", skynet.localname ".launcher", "queryname local")
end)
