local skynet = require "skynet"
skynet.memlimit(8 * 1024 * 1024)
skynet.start(function()
	skynet.dispatch("lua", function(_, _, n)
		local t = {}
		local ok, err = pcall(function()
			for i = 1, n do
				t[i] = string.rep("x", 1024) .. i
			end
		end)
		t = nil
		collectgarbage()
		skynet.retpack(ok, tostring(err))
	end)
end)
