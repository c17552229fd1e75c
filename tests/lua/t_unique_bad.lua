local skynet = require "skynet"
skynet.start(function()
	error "t_unique_bad can't start"
end)
