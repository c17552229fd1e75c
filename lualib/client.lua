-- The sproto request loop shared by auth and agent (sample.md 4.5).
--
-- client.handler() gives the table services fill with `function cli:<name>(args)`;
-- client.init "proto" (used as service.init's init) loads the c2s host and the s2c
-- sender from protoloader's slots; client.dispatch(c) serves connection c.fd until
-- the connection closes ("disconnect"), an unknown request arrives ("Invalid
-- command <name>"), or a handler sets c.exit (dispatch then returns c).
--
-- Project decision (sample.md 9.1): a request's handler runs to completion in the
-- loop's coroutine before the next packet is read (upstream forks it and keeps
-- reading). So requests of one connection are answered in order, a handler that
-- blocks delays only its own connection, and a successful signin (c.exit) stops the
-- loop before the next packet is read: that packet goes to the connection's next
-- owner (the agent) instead of being swallowed. It also costs no extra message.
local skynet = require "skynet"
local proxy = require "socket_proxy"
local sprotoloader = require "sprotoloader"
local log = require "log"

local client = {}
local host
local sender
local handler = {}
local ERROR = {}

function client.handler()
	return handler
end

function client.init(name)
	return function()
		local protoloader = skynet.uniqueservice "protoloader"
		local c2s = skynet.call(protoloader, "lua", "index", name .. ".c2s")
		local s2c = skynet.call(protoloader, "lua", "index", name .. ".s2c")
		host = sprotoloader.load(c2s):host "package"
		sender = host:attach(sprotoloader.load(s2c))
	end
end

local function serve(c, f, args, response)
	local ok, result = pcall(f, c, args)
	if not ok then
		log("raise error = %s", result)
	end
	if response then -- nil for a request sent without a session: no reply
		if ok then
			proxy.write(c.fd, response(result))
		else
			proxy.write(c.fd, response(ERROR, tostring(result)))
		end
	end
end

function client.dispatch(c)
	local fd = c.fd
	proxy.subscribe(fd)
	while true do
		local msg, sz = proxy.read(fd)
		local kind, name, args, response = host:dispatch(msg, sz)
		assert(kind == "REQUEST")
		if c.exit then
			proxy.unsubscribe(fd)
			return c
		end
		local f = handler[name]
		if not f then
			error("Invalid command " .. tostring(name))
		end
		serve(c, f, args, response)
		if c.exit then
			proxy.unsubscribe(fd)
			return c
		end
	end
end

-- True when `err` (raised by dispatch) means the connection is gone.
function client.disconnected(err)
	return type(err) == "string" and err:sub(-#proxy.DISCONNECT) == proxy.DISCONNECT
end

function client.push(c, name, data)
	proxy.write(c.fd, sender(name, data))
end

function client.close(fd)
	proxy.close(fd)
end

return client
