local skynet = require "skynet"
local last
skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
	unpack = function() end,
	dispatch = function(_, source)
		last = source
	end,
}
skynet.start(function()
	skynet.dispatch("lua", function()
		skynet.retpack(last)
	end)
end)
