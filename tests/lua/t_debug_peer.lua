local skynet = require "skynet"
local dbg = require "skynet.debug"
local secret = "peer-upvalue"
local info = { name = "peer" }
skynet.info_func(function(x) return info, x end)
dbg.reg_debugcmd("HELLO", function(a) skynet.retpack("hello " .. tostring(a)) end)
skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ti)
		if cmd == "sleep" then
			skynet.sleep(ti)
			skynet.retpack(secret)
		end
	end)
end)
