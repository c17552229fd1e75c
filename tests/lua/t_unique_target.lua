local skynet = require "skynet"
local arg = ...
skynet.start(function()
	skynet.sleep(10)	-- a slow start, so concurrent requests overlap
	skynet.error("t_unique_target started", arg)
	skynet.dispatch("lua", function() skynet.retpack(skynet.self(), arg) end)
end)
