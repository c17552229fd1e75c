-- http.websocket: RFC 6455 websockets, server (accept) and client (connect), over
-- plain sockets (ws) or http.tlshelper (wss). Upstream's module of the same name and
-- function set: accept, connect, read, write, ping, close, addrinfo, real_ip,
-- is_close; handler callbacks connect / handshake / message / ping / pong / close /
-- error / warning.
--
-- Protocol rules we enforce (upstream does not), each failing with a close frame
-- carrying the status code, then the socket closed and a log line naming the fd:
--   * reserved bits or an unknown opcode (1002); a control frame that is fragmented
--     or longer than 125 bytes (1002); a continuation frame with no message started,
--     or a new message inside a fragmented one (1002);
--   * a frame longer than max_frame, or a message (all its fragments) longer than
--     max_message (1009): nothing is buffered past the limit, the frame's payload is
--     never read;
--   * a text message or a close reason that is not UTF-8 (1007); a close payload of
--     one byte or with an invalid status code (1002).
-- Ping frames in the middle of a fragmented message are answered at once. A close
-- frame from the peer is answered with a close frame (the same status code) before
-- the socket is closed. Clients mask every frame (a fresh random key per frame) unless
-- given a key; servers never mask. Unmasked frames from a client are accepted, as
-- upstream (its own client sends them).
--
-- Limits: `options.max_frame`, `options.max_message` for accept; `websocket.limits`
-- for the defaults (server 256 KiB like upstream's MAX_FRAME_SIZE; client 16 MiB,
-- where upstream has none).

local internal = require "http.internal"
local socket = require "skynet.socket"
local crypt = require "skynet.crypt"
local httpd = require "http.httpd"
local skynet = require "skynet"
local sockethelper = require "http.sockethelper"
local socket_error = sockethelper.socket_error

local GLOBAL_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

local assert = assert
local pairs = pairs
local error = error
local string = string
local xpcall = xpcall
local pcall = pcall
local debug = debug
local table = table
local tostring = tostring
local type = type
local setmetatable = setmetatable
local utf8len = utf8.len
local more = internal.read

local M = {}

M.limits = {
	server_frame = 256 * 1024,
	server_message = 256 * 1024,
	client_frame = 16 * 1024 * 1024,
	client_message = 16 * 1024 * 1024,
}

-- A protocol violation: what to send in the close frame and what to log.
local perr_mt = {
	__tostring = function(self)
		return "websocket: " .. self.why
	end,
}
local function violation(code, why)
	error(setmetatable({ code = code, why = why }, perr_mt), 0)
end

local ws_pool = {}

local function _close_websocket(ws_obj)
	local id = ws_obj.id
	if ws_pool[id] == ws_obj then
		ws_pool[id] = nil
	end
	ws_obj.close()
end

local function _isws_closed(id)
	return not ws_pool[id]
end

local op_code = {
	["frame"] = 0x00,
	["text"] = 0x01,
	["binary"] = 0x02,
	["close"] = 0x08,
	["ping"] = 0x09,
	["pong"] = 0x0A,
	[0x00] = "frame",
	[0x01] = "text",
	[0x02] = "binary",
	[0x08] = "close",
	[0x09] = "ping",
	[0x0A] = "pong",
}

local function write_frame(self, op, payload, masking_key)
	payload = payload or ""
	local len = #payload
	local v1 = 0x80 | assert(op_code[op])
	if masking_key == nil and self.mode == "client" then
		masking_key = math.random(0, 0xffffffff)
	end
	local mask = masking_key and 0x80 or 0
	local head
	if len < 126 then
		head = string.pack("I1I1", v1, mask | len)
	elseif len <= 0xffff then
		head = string.pack("I1I1>I2", v1, mask | 126, len)
	else
		head = string.pack("I1I1>I8", v1, mask | 127, len)
	end
	if masking_key then
		local key = string.pack(">I4", masking_key)
		head = head .. key
		if len > 0 then
			payload = crypt.xor_str(payload, key)
		end
	end
	-- one write per frame: header and payload together
	self.write(len > 0 and head .. payload or head)
end

local function read_frame(self)
	local read = self.read
	local v1, v2 = string.unpack("I1I1", more(read, 2))
	local fin = (v1 & 0x80) ~= 0
	if (v1 & 0x70) ~= 0 then
		violation(1002, "reserved bits set without an extension")
	end
	local op = v1 & 0x0f
	local opname = op_code[op]
	if not opname then
		violation(1002, "unknown opcode " .. op)
	end
	local len = v2 & 0x7f
	if op >= 8 and (not fin or len > 125) then
		violation(1002, "fragmented or oversized control frame")
	end
	if len == 126 then
		len = string.unpack(">I2", more(read, 2))
	elseif len == 127 then
		len = string.unpack(">i8", more(read, 8))
		if len < 0 then
			violation(1002, "invalid payload length")
		end
	end
	if len > self.max_frame then
		violation(1009, string.format("frame of %d bytes exceeds the limit %d", len, self.max_frame))
	end
	local key = (v2 & 0x80) ~= 0 and more(read, 4)
	local payload = len > 0 and more(read, len) or ""
	if key and len > 0 then
		payload = crypt.xor_str(payload, key)
	end
	return fin, opname, payload
end

-- status codes a peer may send (RFC 6455 7.4)
local function valid_close_code(code)
	if code >= 3000 and code <= 4999 then
		return true
	end
	return code >= 1000 and code <= 1014 and code ~= 1004 and code ~= 1005 and code ~= 1006
end

local function read_close(payload)
	local n = #payload
	if n == 0 then
		return nil, nil
	end
	if n == 1 then
		violation(1002, "close frame with a one-byte payload")
	end
	local code = string.unpack(">I2", payload)
	if not valid_close_code(code) then
		violation(1002, "invalid close code " .. code)
	end
	local reason = payload:sub(3)
	if not utf8len(reason) then
		violation(1007, "close reason is not UTF-8")
	end
	return code, reason
end

-- Read frames until a whole message, a close or (server loop) a control frame to
-- report. `on_control(op, payload)` handles ping/pong. Returns op, payload where op
-- is "text"/"binary" or "close" (payload = code, reason).
local function read_message(self, on_control)
	local parts, size, first_op
	while true do
		local fin, op, payload = read_frame(self)
		if op == "close" then
			return "close", read_close(payload)
		elseif op == "ping" or op == "pong" then
			on_control(op, payload)
		else
			if op == "frame" then
				if not first_op then
					violation(1002, "continuation frame without a message")
				end
			elseif first_op then
				violation(1002, "new message inside a fragmented one")
			end
			if fin and not first_op then
				if op == "text" and not utf8len(payload) then
					violation(1007, "text message is not UTF-8")
				end
				if #payload > self.max_message then
					violation(1009, "message exceeds the limit " .. self.max_message)
				end
				return op, payload
			end
			if not first_op then
				first_op, parts, size = op, {}, 0
			end
			size = size + #payload
			if size > self.max_message then
				violation(1009, "message exceeds the limit " .. self.max_message)
			end
			parts[#parts + 1] = payload
			if fin then
				local s = table.concat(parts)
				if first_op == "text" and not utf8len(s) then
					violation(1007, "text message is not UTF-8")
				end
				return first_op, s
			end
		end
	end
end

local function close_payload(code, reason)
	if not code then
		return nil
	end
	reason = reason or ""
	return string.pack(">I2", code) .. reason
end

-- Answer a violation: a close frame with its code, then the socket goes.
local function fail(self, err)
	pcall(write_frame, self, "close", close_payload(err.code, err.why:sub(1, 120)))
	skynet.error(string.format("websocket fd=%d (%s): %s", self.id, tostring(self.addr), err.why))
	if ws_pool[self.id] == self then
		_close_websocket(self)
	end
end

local function try_handle(self, method, ...)
	local handle = self.handle
	local f = handle and handle[method]
	if f then
		f(self.id, ...)
	end
end

local function write_handshake(self, host, url, header)
	local key = crypt.base64encode(crypt.randomkey() .. crypt.randomkey())
	local request_header = {
		["Upgrade"] = "websocket",
		["Connection"] = "Upgrade",
		["Sec-WebSocket-Version"] = "13",
		["Sec-WebSocket-Key"] = key,
	}
	if header then
		for k, v in pairs(header) do
			assert(request_header[k] == nil, k)
			request_header[k] = v
		end
	end
	local recvheader = {}
	local code, payload = internal.request(self, "GET", host, url, recvheader, request_header)
	if code ~= 101 then
		error(string.format("websocket handshake error: code[%s] info:%s", code, payload))
	end
	internal.unread(self.read, payload)
	if not recvheader["upgrade"] or tostring(recvheader["upgrade"]):lower() ~= "websocket" then
		error("websocket handshake upgrade must websocket")
	end
	if not recvheader["connection"] or not tostring(recvheader["connection"]):lower():find("upgrade", 1, true) then
		error("websocket handshake connection must upgrade")
	end
	local sw_key = recvheader["sec-websocket-accept"]
	if not sw_key then
		error("websocket handshake need Sec-WebSocket-Accept")
	end
	if crypt.base64decode(sw_key) ~= crypt.sha1(key .. self.guid) then
		error("websocket handshake invalid Sec-WebSocket-Accept")
	end
end

-- Returns nil, header, url when the handshake was answered with 101, or the status
-- code and a reason to answer with.
local function read_handshake(self, upgrade_ops)
	local header, url
	if upgrade_ops then
		header, url = upgrade_ops.header, upgrade_ops.url
	else
		local lines = {}
		local payload = internal.recvheader(self.read, lines, "")
		if not payload then
			return 413
		end
		internal.unread(self.read, payload)
		local request = lines[1] or ""
		local method, u, httpver = request:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
		if not method then
			return 400, "bad request line"
		end
		if method ~= "GET" then
			return 400, "need GET method"
		end
		if httpver ~= "1.1" then
			return 505
		end
		url = u
		header = internal.parseheader(lines, 2, {})
	end
	if not header then
		return 400
	end
	local upgrade = internal.single(header, "upgrade")
	if not upgrade or upgrade:lower() ~= "websocket" then
		return 426, "Upgrade Required"
	end
	if not header["host"] then
		return 400, "host Required"
	end
	local connection = internal.single(header, "connection")
	if not connection or not connection:lower():find("upgrade", 1, true) then
		return 400, "Connection must Upgrade"
	end
	local sw_key = internal.single(header, "sec-websocket-key")
	if not sw_key then
		return 400, "Sec-WebSocket-Key Required"
	end
	if #crypt.base64decode(sw_key) ~= 16 then
		return 400, "Sec-WebSocket-Key invalid"
	end
	if internal.single(header, "sec-websocket-version") ~= "13" then
		return 400, "Sec-WebSocket-Version must 13"
	end
	local sub = ""
	local offered = internal.single(header, "sec-websocket-protocol")
	if offered then
		local wanted = self.protocols or { chat = true }
		for p in offered:gmatch("[^%s,]+") do
			if wanted[p] then
				sub = "Sec-WebSocket-Protocol: " .. p .. "\r\n"
				break
			end
		end
	end
	-- read 'x-real-ip' header from nginx
	self.real_ip = header["x-real-ip"]
	local accept = crypt.base64encode(crypt.sha1(sw_key .. self.guid))
	self.write("HTTP/1.1 101 Switching Protocols\r\n"
		.. "Upgrade: websocket\r\n"
		.. "Connection: Upgrade\r\n"
		.. "Sec-WebSocket-Accept: " .. accept .. "\r\n"
		.. sub .. "\r\n")
	return nil, header, url
end

local function resolve_accept(self, options)
	try_handle(self, "connect")
	local code, err, url = read_handshake(self, options and options.upgrade)
	if code then
		self.handshake_done()
		local ok, s = httpd.write_response(self.write, code, err)
		if not ok then
			error(s)
		end
		try_handle(self, "close")
		return
	end
	self.handshake_done()
	try_handle(self, "handshake", err, url)
	local function control(op, payload)
		if op == "ping" then
			write_frame(self, "pong", payload)
			try_handle(self, "ping", payload)
		else
			try_handle(self, "pong", payload)
		end
	end
	while true do
		if _isws_closed(self.id) then
			try_handle(self, "close")
			return
		end
		local op, a, b = read_message(self, control)
		if op == "close" then
			-- answer the peer's close with the same status code
			pcall(write_frame, self, "close", close_payload(a))
			try_handle(self, "close", a, b)
			return
		end
		try_handle(self, "message", a, op)
	end
end

local function new_ws(socket_id, protocol, mode, hostname)
	local obj
	if protocol == "ws" then
		obj = {
			close = function()
				socket.close(socket_id)
			end,
			read = sockethelper.readfunc(socket_id),
			write = sockethelper.writefunc(socket_id),
			readall = function()
				return socket.readall(socket_id)
			end,
		}
	elseif protocol == "wss" then
		local tls = require "http.tlshelper"
		local tls_ctx
		if mode == "client" then
			M.SSLCTX_CLIENT = M.SSLCTX_CLIENT or tls.newctx()
			tls_ctx = tls.newtls("client", M.SSLCTX_CLIENT, hostname)
		else
			if not M.SSLCTX_SERVER then
				local ctx = tls.newctx()
				-- openssl req -x509 -newkey rsa:2048 -days 3650 -nodes -keyout server-key.pem -out server-cert.pem
				local certfile = skynet.getenv("certfile") or "./server-cert.pem"
				local keyfile = skynet.getenv("keyfile") or "./server-key.pem"
				ctx:set_cert(certfile, keyfile)
				M.SSLCTX_SERVER = ctx
			end
			tls_ctx = tls.newtls("server", M.SSLCTX_SERVER)
		end
		local ok, err
		if mode == "client" then
			ok, err = pcall(tls.init_requestfunc(socket_id, tls_ctx))
		else
			ok, err = pcall(tls.init_responsefunc(socket_id, tls_ctx))
		end
		if not ok then
			socket.close(socket_id)
			tls_ctx:close()
			error(err)
		end
		obj = {
			close = function()
				socket.close(socket_id)
				tls_ctx:close()
			end,
			read = tls.readfunc(socket_id, tls_ctx),
			write = tls.writefunc(socket_id, tls_ctx),
			readall = tls.readallfunc(socket_id, tls_ctx),
		}
	else
		error(string.format("invalid websocket protocol:%s", tostring(protocol)))
	end
	obj.mode = mode
	obj.id = assert(socket_id)
	obj.guid = GLOBAL_GUID
	ws_pool[socket_id] = obj
	return obj
end

-- handle interface
-- connect / handshake / message / ping / pong / close / error / warning
-- options: upgrade = {header, method, url} (a request httpd already read),
-- max_frame, max_message (bytes), protocols (list of subprotocols to accept;
-- default {"chat"} as upstream), handshake_timeout (centiseconds: a peer that has
-- not completed the TLS and HTTP handshakes by then is disconnected).
function M.accept(socket_id, handle, protocol, addr, options)
	if not (options and options.upgrade) then
		local isok, err = socket.start(socket_id)
		if not isok then
			return false, err
		end
	end
	protocol = protocol or "ws"
	-- ours: a peer that does not finish the (TLS and) HTTP handshake in time is cut off
	local handshake_done
	local timeout = options and options.handshake_timeout
	if timeout then
		skynet.timeout(timeout, function()
			if not handshake_done then
				skynet.error(string.format("websocket fd=%d (%s): handshake timeout", socket_id, tostring(addr)))
				socket.shutdown(socket_id)
			end
		end)
	end
	local okn, ws_obj = pcall(new_ws, socket_id, protocol, "server")
	if not okn then
		handshake_done = true -- the id may be reused by now: the timer must not touch it
		skynet.error(string.format("websocket fd=%d (%s): %s", socket_id, tostring(addr), tostring(ws_obj)))
		return false, ws_obj
	end
	ws_obj.handle = handle
	ws_obj.addr = addr
	ws_obj.handshake_done = function()
		handshake_done = true
	end
	ws_obj.max_frame = options and options.max_frame or M.limits.server_frame
	ws_obj.max_message = options and options.max_message or M.limits.server_message
	if options and options.protocols then
		local set = {}
		for _, p in ipairs(options.protocols) do
			set[p] = true
		end
		ws_obj.protocols = set
	end
	local on_warning = handle and handle["warning"]
	if on_warning then
		local isok = pcall(socket.warning, socket_id, function(id, sz)
			on_warning(ws_obj, sz)
		end)
		if not isok then
			handshake_done = true
			if not _isws_closed(socket_id) then
				_close_websocket(ws_obj)
			end
			return false, "connect is closed " .. socket_id
		end
	end

	local ok, err = xpcall(resolve_accept, function(e)
		if getmetatable(e) == perr_mt or e == socket_error then
			return e
		end
		return debug.traceback(e)
	end, ws_obj, options)
	handshake_done = true
	if not ok and getmetatable(err) == perr_mt then
		fail(ws_obj, err)
		try_handle(ws_obj, "close", err.code, err.why)
		return false, tostring(err)
	end
	local closed = _isws_closed(socket_id)
	if not closed then
		_close_websocket(ws_obj)
	end
	if not ok then
		if err == socket_error then
			if closed then
				try_handle(ws_obj, "close")
			else
				try_handle(ws_obj, "error", err)
			end
		else
			return false, err
		end
	end
	return true
end

function M.connect(url, header, timeout)
	local protocol, host, uri = string.match(url, "^(wss?)://([^/]+)(.*)$")
	if protocol ~= "wss" and protocol ~= "ws" then
		error(string.format("invalid protocol: %s", protocol))
	end
	local host_addr, host_port = string.match(host, "^([^:]+):?(%d*)$")
	assert(host_addr and host_port, "invalid host")
	if host_port == "" then
		host_port = protocol == "ws" and 80 or 443
	end
	local hostname
	if not host_addr:match(".*%d+$") then
		hostname = host_addr
	end
	uri = uri == "" and "/" or uri
	local socket_id = sockethelper.connect(host_addr, host_port, timeout)
	local ws_obj = new_ws(socket_id, protocol, "client", hostname)
	ws_obj.addr = host
	ws_obj.max_frame = M.limits.client_frame
	ws_obj.max_message = M.limits.client_message
	local ok, err = pcall(write_handshake, ws_obj, host, uri, header)
	if not ok then
		_close_websocket(ws_obj)
		error(err)
	end
	return socket_id
end

-- The next message: data, "text"|"binary"; or false, reason, code when the peer
-- closed (answered with a close frame). Raises on a broken connection or a protocol
-- violation (the connection is closed first).
function M.read(id)
	local ws_obj = assert(ws_pool[id], "websocket is closed")
	local ok, op, a, b = pcall(read_message, ws_obj, function(op, payload)
		if op == "ping" then
			write_frame(ws_obj, "pong", payload)
		end
	end)
	if not ok then
		if getmetatable(op) == perr_mt then
			fail(ws_obj, op)
			error(tostring(op))
		end
		if ws_pool[id] == ws_obj then
			_close_websocket(ws_obj)
		end
		error(op)
	end
	if op == "close" then
		pcall(write_frame, ws_obj, "close", close_payload(a))
		_close_websocket(ws_obj)
		return false, b or "", a
	end
	return a, op
end

function M.write(id, data, fmt, masking_key)
	local ws_obj = assert(ws_pool[id], "websocket is closed")
	fmt = fmt or "text"
	assert(fmt == "text" or fmt == "binary")
	write_frame(ws_obj, fmt, data, masking_key)
end

function M.ping(id, data)
	local ws_obj = assert(ws_pool[id], "websocket is closed")
	write_frame(ws_obj, "ping", data)
end

function M.addrinfo(id)
	local ws_obj = assert(ws_pool[id], "websocket is closed")
	return ws_obj.addr
end

function M.real_ip(id)
	local ws_obj = assert(ws_pool[id], "websocket is closed")
	return ws_obj.real_ip
end

function M.close(id, code, reason)
	local ws_obj = ws_pool[id]
	if not ws_obj then
		return
	end
	local ok, err = pcall(write_frame, ws_obj, "close", close_payload(code, reason))
	_close_websocket(ws_obj)
	if not ok and err ~= socket_error then
		skynet.error(tostring(err))
	end
end

M.is_close = _isws_closed

return M
