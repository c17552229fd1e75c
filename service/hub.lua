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

local function assign_agent(fd, userid)
	skynet.call(service.manager, "lua", "assign", fd, userid)
end

-- accept callback: one coroutine per connection
function new_socket(fd, addr)
	data.socket[fd] = "[AUTH]"
	proxy.subscribe(fd)
	local ok, userid = pcall(auth_socket, fd)
	if ok then
		data.socket[fd] = userid
		if pcall(assign_agent, fd, userid) then
			proxy.unsubscribe(fd) -- the agent owns the connection now
			return
		end
		log("Assign failed %s to %s", addr, userid)
	else
		log("Auth faild %s", addr)
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
