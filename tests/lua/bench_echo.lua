local skynet = require "skynet"
skynet.start(function()
	skynet.dispatch("lua", function(_, _, a)
		skynet.ret(skynet.pack(a))
	end)
end)
