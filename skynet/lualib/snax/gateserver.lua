-- snax.gateserver: a listening socket whose clients speak 2-byte length framing
-- (socket.md §6.1). The embedding service supplies a handler table:
--   required: connect(fd, addr), message(fd, msg, sz)
--   optional: open(source, conf), disconnect(fd), error(fd, msg), warning(fd, size),
--             command(cmd, source, ...), embed (true: do not call skynet.start)
-- State: `listen_id` (the listener), `queue` (netpack queue: always keep the value
-- filter returns), `clients[fd]` = true for each live client (counted in
-- client_count); a client is forgotten and its socket closed on close, error or
-- closeclient, whichever comes first.
local skynet = require "skynet"
local netpack = require "skynet.netpack"
local driver = require "skynet.socketdriver"

local gateserver = {}

local listen_id
local queue
local maxclient
local client_count = 0
local nodelay = true
local clients = {}

function gateserver.openclient(fd)
	if clients[fd] then
		driver.start(fd)
	end
end

-- Forget a live client (true) or do nothing (false): the one place that keeps
-- `clients` and `client_count` in step.
local function forget(fd)
	if clients[fd] == nil then
		return false
	end
	clients[fd] = nil
	client_count = client_count - 1
	return true
end

function gateserver.closeclient(fd)
	if forget(fd) then
		driver.close(fd)
	end
end

function gateserver.start(handler)
	assert(handler.message, "gateserver: handler.message required")
	assert(handler.connect, "gateserver: handler.connect required")

	local CMD = {}
	local waiting_init -- { co, id, addr, port } while open() waits for the listener

	function CMD.open(source, conf)
		assert(not listen_id, "gateserver: already open")
		local address = conf.address or "0.0.0.0"
		local port = assert(conf.port, "gateserver: conf.port required")
		maxclient = conf.maxclient or 1024
		-- Request/response traffic: Nagle only adds latency, so on unless refused.
		nodelay = conf.nodelay ~= false
		skynet.error(string.format("Listen on %s:%d", address, port))
		listen_id = driver.listen(address, port, conf.backlog)
		local w = { co = coroutine.running(), id = listen_id }
		waiting_init = w
		skynet.wait(w.co)
		waiting_init = nil
		conf.address = w.addr or address
		conf.port = w.port or port
		driver.start(listen_id)
		if handler.open then
			return handler.open(source, conf)
		end
	end

	function CMD.close()
		assert(listen_id, "gateserver: not open")
		driver.close(listen_id)
	end

	local EV = {}

	local function deliver(fd, msg, sz)
		if clients[fd] then
			handler.message(fd, msg, sz)
		else
			skynet.error(string.format("Drop message from fd (%d) : %s", fd, netpack.tostring(msg, sz)))
		end
	end

	EV.data = deliver

	local function drain()
		local fd, msg, sz = netpack.pop(queue)
		if fd == nil then
			return
		end
		-- If a handler blocks, the fork goes on with the rest of the queue.
		skynet.fork(drain)
		deliver(fd, msg, sz)
		for nfd, nmsg, nsz in netpack.pop, queue do
			deliver(nfd, nmsg, nsz)
		end
	end

	EV.more = drain

	function EV.open(fd, addr)
		if client_count >= maxclient then
			driver.shutdown(fd)
			return
		end
		client_count = client_count + 1
		if nodelay then
			driver.nodelay(fd)
		end
		clients[fd] = true
		handler.connect(fd, addr)
	end

	-- The gateserver owns its clients' sockets and closes each exactly once, when the
	-- peer goes away (output already queued is still written), so a handler that
	-- never calls closeclient leaks nothing; a later closeclient is a no-op.

	function EV.close(fd)
		if fd == listen_id then
			listen_id = nil
			return
		end
		if forget(fd) then
			driver.close(fd)
			if handler.disconnect then
				handler.disconnect(fd)
			end
		end
	end

	function EV.error(fd, msg)
		if fd == listen_id then
			skynet.error("gateserver accept error:", msg)
			return
		end
		driver.shutdown(fd)
		if forget(fd) and handler.error then
			handler.error(fd, msg)
		end
	end

	function EV.warning(fd, size)
		if handler.warning then
			handler.warning(fd, size)
		end
	end

	function EV.init(id, addr, port)
		local w = waiting_init
		if w and w.id == id and w.co then
			w.addr, w.port = addr, port
			local co = w.co
			w.co = nil
			skynet.wakeup(co)
		end
	end

	skynet.register_protocol {
		name = "socket",
		id = skynet.PTYPE_SOCKET,
		unpack = function(msg, sz)
			return netpack.filter(queue, msg, sz)
		end,
		dispatch = function(_, _, q, kind, ...)
			queue = q
			if kind then
				EV[kind](...)
			end
		end,
	}

	local function init()
		skynet.dispatch("lua", function(_, source, cmd, ...)
			local f = CMD[cmd]
			if f then
				skynet.ret(skynet.pack(f(source, ...)))
			else
				skynet.ret(skynet.pack(handler.command(cmd, source, ...)))
			end
		end)
	end

	if handler.embed then
		init()
	else
		skynet.start(init)
	end
end

return gateserver
