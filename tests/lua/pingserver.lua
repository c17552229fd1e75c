-- An upstream-style (2016 idiom) service: CMD table, ret(pack()), register, text protocol.
local skynet = require "skynet"
require "skynet.manager"

local CMD = {}
local hits = 0

function CMD.PING(hello)
	hits = hits + 1
	skynet.sleep(1)
	return hello
end

function CMD.HITS()
	return hits
end

function CMD.EXIT()
	skynet.exit()
end

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	pack = function(m) return tostring(m) end,
	unpack = skynet.tostring,
}

skynet.start(function()
	skynet.dispatch("lua", function(session, address, cmd, ...)
		local f = CMD[cmd]
		if f then
			skynet.ret(skynet.pack(f(...)))
		else
			error(string.format("Unknown command %s", tostring(cmd)))
		end
	end)
	skynet.dispatch("text", function(session, address, text)
		skynet.ret(string.upper(text))
	end)
	skynet.register ".pingserver"
end)
