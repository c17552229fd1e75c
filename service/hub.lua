-- The listener (sample.md 4.7): accepts client connections, hands each to auth for
-- the handshake, then to manager, which assigns it to the user's agent.
local skynet = require "skynet"
local socket = require "socket"
local proxy = require "socket_proxy"
local service = require "service"
local log = require "log"

local hub = {}
local data = { socket = {} }

local function auth_socket(fd)
	return skynet.call(service.auth, "lua", "shakehand", fd)
end

-- One log line per connection that ends before login; the package already closed
-- or closes the socket (K flushes what auth wrote).
local function auth_failed(fd, addr, why)
	log("Auth faild %s fd=%d (%s)", addr, fd, tostring(why))
end

local function assign_agent(fd, userid)
	skynet.call(service.manager, "lua", "assign", fd, userid)
end

-- accept callback: one coroutine per connection. data.socket[fd] lists the
-- connections in their handshake; once assigned, a connection belongs to its agent
-- and the hub forgets it (upstream kept one entry per connection ever seen).
function new_socket(fd, addr)
	data.socket[fd] = "[AUTH]"
	local sub, err = pcall(proxy.subscribe, fd)
	if not sub then
		-- No package took the connection (it went away at once, or the launch
		-- failed): the socket is still ours to close.
		auth_failed(fd, addr, err)
		socket.close_fd(fd)
		data.socket[fd] = nil
		return
	end
	local ok, userid, why = pcall(auth_socket, fd)
	if ok and userid then
		data.socket[fd] = userid
		if pcall(assign_agent, fd, userid) then
			data.socket[fd] = nil
			proxy.unsubscribe(fd) -- the agent owns the connection now
			return
		end
		log("Assign failed %s to %s", addr, userid)
	else
		auth_failed(fd, addr, ok and why or userid)
	end
	proxy.close(fd)
	data.socket[fd] = nil
end

function hub.open(ip, port)
	assert(data.fd == nil, "Already open")
	data.fd = socket.listen(ip, port)
	data.ip = ip
	data.port = port
	socket.start(data.fd, new_socket)
	-- Logged once clients can connect, so the line can be waited for.
	log("Listen %s:%d", ip, port)
end

function hub.close()
	assert(data.fd)
	log("Close %s:%d", data.ip, data.port)
	socket.close(data.fd)
	data.ip = nil
	data.port = nil
end

service.init {
	command = hub,
	info = data,
	require = {
		"auth",
		"manager",
	},
}
