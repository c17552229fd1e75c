-- An ordinary service for t_lazy: reports which parts of the framework it has loaded.
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path

local function loaded()
	local t = {}
	for _, name in ipairs { "skynet.ext", "skynet.ext_debug", "skynet.debug", "skynet.require" } do
		if package.loaded[name] then
			t[#t + 1] = name
		end
	end
	t[#t + 1] = getmetatable(skynet) and "lazy" or "complete"
	return table.concat(t, " ")
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "loaded" then
			skynet.ret(skynet.pack(loaded()))
		elseif cmd == "time" then
			skynet.ret(skynet.pack(skynet.time() > 0, loaded()))
		elseif cmd == "task" then
			skynet.ret(skynet.pack(skynet.task(), loaded()))
		elseif cmd == "require" then
			-- from a handler coroutine: the yield-safe require is loaded now
			local m = require "t_lazy_mod"
			skynet.ret(skynet.pack(m.lazy, loaded()))
		end
	end)
end)
