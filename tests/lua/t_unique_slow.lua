local skynet = require "skynet"
skynet.start(function()
	skynet.sleep(100000)	-- never finishes its start during the test
end)
