-- skynet.coroutine inside services
local skynet = require "skynet"
local coroutine = require "skynet.coroutine"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

skynet.dispatch("lua", function() skynet.retpack "reply" end)

T.run(function()
	-- user yields interleave with blocking framework calls
	local co = coroutine.create(function(a)
		local b = coroutine.yield(a + 1)
		skynet.sleep(2)
		local r = skynet.call(skynet.self(), "lua")
		local c2 = coroutine.yield(b .. r)
		return "end" .. c2
	end)
	local ok, v = coroutine.resume(co, 1)
	T.eq(ok and v, 2, "first user yield")
	T.eq(coroutine.status(co), "suspended", "status suspended")
	ok, v = coroutine.resume(co, "b")
	T.eq(ok and v, "breply", "second yield after sleep and call")
	ok, v = coroutine.resume(co, "!")
	T.eq(ok and v, "end!", "finished")
	T.eq(coroutine.status(co), "dead", "status dead")

	-- "blocked" while the framework holds it
	local inner
	inner = coroutine.create(function()
		skynet.sleep(5)
		return "slept"
	end)
	local result
	skynet.fork(function()
		result = table.pack(coroutine.resume(inner))
	end)
	skynet.sleep(1)
	T.eq(coroutine.status(inner), "blocked", "status blocked")
	skynet.sleep(10)
	T.eq(result and result[2], "slept", "blocked coroutine finished")

	-- errors come back as false, msg
	local bad = coroutine.create(function() error "inner error" end)
	local ok2, err = coroutine.resume(bad)
	T.eq(ok2, false, "error result")
	T.check(tostring(err):find("inner error", 1, true) ~= nil, "error text")

	-- wrap
	local gen = coroutine.wrap(function()
		for i = 1, 3 do
			skynet.yield()
			coroutine.yield(i)
		end
	end)
	T.eq(gen() + gen() + gen(), 6, "wrap generator")

	-- yielding with skynet.coroutine.yield outside skynet.coroutine.resume is an error
	-- (logged by the dispatcher; the handler coroutine dies)
	local survived = false
	skynet.fork(function()
		coroutine.yield "oops"
		survived = true
	end)
	skynet.sleep(1)
	T.eq(survived, false, "bad user yield kills the fork")

	local t, ismain = coroutine.thread(co)
	T.eq(ismain, false, "thread() of a user coroutine")

	-- resume refuses coroutines it did not create (upstream's wording); a dead one
	-- gets Lua's own error
	local plain = _G.coroutine.create(function() end)
	local okp, errp = coroutine.resume(plain)
	T.eq(okp, false, "resume of a plain coroutine fails")
	T.eq(errp, "cannot resume none skynet coroutine", "its error")
	_G.coroutine.resume(plain)
	local okd, errd = coroutine.resume(plain)
	T.eq(okd, false, "resume of a dead plain coroutine fails")
	T.eq(errd, "cannot resume dead coroutine", "Lua's error for it")
end)
