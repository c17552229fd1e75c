-- Services start from Lua states made ahead of time by idle workers
-- (src/lua/prestart.rs): such a state must be a service's own from its first byte.
-- Its memory counter holds every byte of the state (memory.current equals Lua's own
-- count), memlimit applies to it, and killing the services gives all of it back.
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"
local memory = require "skynet.memory"

T.run(function()
	local list = {}
	for i = 1, 24 do
		list[i] = skynet.newservice("t_prestart_peer")
		-- every other start finds the pool refilled, the rest may not: both paths
		if i % 2 == 0 then skynet.sleep(1) end
	end
	local held = 0
	for i, s in ipairs(list) do
		local current, counted = skynet.call(s, "lua", "mem")
		T.eq(current, counted, "service " .. i .. ": its counter holds the whole state")
		held = held + current
	end
	-- a limit set at start applies to the adopted state's bytes too
	local limited = skynet.newservice("t_prestart_peer", "limit")
	local ok, err = skynet.call(limited, "lua", "grow")
	T.eq(ok, false, "allocation past memlimit fails")
	T.eq(tostring(err):find("not enough memory") ~= nil, true, "error: " .. tostring(err))
	skynet.kill(limited)
	collectgarbage()
	local peak = memory.total()
	for _, s in ipairs(list) do skynet.kill(s) end
	-- the process total drops by (nearly) what the services' counters held
	local back = false
	for _ = 1, 200 do
		if peak - memory.total() >= held * 0.9 then back = true break end
		skynet.sleep(1)
	end
	T.eq(back, true, string.format("memory back after the kills (%d held, total %d -> %d)",
		held, peak, memory.total()))
end)
