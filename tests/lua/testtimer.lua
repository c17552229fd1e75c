-- upstream-style timer test: repeated timeouts, sleep, fork loops
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	local ticks = 0
	local function tick()
		ticks = ticks + 1
		if ticks < 5 then
			skynet.timeout(2, tick)
		end
	end
	skynet.timeout(2, tick)
	local loops = 0
	skynet.fork(function()
		for i = 1, 5 do
			skynet.sleep(2)
			loops = loops + 1
		end
	end)
	local t0 = skynet.now()
	skynet.sleep(30)
	T.eq(ticks, 5, "chained timeouts")
	T.eq(loops, 5, "sleep loop")
	local elapsed = skynet.now() - t0
	T.check(elapsed >= 30 and elapsed < 200, "sleep(30) took " .. elapsed)
	-- many timers at once
	local fired = 0
	for i = 1, 100 do
		skynet.timeout(i % 7, function() fired = fired + 1 end)
	end
	skynet.sleep(20)
	T.eq(fired, 100, "100 timers fired")
end)
