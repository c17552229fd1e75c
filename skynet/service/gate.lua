-- gate: a gateserver that reports to a watchdog and routes packets to agents
-- (socket.md §6.2). conn[fd] = { fd, addr, agent, client }.
local skynet = require "skynet"
local gateserver = require "snax.gateserver"
local netpack = require "skynet.netpack"

local watchdog
local conn = {}

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
}

local handler = {}

function handler.open(source, conf)
	watchdog = conf.watchdog or source
	return conf.address, conf.port
end

function handler.message(fd, msg, sz)
	local c = conn[fd]
	local agent = c and c.agent
	if agent then
		-- the packet block goes to the agent as is (no copy)
		skynet.redirect(agent, c.client, "client", fd, msg, sz)
	else
		skynet.send(watchdog, "lua", "socket", "data", fd, netpack.tostring(msg, sz))
	end
end

function handler.connect(fd, addr)
	conn[fd] = { fd = fd, addr = addr }
	skynet.send(watchdog, "lua", "socket", "open", fd, addr)
end

local function forget(fd)
	conn[fd] = nil
end

function handler.disconnect(fd)
	forget(fd)
	skynet.send(watchdog, "lua", "socket", "close", fd)
end

function handler.error(fd, msg)
	forget(fd)
	skynet.send(watchdog, "lua", "socket", "error", fd, msg)
end

function handler.warning(fd, size)
	skynet.send(watchdog, "lua", "socket", "warning", fd, size)
end

local CMD = {}

function CMD.forward(source, fd, client, address)
	local c = assert(conn[fd], "gate: unknown fd")
	c.client = client or 0
	c.agent = address or source
	gateserver.openclient(fd)
end

function CMD.accept(_, fd)
	local c = assert(conn[fd], "gate: unknown fd")
	c.agent = nil
	c.client = nil
	gateserver.openclient(fd)
end

function CMD.kick(_, fd)
	gateserver.closeclient(fd)
end

function handler.command(cmd, source, ...)
	local f = assert(CMD[cmd], "gate: unknown command")
	return f(source, ...)
end

gateserver.start(handler)
