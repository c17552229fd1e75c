-- skynet.socket: blocking-style TCP/UDP on top of skynet.socketdriver (socket.md §4).
--
-- Each socket this service knows has a record:
--   id, buffer (driver buffer userdata), connected, connecting (true while waiting
--   for CONNECT; an error text after a failed connect), co (the one waiting
--   coroutine), want (what the waiter needs: byte count, separator string, ANY for
--   any data, CLOSED for the peer's close), callback (accept / UDP), listen, pause,
--   limit, on_warning, onclose, closer (coroutine inside socket.close), lock (2016 FIFO).
-- Events arrive as PTYPE_SOCKET messages decoded by driver.unpack.

local driver = require "skynet.socketdriver"
local skynet = require "skynet"

local assert = assert
local type = type
local format = string.format
local running = coroutine.running

local BUFFER_LIMIT = 128 * 1024
local ANY = {}
local CLOSED = {}

local socket = {}
local records = {}
local pool = {}	-- driver API shape: a table means "consume" for readline

local function wake(s)
	local co = s.co
	if co then
		s.co = nil
		skynet.wakeup(co)
	end
end

local function suspend(s)
	assert(not s.co, "socket: only one coroutine may wait on a socket")
	local co = running()
	s.co = co
	if s.pause then
		skynet.error(format("Resume socket (%d)", s.id))
		s.pause = nil
		driver.start(s.id)
	end
	skynet.wait(co)
	s.co = nil
	local closer = s.closer
	if closer then
		s.closer = nil
		skynet.wakeup(closer)
	end
end

local function satisfied(s, size)
	local want = s.want
	if want == nil then
		return true
	elseif want == ANY then
		return true
	elseif want == CLOSED then
		return false
	elseif type(want) == "number" then
		return size >= want
	else
		return driver.readline(s.buffer, nil, want) == true
	end
end

local handler = {}

-- DATA
handler[1] = function(id, size, data)
	local s = records[id]
	if s == nil or s.buffer == nil then
		skynet.error("socket: drop package from " .. id)
		driver.drop(data, size)
		return
	end
	local sz = driver.push(s.buffer, pool, data, size)
	local want = s.want
	if want ~= nil and satisfied(s, sz) then
		s.want = nil
		wake(s)
		want = nil
	end
	if s.limit and sz > s.limit and type(want) ~= "number" then
		skynet.error(format("socket buffer overflow: fd=%d size=%d", id, sz))
		driver.clear(s.buffer, pool)
		driver.close(id)
		return
	end
	if want == nil and not s.pause and sz > BUFFER_LIMIT then
		skynet.error(format("Pause socket (%d) size : %d", id, sz))
		driver.pause(id)
		s.pause = true
	end
end

-- CONNECT
handler[2] = function(id, ud, addr)
	local s = records[id]
	if s == nil then
		return
	end
	if s.listen and not s.connected then
		s.addr = addr
		s.port = ud
	end
	s.connected = true
	if s.connecting == true then
		s.connecting = nil
		wake(s)
	end
end

-- CLOSE
handler[3] = function(id)
	local s = records[id]
	if s == nil then
		driver.close(id)
		return
	end
	s.connected = false
	wake(s)
	local f = s.onclose
	if f then
		s.onclose = nil
		f(id)
	end
end

-- ACCEPT
handler[4] = function(id, newid, addr)
	local s = records[id]
	if s == nil or s.callback == nil then
		driver.close(newid)
		return
	end
	s.callback(newid, addr)
end

-- ERROR
handler[5] = function(id, _, err)
	local s = records[id]
	if s == nil then
		driver.shutdown(id)
		skynet.error("socket: error on unknown", id, err)
		return
	end
	if s.listen and s.callback then
		skynet.error("socket: accept error:", err)
		return
	end
	if s.connected then
		skynet.error("socket: error on", id, err)
	elseif s.connecting then
		s.connecting = err
	end
	s.connected = false
	driver.shutdown(id)
	wake(s)
end

-- UDP
handler[6] = function(id, size, data, address)
	local s = records[id]
	if s == nil or s.callback == nil then
		skynet.error("socket: drop udp package from " .. id)
		driver.drop(data, size)
		return
	end
	local str = skynet.tostring(data, size)
	driver.drop(data, size)
	s.callback(str, address)
end

local function default_warning(id, size)
	skynet.error(format("WARNING: %d K bytes need to send out (fd = %d)", size, id))
end

-- WARNING
handler[7] = function(id, size)
	local s = records[id]
	if s then
		(s.on_warning or default_warning)(id, size)
	end
end

skynet.register_protocol {
	name = "socket",
	id = skynet.PTYPE_SOCKET,
	unpack = driver.unpack,
	dispatch = function(_, _, t, ...)
		local f = handler[t]
		if f then
			f(...)
		end
	end,
}

-- Wait for the CONNECT (or ERROR) of `id`; `func` = accept/UDP callback.
local function connect(id, func)
	local s = records[id]
	if s then
		if not s.listen then
			error "socket is not closed"
		end
		s.callback = func
	else
		s = {
			id = id,
			buffer = (func == nil) and driver.buffer() or nil,
			connected = false,
			callback = func,
		}
		records[id] = s
	end
	s.connecting = true
	suspend(s)
	local err = s.connecting
	s.connecting = nil
	if s.connected then
		return id
	end
	if records[id] == s then
		records[id] = nil
	end
	if err == true then
		err = nil
	end
	return nil, err
end

function socket.open(addr, port)
	local id = driver.connect(addr, port)
	return connect(id)
end

function socket.bind(os_fd)
	local id = driver.bind(os_fd)
	return connect(id)
end

function socket.stdin()
	return socket.bind(0)
end

function socket.start(id, func)
	driver.start(id)
	return connect(id, func)
end

function socket.listen(host, port, backlog)
	local id = driver.listen(host, port, backlog)
	local s = { id = id, connected = false, listen = true }
	records[id] = s
	local ok, err = connect(id)
	if not ok then
		return nil, err
	end
	return id, s.addr, s.port
end

-- Take from the buffer with `take(buffer, pool, arg)`; if that finds nothing and the
-- socket is open, wait until `want` is satisfied and take once more. On failure: false
-- and whatever is buffered.
local function take_or_wait(s, want, take, arg)
	local r = take(s.buffer, pool, arg)
	if r then
		return r
	end
	if s.connected then
		s.want = want
		suspend(s)
		r = take(s.buffer, pool, arg)
		if r then
			return r
		end
	end
	return false, driver.readall(s.buffer, pool)
end

function socket.read(id, sz)
	local s = records[id]
	assert(s, "socket: read from an unknown socket")
	if sz == nil then
		local r = driver.readall(s.buffer, pool)
		if r ~= "" then
			return r
		end
		if not s.connected then
			return false, r
		end
		s.want = ANY
		suspend(s)
		r = driver.readall(s.buffer, pool)
		if r ~= "" then
			return r
		end
		return false, r
	end
	return take_or_wait(s, sz, driver.pop, sz)
end

function socket.readall(id)
	local s = records[id]
	assert(s, "socket: read from an unknown socket")
	if not s.connected then
		local r = driver.readall(s.buffer, pool)
		return r ~= "" and r
	end
	s.want = CLOSED
	suspend(s)
	s.want = nil
	return driver.readall(s.buffer, pool)
end

function socket.readline(id, sep)
	sep = sep or "\n"
	local s = records[id]
	assert(s, "socket: read from an unknown socket")
	return take_or_wait(s, sep, driver.readline, sep)
end

function socket.block(id)
	local s = records[id]
	if not s or not s.connected then
		return false
	end
	s.want = ANY
	suspend(s)
	return s.connected
end

socket.write = assert(driver.send)
socket.lwrite = assert(driver.lsend)
socket.header = assert(driver.header)

function socket.close_fd(id)
	assert(records[id] == nil, "Use socket.close instead")
	driver.close(id)
end

function socket.close(id)
	local s = records[id]
	if s == nil then
		return
	end
	driver.close(id)
	if s.connected then
		-- Do not resume a paused socket that is closing: start on it would answer
		-- ERROR "socket closed", and the ERROR for the then unknown id shuts it down,
		-- discarding the output still queued (upstream sets pause = false here too).
		s.pause = nil
		if s.co then
			-- another coroutine is reading: let it finish first
			local co = running()
			s.closer = co
			skynet.wait(co)
		else
			s.want = CLOSED
			suspend(s)
			s.want = nil
		end
		s.connected = false
	end
	if records[id] == s then
		records[id] = nil
	end
end

function socket.shutdown(id)
	if records[id] then
		driver.shutdown(id)
	end
end

function socket.abandon(id)
	local s = records[id]
	if s then
		records[id] = nil
		s.connected = false
		if s.buffer then
			driver.clear(s.buffer, pool)
		end
		wake(s)
	end
end

function socket.invalid(id)
	return records[id] == nil
end

function socket.disconnected(id)
	local s = records[id]
	if s then
		return not (s.connected or s.connecting)
	end
end

function socket.limit(id, limit)
	local s = assert(records[id])
	s.limit = limit
end

function socket.pause(id)
	local s = records[id]
	if s == nil or s.pause then
		return
	end
	driver.pause(id)
	s.pause = true
end

function socket.warning(id, callback)
	local s = assert(records[id])
	s.on_warning = callback
end

function socket.onclose(id, callback)
	local s = assert(records[id])
	s.onclose = callback
end

-- 2016: FIFO mutex per socket.
function socket.lock(id)
	local s = assert(records[id])
	local q = s.lock
	if q == nil then
		s.lock = {}
		return
	end
	local co = running()
	q[#q + 1] = co
	skynet.wait(co)
end

function socket.unlock(id)
	local s = assert(records[id])
	local q = assert(s.lock, "socket: unlock without lock")
	local co = table.remove(q, 1)
	if co then
		skynet.wakeup(co)
	else
		s.lock = nil
	end
end

-- UDP

local function udp_record(id, callback)
	local s = records[id]
	if s then
		s.callback = callback or s.callback
	else
		records[id] = { id = id, connected = true, protocol = "UDP", callback = callback }
	end
end

function socket.udp(callback, host, port)
	local id = driver.udp(host, port)
	udp_record(id, callback)
	return id
end

function socket.udp_connect(id, addr, port, callback)
	udp_record(id, callback)
	driver.udp_connect(id, addr, port)
end

function socket.udp_listen(addr, port, callback)
	local id = driver.udp_listen(addr, port)
	udp_record(id, callback)
	return id
end

function socket.udp_dial(addr, port, callback)
	local id = driver.udp_dial(addr, port)
	udp_record(id, callback)
	return id
end

socket.sendto = assert(driver.udp_send)
socket.udp_address = assert(driver.udp_address)
socket.netstat = assert(driver.info)
socket.resolve = assert(driver.resolve)

return socket
