local skynet = require "skynet"
local memory = require "skynet.memory"
local mode = ...

if mode == "limit" then
	-- what remains of the limit once the state (libraries, framework) is counted
	skynet.memlimit(collectgarbage("count") * 1024 + 256 * 1024)
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "mem" then
			collectgarbage("stop")
			skynet.ret(skynet.pack(memory.current(), math.floor(collectgarbage("count") * 1024)))
			collectgarbage("restart")
		elseif cmd == "grow" then
			skynet.ret(skynet.pack(pcall(string.rep, "x", 1024 * 1024)))
		end
	end)
end)
