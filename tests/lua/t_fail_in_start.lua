local skynet = require "skynet"
skynet.start(function()
	error "t_fail_in_start fails"
end)
