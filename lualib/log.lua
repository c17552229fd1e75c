-- Sample logging helper (sample.md 4.1).
--   log(x)            -> skynet.error(tostring(x))
--   log(fmt, ...)     -> skynet.error(string.format(fmt, ...))
--   log.format(fmt, ...) likewise
local skynet = require "skynet"

local log = {}

function log.format(fmt, ...)
	skynet.error(string.format(fmt, ...))
end

return setmetatable(log, {
	__call = function(_, first, ...)
		if select("#", ...) == 0 then
			skynet.error(tostring(first))
		else
			skynet.error(string.format(first, ...))
		end
	end,
})
