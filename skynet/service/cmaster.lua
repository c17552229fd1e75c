-- cmaster: the master of a multi-node network (harbor.md §2), started by bootstrap on
-- the node whose config has `standalone` (the address to listen on).
--
-- It knows every node (harbor id -> address) and every global name, and tells the
-- nodes' .cslave services about each other. Messages both ways are one length byte
-- then skynet.packstring(...) (at most 255 bytes):
--   slave -> master: H id address (first, once) | R name handle | Q name
--   master -> slave: W n (answer to H: n nodes will connect to you) | C id address
--                    (connect to that node) | N name handle | D id (node id is gone)
-- A node id registers once: after it goes down it stays down (as upstream).
local skynet = require "skynet"
local socket = require "skynet.socket"

local nodes = {} -- harbor id -> { fd = socket id, or false once down; address = "host:port" }
local names = {} -- global name -> handle

local function frame(...)
	local body = skynet.packstring(...)
	assert(#body <= 255, "master message too long")
	return string.char(#body) .. body
end

-- The next message from fd, unpacked: nothing when the connection ends; raises when
-- the bytes are not a message.
local function read_message(fd)
	local len = socket.read(fd, 1)
	local body = len and socket.read(fd, len:byte())
	if body then
		return skynet.unpack(body)
	end
end

local function broadcast(message)
	for _, node in pairs(nodes) do
		if node.fd then
			socket.write(node.fd, message)
		end
	end
end

local function handshake(fd)
	local t, id, address = read_message(fd)
	if t == nil then
		error "closed"
	elseif t ~= "H" then
		error("Invalid handshake type " .. tostring(t))
	end
	if math.type(id) ~= "integer" or id <= 0 or id > 255 or type(address) ~= "string" then
		error("Invalid handshake " .. tostring(id) .. " " .. tostring(address))
	end
	local old = nodes[id]
	if old then
		error(string.format("Slave %d already register on %s", id, old.address))
	end
	-- The nodes already up connect to the new one; it waits for that many.
	local n = 0
	local connect = frame("C", id, address)
	for _, node in pairs(nodes) do
		if node.fd then
			socket.write(node.fd, connect)
			n = n + 1
		end
	end
	socket.write(fd, frame("W", n))
	nodes[id] = { fd = fd, address = address }
	return id, address
end

local function serve(fd, id)
	while true do
		local ok, t, name, handle = pcall(read_message, fd)
		if not ok then
			skynet.error(string.format("Invalid message from harbor %d: %s", id, tostring(t)))
			break
		elseif t == nil then
			break
		end
		if t == "R" and type(name) == "string" and math.type(handle) == "integer" then
			-- The first registration of a name wins; everyone learns the winner.
			if names[name] == nil then
				names[name] = handle
			end
			broadcast(frame("N", name, names[name]))
		elseif t == "Q" and type(name) == "string" then
			-- Unknown names get no answer: the N broadcast of their registration is it.
			local h = names[name]
			if h then
				socket.write(fd, frame("N", name, h))
			end
		else
			skynet.error("Invalid slave message type " .. tostring(t))
		end
	end
	skynet.error("slave " .. id .. " is down")
	nodes[id].fd = false
	socket.close(fd)
	broadcast(frame("D", id))
end

skynet.start(function()
	local address = skynet.getenv "standalone"
	skynet.error("master listen socket " .. tostring(address))
	local listen = assert(socket.listen(address), "Can't listen on " .. tostring(address))
	socket.start(listen, function(fd, addr)
		skynet.error("connect from " .. addr .. " " .. fd)
		socket.start(fd)
		local ok, id, node_address = pcall(handshake, fd)
		if not ok then
			skynet.error(string.format("disconnect fd = %d, error = %s", fd, id))
			socket.close(fd)
			return
		end
		skynet.error(string.format("Harbor %d (fd=%d) report %s", id, fd, node_address))
		serve(fd, id)
	end)
end)
