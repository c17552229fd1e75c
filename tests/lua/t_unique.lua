-- uniqueservice / queryservice under concurrency; service_mgr errors
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	local got = {}
	local n = 0
	-- a querier that starts before anyone launches it blocks until the launch
	local queried
	skynet.fork(function()
		queried = skynet.queryservice "t_unique_target"
	end)
	for i = 1, 5 do
		skynet.fork(function()
			got[i] = skynet.uniqueservice("t_unique_target", "arg" .. i)
			n = n + 1
		end)
	end
	while n < 5 do
		skynet.sleep(5)
	end
	for i = 2, 5 do
		T.eq(got[i], got[1], "same unique service " .. i)
	end
	skynet.sleep(1)
	T.eq(queried, got[1], "queryservice waited for the launch")
	local addr, arg = skynet.call(got[1], "lua")
	T.eq(addr, got[1], "unique service answers")
	T.eq(arg, "arg1", "only the first launcher's args are used")
	T.eq(skynet.queryservice "t_unique_target", got[1], "queryservice")
	T.eq(skynet.uniqueservice "t_unique_target", got[1], "uniqueservice again")

	-- global variants
	local g = skynet.uniqueservice(true, "t_unique_target", "g")
	T.check(g ~= got[1], "global unique service is another instance")
	T.eq(skynet.queryservice(true, "t_unique_target"), g, "global query")

	-- failures are cached
	T.errors("failing unique service", "call failed", skynet.uniqueservice, "t_unique_bad")
	T.errors("cached failure", "call failed", skynet.uniqueservice, "t_unique_bad")
	T.errors("query of a failed service", "call failed", skynet.queryservice, "t_unique_bad")

	-- LIST
	local list = skynet.call(".service", "lua", "LIST")
	T.eq(list.t_unique_target, skynet.address(got[1]), "LIST entry")
	T.eq(list["@t_unique_target"], skynet.address(g), "LIST global entry")
	T.check(type(list.t_unique_bad) == "string" and list.t_unique_bad:find("^Error: ") ~= nil, "LIST error entry")
	T.eq(skynet.call("SERVICE", "lua", "LIST").t_unique_target, skynet.address(got[1]), "SERVICE global name")
	-- a launch in progress shows where it is stuck
	skynet.fork(function() pcall(skynet.uniqueservice, "t_unique_slow") end)
	skynet.fork(function() pcall(skynet.queryservice, "t_unique_slow") end)
	skynet.sleep(5)
	local pending = skynet.call(".service", "lua", "LIST").t_unique_slow
	T.check(type(pending) == "string" and pending:find("Init as :", 1, true)
		and pending:find("Launching from " .. skynet.address(skynet.self()), 1, true)
		and pending:find("Querying:", 1, true) and pending:find("t_unique_slow.lua", 1, true),
		"LIST pending entry: " .. tostring(pending))
	local r, err = skynet.call(".service", "lua", "BOGUS")
	T.eq(r, nil, "invalid command result")
	T.eq(err, "Invalid command BOGUS", "invalid command text")
end)
