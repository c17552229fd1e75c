-- skynet.service: one booted service per name, shared by every caller; a failed
-- boot fails its callers and later queries; close forgets and kills.
local skynet = require "skynet"
local service = require "skynet.service"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

local function kv_main(tag, n)
	local skynet = require "skynet"
	local db = { tag = tag, n = n }
	skynet.dispatch("lua", function(_, _, cmd, k, v)
		if cmd == "set" then
			db[k] = v
			skynet.ret()
		else
			skynet.ret(skynet.pack(db[k]))
		end
	end)
end

local function started_main()
	local skynet = require "skynet"
	local ready = false
	skynet.start(function()
		ready = true
	end)
	skynet.dispatch("lua", function()
		skynet.ret(skynet.pack(ready))
	end)
end

T.run(function()
	-- concurrent first callers share one boot
	local got = {}
	local n = 0
	for i = 1, 3 do
		skynet.fork(function()
			got[i] = service.new("kv", kv_main, "first", i)
			n = n + 1
		end)
	end
	while n < 3 do
		skynet.sleep(1)
	end
	T.eq(got[1], got[2], "same address for concurrent callers")
	T.eq(got[2], got[3], "same address for concurrent callers")
	local kv = got[1]
	T.eq(service.new("kv", kv_main, "second"), kv, "later new returns the running one")
	T.eq(service.query("kv"), kv, "query")
	T.eq(skynet.call(kv, "lua", "get", "tag"), "first", "the first caller's arguments")
	skynet.call(service.query("kv"), "lua", "set", "A", 42)
	T.eq(skynet.call(kv, "lua", "get", "A"), 42, "state kept")
	-- skynet.start inside the main function runs after it
	local st = service.new("started", started_main)
	T.eq(skynet.call(st, "lua"), true, "skynet.start inside the cell ran")
	-- a main function with an upvalue cannot travel
	local up = 1
	T.errors("upvalue", "no upvalue but _ENV", service.new, "up", function() return up end)
	-- a failing boot fails the caller and later queries
	T.errors("failing boot", nil, service.new, "bad", function() error("boom") end)
	T.errors("query after a failed boot", nil, service.query, "bad")
	-- close
	T.eq(service.close("kv"), true, "close a running one")
	T.eq(service.close("kv"), false, "close again")
	T.errors("killed service", nil, skynet.call, kv, "lua", "get", "A")
end)
