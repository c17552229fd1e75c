-- Sample service skeleton (sample.md 4.2).
--
-- service.init { command = cmds, info = tbl, require = { names }, init = fn }
--   * info: returned live by the debug console's INFO;
--   * require: each name is started with uniqueservice and its address stored as
--     service[name], in order, before init runs;
--   * command: the "lua" protocol handlers; every return value is packed into the
--     reply; an unknown command is logged and answered with an error.
local skynet = require "skynet"
local log = require "log"

local service = {}

local function install(commands)
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = commands[cmd]
		if f then
			skynet.ret(skynet.pack(f(...)))
		else
			log("Unknown command : [%s]", cmd)
			skynet.response()(false)
		end
	end)
end

function service.init(mod)
	local commands = mod.command or {}
	if mod.info then
		local info = mod.info
		skynet.info_func(function()
			return info
		end)
	end
	skynet.start(function()
		if mod.require then
			for _, name in ipairs(mod.require) do
				service[name] = skynet.uniqueservice(name)
			end
		end
		if mod.init then
			mod.init()
		end
		install(commands)
	end)
end

return service
