-- call round trips between two Lua services; logs "BENCH <n> calls <rate> calls/s"
local skynet = require "skynet"
require "skynet.manager"

skynet.start(function()
	local n = tonumber(skynet.getenv "bench_n") or 100000
	local echo = skynet.newservice "bench_echo"
	local call = skynet.call
	for i = 1, 1000 do call(echo, "lua", i) end	-- warm up
	local t0 = skynet.hpc()
	for i = 1, n do
		call(echo, "lua", i)
	end
	local dt = (skynet.hpc() - t0) / 1e9
	skynet.error(string.format("BENCH %d calls %.0f calls/s", n, n / dt))
	skynet.sleep(10)
	skynet.abort()
end)
