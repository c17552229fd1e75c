local skynet = require "skynet"
require "skynet.manager"
skynet.filter(function(...) return ... end, function()
	skynet.dispatch("lua", function(_, _, s)
		skynet.retpack("filtered:" .. s)
	end)
end)
