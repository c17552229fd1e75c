-- Blocking packet socket for the test client (sample.md 8.1), over lsocket.
-- Packets are `>s2` framed: a 2-byte big-endian length, then the payload.
local lsocket = require "lsocket"

local socket = {}
local fd
local buffer = ""

socket.error = setmetatable({}, {
	__tostring = function()
		return "[socket error]"
	end,
})

function socket.connect(addr, port)
	assert(fd == nil, "already connected")
	local s = lsocket.connect(addr, port)
	if not s then
		error(socket.error)
	end
	lsocket.select(nil, { s })
	local ok = s:status()
	if not ok then
		s:close()
		error(socket.error)
	end
	fd = s
	buffer = ""
end

function socket.isconnect()
	return fd ~= nil
end

function socket.close()
	if fd then
		fd:close()
		fd = nil
	end
	buffer = ""
end

-- the payload of the next complete packet in the buffer, if any
local function pop_packet()
	if #buffer < 2 then
		return nil
	end
	local size = buffer:byte(1) * 256 + buffer:byte(2)
	if #buffer < size + 2 then
		return nil
	end
	local msg = buffer:sub(3, 2 + size)
	buffer = buffer:sub(3 + size)
	return msg
end

-- next packet; nil when nothing arrived within ti seconds (nil ti = wait forever)
function socket.read(ti)
	while true do
		local msg = pop_packet()
		if msg then
			return msg
		end
		local ready = lsocket.select({ fd }, ti)
		if not ready then
			return nil
		end
		local data = fd:recv()
		if not data then
			socket.close()
			error(socket.error)
		end
		if data ~= false then
			buffer = buffer .. data
		end
	end
end

function socket.write(msg)
	local pack = string.pack(">s2", msg)
	repeat
		local bytes = fd:send(pack)
		if not bytes then
			error(socket.error)
		end
		if bytes == false then
			lsocket.select(nil, { fd })
		else
			pack = pack:sub(bytes + 1)
		end
	until pack == ""
end

return socket
