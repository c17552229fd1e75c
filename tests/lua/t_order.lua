-- fork vs dispatch ordering, timeout order, sleep/wakeup/BREAK, wait FIFO
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	-- forks run after the current coroutine blocks/finishes, in creation order
	local trace = {}
	skynet.fork(function()
		trace[#trace + 1] = "f1"
		skynet.fork(function() trace[#trace + 1] = "f3" end)
	end)
	skynet.fork(function(a, b) trace[#trace + 1] = "f2" .. a .. b end, "x", "y")
	trace[#trace + 1] = "main"
	skynet.yield()
	T.seq(trace, { "main", "f1", "f2xy", "f3" }, "fork order")

	-- timeouts fire in expiry order
	local t = {}
	local co = skynet.timeout(10, function() t[#t + 1] = "t10" end)
	T.eq(type(co), "thread", "timeout returns the coroutine")
	skynet.timeout(0, function() t[#t + 1] = "t0" end)
	skynet.timeout(5, function() t[#t + 1] = "t5" end)
	skynet.sleep(30)
	T.seq(t, { "t0", "t5", "t10" }, "timeout order")

	-- sleep returns nothing on expiry, "BREAK" when woken
	local t0 = skynet.now()
	T.eq(skynet.sleep(5), nil, "sleep result")
	T.check(skynet.now() - t0 >= 5, "sleep lasted")
	local me = coroutine.running()
	skynet.fork(function() T.eq(skynet.wakeup(me), true, "wakeup of a sleeper") end)
	t0 = skynet.now()
	T.eq(skynet.sleep(1000), "BREAK", "woken sleep")
	T.check(skynet.now() - t0 < 500, "woken early")
	T.eq(skynet.wakeup(me), nil, "wakeup of a running coroutine")

	-- sleep with an explicit token; duplicate token
	local token = {}
	skynet.fork(function() skynet.wakeup(token) end)
	T.eq(skynet.sleep(1000, token), "BREAK", "token sleep")
	skynet.fork(function()
		T.errors("duplicate token", "token duplicative", skynet.sleep, 10, token)
	end)
	skynet.fork(function() skynet.wakeup(token) end)
	skynet.sleep(1000, token)

	-- wakeup order is FIFO of wakeup calls
	local woken = {}
	local tokens = {}
	for i = 1, 3 do
		tokens[i] = {}
		skynet.fork(function()
			skynet.wait(tokens[i])
			woken[#woken + 1] = i
		end)
	end
	skynet.yield()
	skynet.wakeup(tokens[3])
	skynet.wakeup(tokens[1])
	skynet.wakeup(tokens[2])
	skynet.yield()
	T.seq(woken, { "3", "1", "2" }, "wakeup FIFO")

	-- wait() defaults to the running coroutine
	local waiter
	local done = false
	waiter = skynet.fork(function()
		skynet.wait()
		done = true
	end)
	skynet.yield()
	T.eq(done, false, "waiting")
	skynet.wakeup(waiter)
	skynet.yield()
	T.eq(done, true, "woken waiter")

	-- the timer of a woken sleeper is ignored later (no "Unknown session" error)
	local s = skynet.fork(function() skynet.sleep(3) end)
	skynet.yield()
	skynet.wakeup(s)
	skynet.sleep(10)

	-- killthread: a fork not yet started, and a sleeper
	local ran = false
	local f = skynet.fork(function() ran = true end)
	T.eq(skynet.killthread(f), f, "killthread fork")
	local sleeper_done = false
	local sl = skynet.fork(function() skynet.sleep(5); sleeper_done = true end)
	skynet.yield()
	T.eq(skynet.killthread(tostring(sl)), sl, "killthread by name")
	skynet.sleep(10)
	T.eq(ran, false, "killed fork never ran")
	T.eq(sleeper_done, false, "killed sleeper never resumed")
	T.eq(skynet.killthread(sl), nil, "killthread of an unknown thread")

	-- task count
	local n0 = skynet.task()
	skynet.fork(function() skynet.sleep(100) end)
	skynet.yield()
	T.eq(skynet.task(), n0 + 1, "task count")
	local tasks = {}
	skynet.task(tasks)
	local found = false
	for k, v in pairs(tasks) do
		if k:match "^thread: .* session: %d+$" and v:find("t_order.lua", 1, true) then
			found = true
		end
	end
	T.check(found, "task table lists the sleeper with a traceback")
	T.eq(skynet.task(123456), "No session", "task(unknown session)")
	local u = skynet.uniqtask()
	local lines = 0
	for k in pairs(u) do
		T.check(k:match "^%d+\tsessions:%[[%d,]*%]\n$" ~= nil, "uniqtask key format " .. k)
		lines = lines + 1
	end
	T.check(lines >= 1, "uniqtask has entries")

	-- time helpers
	T.eq(math.type(skynet.now()), "integer", "now is an integer")
	T.check(skynet.starttime() > 1600000000, "starttime")
	T.check(math.abs(skynet.time() - os.time()) < 5, "time ~ wall clock")
	T.eq(skynet.address(10), ":0000000a", "address format")
	T.eq(skynet.address(".x"), ".x", "address of a name")
end)
