-- service_cell: the body of a skynet.service service. Its first (and only framework)
-- request is `init(code, ...)`: load the dumped main function under the service's
-- name and run it with `...`. The main function sets its own "lua" dispatch; a
-- skynet.start inside it is honoured (its function runs right after the main body).
local skynet = require "skynet"

local name = ...

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, code, ...)
		assert(cmd == "init", "service_cell: expected init")
		local deferred
		skynet.start = function(f)
			deferred = f
		end
		skynet.dispatch("lua", function()
			error("No dispatch function")
		end)
		local main = assert(load(code, name))
		assert(skynet.pcall(main, ...))
		if deferred then
			deferred()
		end
		skynet.ret()
	end)
end)
