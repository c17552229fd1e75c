local skynet = require "skynet"
skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "heap" then
			collectgarbage()
			collectgarbage()
			skynet.ret(skynet.pack(collectgarbage "count"))
		end
	end)
end)
