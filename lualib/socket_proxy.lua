-- Per-service client of the package services (sample.md 4.3).
--
-- Each connection (skynet socket id `fd`) is owned by one native `package` service,
-- started by socket_proxyd. This library keeps map[fd] = package address for the
-- service that requires it and speaks the package's text commands:
--   "R" read one packet, "K" kill the connection, "I" status text.
-- Outgoing packets go as PTYPE_CLIENT messages; the package adds the 2-byte header.
local skynet = require "skynet"

local proxyd

skynet.init(function()
	proxyd = skynet.uniqueservice "socket_proxyd"
end)

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	pack = function(text) return text end,
	unpack = skynet.tostring,
}

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
	pack = function(buf, sz) return buf, sz end,
}

local proxy = { DISCONNECT = "disconnect" }
local map = {}

local function get_addr(fd)
	return assert(map[fd], "subscribe first")
end

function proxy.subscribe(fd)
	if not map[fd] then
		map[fd] = skynet.call(proxyd, "lua", fd)
	end
end

-- One complete packet (no length prefix) as msg, sz; raises "disconnect" once the
-- connection is gone.
function proxy.read(fd)
	local addr = get_addr(fd)
	local ok, msg, sz = pcall(skynet.rawcall, addr, "text", "R")
	if ok then
		return msg, sz
	end
	map[fd] = nil
	error(proxy.DISCONNECT)
end

function proxy.write(fd, msg, sz)
	skynet.send(get_addr(fd), "client", msg, sz)
end

-- Unlike the other calls, closing a connection we no longer know is a no-op: the
-- package is already gone (read cleared the entry), so there is nothing to kill.
-- (Upstream asserts here, which leaves its agents stuck; sample.md 9.2.) The entry
-- is forgotten: the connection is going away.
function proxy.close(fd)
	local addr = map[fd]
	if addr then
		map[fd] = nil
		skynet.send(addr, "text", "K")
	end
end

-- Forget fd without closing it (the connection now belongs to another service), so
-- long-lived services do not keep one entry per connection ever seen.
function proxy.unsubscribe(fd)
	map[fd] = nil
end

function proxy.info(fd)
	return skynet.call(get_addr(fd), "text", "I")
end

return proxy
