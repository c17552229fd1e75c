-- skynet.socketchannel: a request/response client over one TCP connection that
-- reconnects on demand.
--
-- Two modes:
--   order mode   (no desc.response): responses come back in request order;
--                request(req, response_fn) queues response_fn, which reads one
--                response from the socket object: response_fn(sock) -> ok, data.
--   session mode (desc.response = fn(sock) -> session, ok, data[, more]):
--                request(req, session) waits for the response tagged `session`;
--                `more` = true means further parts follow (collected in a table).
-- One dispatcher coroutine per live connection reads responses and wakes the
-- waiting requesters. A socket failure wakes every waiter with `socketchannel.error`
-- and drops the connection; the next request reconnects (host, then desc.backup).
-- Every waiter remembers the socket its request went out on (__wait_so), and a dead
-- socket fails exactly its own waiters, whoever notices first (dispatcher, close
-- callback, failed write): none is left waiting on a socket nobody reads, and a
-- late failure never hits waiters of the next connection.
-- desc.limit (bytes) bounds what may sit unread in the socket's buffer while no
-- fixed-size read is pending (e.g. a line that never ends): beyond it the socket is
-- closed (socket.limit).
--
-- Fields: __host/__port/__backup/__auth/__response/__nodelay;
-- __sock (false or { fd } with read/readline methods), __closed,
-- __order (queue of { fn, co }), __session (session -> co), __result/__data
-- (per waiting coroutine), __wait_so (co -> its socket), __connecting (waiters while a connect is in progress),
-- __idle (order-mode dispatcher parked on an empty queue), __auth_co.

local skynet = require "skynet"
local socket = require "skynet.socket"
local driver = require "skynet.socketdriver"

local running = coroutine.running
local insert = table.insert
local remove = table.remove

local socketchannel = {}
local channel = {}
local channel_meta = { __index = channel }

local socket_error = setmetatable({}, {
	__tostring = function()
		return "[Socket Error]"
	end,
	__name = "socket error",
})
socketchannel.error = socket_error

local sock_methods = {}
local sock_meta = { __index = sock_methods }

function sock_methods:read(sz)
	local r = socket.read(self[1], sz)
	if not r then
		error(socket_error)
	end
	return r
end

function sock_methods:readline(sep)
	local r = socket.readline(self[1], sep)
	if not r then
		error(socket_error)
	end
	return r
end

function socketchannel.channel(desc)
	local c = {
		__host = assert(desc.host, "socketchannel: host required"),
		__port = assert(desc.port, "socketchannel: port required"),
		__backup = desc.backup,
		__auth = desc.auth,
		__response = desc.response,
		__nodelay = desc.nodelay,
		__limit = desc.limit,
		__sock = false,
		__closed = false,
		__order = {},
		__session = {},
		__result = {},
		__data = {},
		__wait_so = {},
		__connecting = false,
		__idle = false,
		__auth_co = false,
	}
	return setmetatable(c, channel_meta)
end

-- Wake the requesters waiting on socket `so` (every one when `so` is nil) with a
-- socket error.
local function fail_all(self, msg, so)
	local wait_so = self.__wait_so
	local keep = {}
	for _, w in ipairs(self.__order) do
		if so == nil or wait_so[w.co] == so then
			self.__result[w.co] = socket_error
			self.__data[w.co] = msg
			skynet.wakeup(w.co)
		else
			keep[#keep + 1] = w
		end
	end
	self.__order = keep
	for session, co in pairs(self.__session) do
		if so == nil or wait_so[co] == so then
			self.__result[co] = socket_error
			self.__data[co] = msg
			skynet.wakeup(co)
			self.__session[session] = nil
		end
	end
end

local function drop_socket(self)
	local so = self.__sock
	if so then
		self.__sock = false
		socket.close(so[1])
	end
	local idle = self.__idle
	if idle then
		self.__idle = false
		skynet.wakeup(idle)
	end
end

local function dispatch_by_order(self, so)
	while self.__sock == so do
		local w = remove(self.__order, 1)
		if w == nil then
			local co = running()
			self.__idle = co
			skynet.wait(co)
		else
			local ok, result, data = pcall(w.fn, so)
			if ok then
				self.__result[w.co] = result
				self.__data[w.co] = data
				skynet.wakeup(w.co)
			else
				local msg = (result ~= socket_error) and tostring(result) or nil
				self.__result[w.co] = socket_error
				self.__data[w.co] = msg
				skynet.wakeup(w.co)
				-- waiters first: closing the socket runs the onclose callback,
				-- which would fail them without the message
				fail_all(self, msg, so)
				if self.__sock == so then
					drop_socket(self)
				end
				return
			end
		end
	end
	fail_all(self, nil, so)
end

local function dispatch_by_session(self, so)
	local response = self.__response
	local parts = {}
	while self.__sock == so do
		local ok, session, result, data, more = pcall(response, so)
		if not ok then
			local msg = (session ~= socket_error) and tostring(session) or nil
			fail_all(self, msg, so) -- before the close (see dispatch_by_order)
			if self.__sock == so then
				drop_socket(self)
			end
			return
		end
		local co = session and self.__session[session]
		if co == nil then
			skynet.error("socket: unknown session :", session)
		elseif more and result then
			local p = parts[co] or {}
			p[#p + 1] = data
			parts[co] = p
		else
			local p = parts[co]
			if p then
				parts[co] = nil
				p[#p + 1] = data
				data = p
			end
			self.__session[session] = nil
			self.__result[co] = result
			self.__data[co] = data
			skynet.wakeup(co)
		end
	end
	fail_all(self, nil, so)
end

local function open_socket(self)
	local targets = { { self.__host, self.__port } }
	for _, b in ipairs(self.__backup or {}) do
		if type(b) == "table" then
			targets[#targets + 1] = { b.host or self.__host, b.port or self.__port }
		else
			targets[#targets + 1] = { b, self.__port }
		end
	end
	local err
	for _, t in ipairs(targets) do
		local fd, e = socket.open(t[1], t[2])
		if fd then
			self.__host, self.__port = t[1], t[2]
			return fd
		end
		err = e
	end
	return nil, err
end

local function connect_once(self)
	if self.__closed then
		return false, "channel closed"
	end
	local fd, err = open_socket(self)
	if not fd then
		return false, err
	end
	if self.__nodelay then
		driver.nodelay(fd)
	end
	if self.__limit then
		socket.limit(fd, self.__limit)
	end
	local so = setmetatable({ fd }, sock_meta)
	self.__sock = so
	-- The peer going away closes our end at once, even while the channel is idle
	-- (the next request reconnects).
	socket.onclose(fd, function()
		if self.__sock == so then
			drop_socket(self)
		end
		fail_all(self, nil, so)
	end)
	skynet.fork(self.__response and dispatch_by_session or dispatch_by_order, self, so)
	if self.__auth then
		self.__auth_co = running()
		local ok, msg = pcall(self.__auth, self)
		self.__auth_co = false
		if not ok then
			drop_socket(self)
			return false, tostring(msg)
		end
	end
	return true
end

local function try_connect(self, once)
	local backoff = 0
	while not self.__closed do
		local ok, err = connect_once(self)
		if ok then
			return
		end
		if once then
			return err
		end
		skynet.error("socket: connect", self.__host, self.__port, err)
		skynet.sleep(backoff)
		backoff = math.min(backoff + 100, 1000)
	end
	return "channel closed"
end

-- true: usable; false: closed for good; nil: needs a connection.
local function check_connection(self)
	local so = self.__sock
	if so then
		if socket.invalid(so[1]) or socket.disconnected(so[1]) then
			drop_socket(self)
			return nil
		end
		return true
	end
	if self.__closed then
		return false
	end
	return nil
end

local function block_connect(self, once)
	if self.__auth_co and self.__auth_co == running() then
		return true -- requests made by the auth function itself
	end
	local r = check_connection(self)
	if r ~= nil then
		return r
	end
	local err
	if self.__connecting then
		local co = running()
		insert(self.__connecting, co)
		skynet.wait(co)
	else
		self.__connecting = {}
		err = try_connect(self, once)
		local waiters = self.__connecting
		self.__connecting = false
		for _, co in ipairs(waiters) do
			skynet.wakeup(co)
		end
	end
	r = check_connection(self)
	if r == nil then
		error(string.format("Connect to %s:%s failed (%s)", self.__host, self.__port, tostring(err)))
	end
	return r
end

function channel:connect(once)
	self.__closed = false
	return block_connect(self, once)
end

local function wait_for_response(self, response, so)
	local co = running()
	self.__wait_so[co] = so
	if self.__response then
		self.__session[response] = co
	else
		insert(self.__order, { fn = response, co = co })
		local idle = self.__idle
		if idle then
			self.__idle = false
			skynet.wakeup(idle)
		end
	end
	skynet.wait(co)
	local result, data = self.__result[co], self.__data[co]
	self.__result[co] = nil
	self.__data[co] = nil
	self.__wait_so[co] = nil
	if result == socket_error then
		if data then
			error(data)
		end
		error(socket_error)
	end
	if not result then
		error(data)
	end
	return data
end

local function send_failed(self, so)
	if self.__sock == so then
		drop_socket(self)
	end
	fail_all(self, nil, so)
	error(socket_error)
end

function channel:request(request, response, padding)
	assert(block_connect(self, true), "socketchannel: channel closed")
	-- The auth function's own requests skip block_connect's check: its link may
	-- already be gone.
	local so = self.__sock
	if not so then
		error(socket_error)
	end
	local fd = so[1]
	if not socket.write(fd, request) then
		send_failed(self, so)
	end
	if padding then
		for _, p in ipairs(padding) do
			if not socket.lwrite(fd, p) then
				send_failed(self, so)
			end
		end
	end
	if response == nil then
		return
	end
	return wait_for_response(self, response, so)
end

function channel:response(response)
	assert(block_connect(self), "socketchannel: channel closed")
	local so = self.__sock
	if not so then
		error(socket_error)
	end
	return wait_for_response(self, response, so)
end

function channel:close()
	if not self.__closed then
		self.__closed = true
		drop_socket(self)
		fail_all(self)
	end
end

function channel:changehost(host, port)
	self.__host = host
	if port then
		self.__port = port
	end
	if not self.__closed then
		drop_socket(self)
	end
end

function channel:changebackup(backup)
	self.__backup = backup
end

return socketchannel
