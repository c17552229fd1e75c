-- Peer service for t_call: one command per behaviour under test.
local skynet = require "skynet"
require "skynet.manager"

local held = {}		-- response closures kept for later
local cmd = {}

function cmd.echo(...)
	skynet.retpack(...)
end

function cmd.raise(msg)
	error(msg or "raised on purpose")
end

function cmd.exit_now()
	skynet.exit()
end

function cmd.hold(key)
	held[key] = skynet.response()
end

function cmd.release(key, ok, ...)
	local resp = held[key]
	held[key] = nil
	skynet.retpack(resp(ok, ...))
end

function cmd.test(key)
	skynet.retpack(held[key]("TEST"))
end

function cmd.twice()
	local resp = skynet.response()
	resp(true, "first")
	local ok, err = pcall(resp, true, "second")
	skynet.error("twice:", ok, err)
end

function cmd.ret_twice()
	skynet.retpack "once"
	local ok, err = pcall(skynet.ret)
	skynet.error("ret_twice:", ok, err)
end

function cmd.forget()
	-- returns without replying: the framework logs "Maybe forgot response"
end

function cmd.ignore()
	skynet.ignoreret()
end

function cmd.context()
	skynet.retpack(skynet.context())
end

function cmd.slow(ti, v)
	skynet.sleep(ti)
	skynet.retpack(v)
end

function cmd.call_back(addr)
	-- call back into the caller while it is blocked in a call to us
	skynet.retpack(skynet.call(addr, "lua", "ping"))
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, name, ...)
		local f = assert(cmd[name], name)
		f(...)
	end)
end)
