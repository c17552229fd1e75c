-- http.sockethelper: read/write functions over a skynet.socket id for http.internal,
-- and a connect with a timeout (upstream's module of the same name and function set).
--
-- Reads and writes raise `sockethelper.socket_error` (one shared object, so callers
-- can compare `err == socket_error`; its text names the operation and the fd) when
-- the connection is gone.

local socket = require "skynet.socket"
local skynet = require "skynet"

local tostring = tostring
local error = error

local sockethelper = {}

local socket_error = setmetatable({}, {
	__tostring = function(self)
		local info = self.err_info
		self.err_info = nil
		return info or "[Socket Error]"
	end,
	__call = function(self, info)
		self.err_info = "[Socket Error] : " .. tostring(info)
		return self
	end,
})

sockethelper.socket_error = socket_error

local read = socket.read

local function reader(fd)
	return function(sz)
		local ret = read(fd, sz)
		if ret then
			return ret
		end
		error(socket_error("read failed fd = " .. fd))
	end
end

-- A read function; `pre` (bytes already read from fd) is served first.
function sockethelper.readfunc(fd, pre)
	local f = reader(fd)
	if pre == nil or pre == "" then
		return f
	end
	return function(sz)
		if pre == nil then
			return f(sz)
		end
		local n = #pre
		if sz == nil or sz == n then
			local ret = pre
			pre = nil
			return ret
		elseif sz < n then
			local ret = pre:sub(1, sz)
			pre = pre:sub(sz + 1)
			return ret
		end
		local ret = pre
		pre = nil
		return ret .. f(sz - n)
	end
end

sockethelper.readall = socket.readall

function sockethelper.writefunc(fd)
	local write = socket.write
	return function(content)
		if not write(fd, content) then
			error(socket_error("write failed fd = " .. fd))
		end
	end
end

-- Connect; with `timeout` (centiseconds) give up after that long (a connection that
-- completes later is closed at once).
function sockethelper.connect(host, port, timeout)
	local fd, err
	local timed_out = false
	if timeout then
		local co = coroutine.running()
		local waiting = true
		skynet.fork(function()
			fd, err = socket.open(host, port)
			if not waiting then
				-- the caller gave up already
				if fd then
					socket.close(fd)
				end
			else
				waiting = false
				skynet.wakeup(co)
			end
		end)
		skynet.sleep(timeout)
		if waiting then
			waiting = false
			timed_out = true
			fd = nil
		end
	else
		fd, err = socket.open(host, port)
	end
	if fd then
		return fd
	end
	error(socket_error(string.format("connect failed host = %s port = %s timeout = %s err = %s is_time_out = %s",
		host, port, tostring(timeout), tostring(err), tostring(timed_out))))
end

function sockethelper.close(fd)
	socket.close(fd)
end

function sockethelper.shutdown(fd)
	socket.shutdown(fd)
end

return sockethelper
