-- upstream-style: a service serialising its requests with skynet.queue
local skynet = require "skynet"
local queue = require "skynet.queue"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

local cs = queue()
local balance = 0

local function deposit(n)
	local b = balance
	skynet.sleep(1)		-- without the queue this would lose updates
	balance = b + n
	return balance
end

skynet.dispatch("lua", function(session, source, cmd, n)
	skynet.ret(skynet.pack(cs(deposit, n)))
end)

T.run(function()
	local self = skynet.self()
	local done = 0
	for i = 1, 10 do
		skynet.fork(function()
			skynet.call(self, "lua", "deposit", i)
			done = done + 1
		end)
	end
	while done < 10 do skynet.sleep(2) end
	T.eq(balance, 55, "serialised deposits")
end)
