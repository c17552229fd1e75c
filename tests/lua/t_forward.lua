local skynet = require "skynet"
require "skynet.manager"
skynet.forward_type({}, function()
	skynet.dispatch("lua", function(_, _, s)
		skynet.retpack("fwd:" .. s)
	end)
end)
