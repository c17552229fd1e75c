local skynet = require "skynet"
local args = table.pack(...)
skynet.start(function()
	skynet.dispatch("lua", function()
		skynet.retpack(table.concat(args, ",", 1, args.n) .. "," .. args.n)
	end)
end)
