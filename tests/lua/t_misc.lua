-- memlimit, stat helpers, endless, mqlen, send to a queued-then-dead service
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	local m = skynet.newservice "t_memlimit_peer"
	local ok, err = skynet.call(m, "lua", 100)
	T.eq(ok, true, "small allocation fits")
	ok, err = skynet.call(m, "lua", 20000)
	T.eq(ok, false, "allocation beyond the limit fails")
	T.check(err:find("not enough memory", 1, true) ~= nil, "memory error text: " .. err)
	T.eq(skynet.call(m, "lua", 100), true, "service survives")

	T.eq(skynet.mqlen(), 0, "mqlen")
	T.eq(skynet.endless(), false, "endless")
	T.check(skynet.stat "message" > 0, "stat message")
	T.eq(math.type(skynet.stat "cpu"), "float", "stat cpu is a float")

	-- messages queued to a service that exits are answered with errors
	local peer = skynet.newservice "t_call_peer"
	local results = {}
	for i = 1, 3 do
		skynet.fork(function()
			results[i] = pcall(skynet.call, peer, "lua", i == 1 and "exit_now" or "echo", i)
		end)
	end
	skynet.sleep(10)
	T.eq(results[1], false, "exit_now fails")
	T.eq(results[2], false, "queued call 2 fails")
	T.eq(results[3], false, "queued call 3 fails")
end)
