-- call/ret/response semantics and error propagation between services
local skynet = require "skynet"
require "skynet.manager"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

skynet.dispatch("lua", function(_, _, cmd)
	if cmd == "ping" then
		skynet.retpack "pong"
	end
end)

T.run(function()
	local peer = skynet.newservice "t_call_peer"
	T.eq(type(peer), "number", "newservice returns a handle")

	-- plain round trip with several values, including nil holes
	local a, b, c, d = skynet.call(peer, "lua", "echo", 1, nil, "three", { 4 })
	T.eq(a, 1, "echo 1")
	T.eq(b, nil, "echo nil")
	T.eq(c, "three", "echo 3")
	T.eq(type(d) == "table" and d[1], 4, "echo table")

	-- calls by name
	skynet.name(".peer", peer)
	T.eq(skynet.localname ".peer", peer, "localname")
	T.eq(skynet.call(".peer", "lua", "echo", "byname"), "byname", "call by local name")
	T.eq(skynet.call(skynet.address(peer), "lua", "echo", "byhex"), "byhex", "call by :hex")

	-- re-entrant: the peer calls us while we wait for it
	T.eq(skynet.call(peer, "lua", "call_back", skynet.self()), "pong", "nested call back")

	-- errors in the callee
	T.errors("handler error", "call failed", skynet.call, peer, "lua", "raise", "boom-in-handler")
	T.errors("unknown command", "call failed", skynet.call, peer, "lua", "nosuch")

	-- response closures
	skynet.fork(function()
		T.eq(skynet.call(peer, "lua", "hold", "k1"), "late", "deferred response value")
	end)
	skynet.yield()
	T.eq(skynet.call(peer, "lua", "test", "k1"), true, "TEST before use")
	skynet.fork(function()
		T.errors("deferred error", "call failed", skynet.call, peer, "lua", "hold", "k2")
	end)
	skynet.yield()
	T.eq(skynet.call(peer, "lua", "release", "k1", true, "late"), true, "response sent")
	T.eq(skynet.call(peer, "lua", "release", "k2", false), true, "error response sent")
	T.eq(skynet.call(peer, "lua", "twice"), "first", "response once")
	T.eq(skynet.call(peer, "lua", "ret_twice"), "once", "ret once")

	-- context
	local session, source = skynet.call(peer, "lua", "context")
	T.eq(source, skynet.self(), "context source")
	T.check(math.type(session) == "integer" and session > 0, "context session")

	-- ignoreret: the caller would wait forever; use a send
	skynet.send(peer, "lua", "ignore")
	skynet.send(peer, "lua", "forget")	-- session 0: no warning
	skynet.fork(function() pcall(skynet.call, peer, "lua", "forget") end)	-- warning in the log

	-- call to an address that never existed / a dead service
	T.errors("invalid address", "call to invalid address :00ffffff", skynet.call, 0xffffff, "lua", "x")
	T.eq(skynet.send(0xffffff, "lua", "x"), nil, "send to invalid address")
	T.errors("invalid name", "call to invalid address .nosuchname", skynet.call, ".nosuchname", "lua", "x")

	-- exit wakes pending callers with errors
	local waiting = 0
	for i = 1, 3 do
		skynet.fork(function()
			waiting = waiting + 1
			T.errors("pending call " .. i, "call failed", skynet.call, peer, "lua", "slow", 1000, i)
			waiting = waiting - 1
		end)
	end
	skynet.fork(function()
		T.errors("held call", "call failed", skynet.call, peer, "lua", "hold", "k3")
	end)
	skynet.sleep(5)
	T.eq(waiting, 3, "callers pending")
	T.errors("exit before reply", "call failed", skynet.call, peer, "lua", "exit_now")
	skynet.sleep(5)
	T.eq(waiting, 0, "exit failed every pending call")
	T.errors("call after exit", "call to invalid address", skynet.call, peer, "lua", "echo")

	-- a service killed while handling a call: its callers get an error (no hang)
	local victim = skynet.newservice "t_call_peer"
	local failed = false
	skynet.fork(function()
		failed = not pcall(skynet.call, victim, "lua", "slow", 500, "x")
	end)
	skynet.sleep(5)
	skynet.kill(victim)
	skynet.sleep(20)
	T.eq(failed, true, "killed service: pending call failed")

	-- request / select
	local p2 = skynet.newservice "t_call_peer"
	local req = skynet.request()
	req:add { p2, "lua", "slow", 1, "a" }
	req:add { p2, "lua", "raise" }
	req:add { p2, "lua", "slow", 2000, "late" }
	local got, errs = {}, 0
	local t0 = skynet.now()
	for r, resp in req:select(50) do
		if resp then
			got[#got + 1] = resp[1]
		else
			errs = errs + 1
		end
	end
	T.seq(got, { "a" }, "select results")
	T.eq(errs, 1, "select errors")
	T.check(skynet.now() - t0 < 300, "select timed out")
end)
