-- snax.msgserver: the message gate paired with snax.loginserver, wire-compatible with
-- upstream's clients. Built on snax.gateserver (2-byte big-endian framing).
--
-- Handshake (the first packet of a connection):
--   C: base64(uid) "@" base64(server) "#" base64(subid) ":" index ":" base64(hmac)
--      hmac = hmac_hash(secret, "<username>:<index>"), index > the last one used
--   S: "200 OK" | "404 User Not Found" | "403 Index Expired" | "401 Unauthorized" |
--      "400 Bad Request" (anything but 200 closes the connection)
-- Requests: content .. session (4 bytes, big-endian).
-- Responses: content .. ok (1 byte: 1 ok, 0 the handler raised) .. session.
-- A request repeating a session already answered (after a reconnect with a newer
-- index) gets the cached answer again; the last `expired_number` answers are kept.
--
-- server.userid(username) -> uid, subid, server; server.username(uid, subid, server);
-- server.login(username, secret); server.logout(username); server.ip(username);
-- server.start(conf): conf.login_handler(uid, secret) -> subid, logout_handler,
-- kick_handler (the "lua" commands login/logout/kick), request_handler(username, msg)
-- -> reply, register_handler(servername), disconnect_handler(username),
-- expired_number (128).
local skynet = require "skynet"
local gateserver = require "snax.gateserver"
local netpack = require "skynet.netpack"
local crypt = require "skynet.crypt"
local socketdriver = require "skynet.socketdriver"

local b64encode, b64decode = crypt.base64encode, crypt.base64decode

local server = {}

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
}

local users = {}	-- username -> { secret, version, index, username, response, fd, ip }
local pending_handshake = {}	-- fd -> peer address, until its first packet
local by_fd = {}	-- fd -> user, once the handshake succeeded

function server.userid(username)
	local uid, servername, subid = username:match "([^@]*)@([^#]*)#(.*)"
	return b64decode(uid), b64decode(subid), b64decode(servername)
end

function server.username(uid, subid, servername)
	return string.format("%s@%s#%s", b64encode(uid), b64encode(servername), b64encode(tostring(subid)))
end

function server.login(username, secret)
	assert(users[username] == nil, "msgserver: user already online")
	users[username] = {
		secret = secret,
		version = 0,
		index = 0,
		username = username,
		response = {},
	}
end

function server.logout(username)
	local u = users[username]
	users[username] = nil
	local fd = u and u.fd
	if fd and by_fd[fd] then
		by_fd[fd] = nil
		gateserver.closeclient(fd)
	end
end

function server.ip(username)
	local u = users[username]
	return u and u.fd and u.ip or nil
end

function server.start(conf)
	local keep = conf.expired_number or 128
	local request_handler = assert(conf.request_handler, "msgserver: request_handler required")
	local commands = {
		login = assert(conf.login_handler, "msgserver: login_handler required"),
		logout = assert(conf.logout_handler, "msgserver: logout_handler required"),
		kick = assert(conf.kick_handler, "msgserver: kick_handler required"),
	}
	local handler = {}

	function handler.command(cmd, _, ...)
		local f = assert(commands[cmd], "msgserver: unknown command")
		return f(...)
	end

	function handler.open(_, gateconf)
		return conf.register_handler(assert(gateconf.servername, "msgserver: servername required"))
	end

	function handler.connect(fd, addr)
		pending_handshake[fd] = addr
		gateserver.openclient(fd)
	end

	function handler.disconnect(fd)
		pending_handshake[fd] = nil
		local u = by_fd[fd]
		if u then
			if conf.disconnect_handler then
				conf.disconnect_handler(u.username)
			end
			if by_fd[fd] then -- the handler may have logged the user out
				u.fd = nil
				by_fd[fd] = nil
				gateserver.closeclient(fd)
			end
		end
	end
	handler.error = handler.disconnect

	-- nil when accepted, else the refusal line (runs without yielding)
	local function check_handshake(fd, text, addr)
		local username, index, hmac = text:match "([^:]*):([^:]*):([^:]*)"
		local u = users[username]
		if not u then
			return "404 User Not Found"
		end
		local idx = assert(tonumber(index), "bad index")
		if idx <= u.version then
			return "403 Index Expired"
		end
		if crypt.hmac_hash(u.secret, username .. ":" .. index) ~= b64decode(hmac) then
			return "401 Unauthorized"
		end
		u.version = idx
		u.fd = fd
		u.ip = addr
		by_fd[fd] = u
	end

	local function handshake(fd, addr, msg, sz)
		local ok, refusal = pcall(check_handshake, fd, netpack.tostring(msg, sz), addr)
		if not ok then
			skynet.error(refusal)
			refusal = "400 Bad Request"
		end
		socketdriver.send(fd, netpack.pack(refusal or "200 OK"))
		if refusal then
			gateserver.closeclient(fd)
		end
	end

	-- Forget answers older than `keep` requests once the counter reaches 2 * keep,
	-- renumbering the rest so the counter stays small.
	local function trim(u)
		if u.index < keep * 2 then
			return
		end
		local top = 0
		for session, r in pairs(u.response) do
			if r.fd == nil then
				if r.index < keep then
					u.response[session] = nil
				else
					r.index = r.index - keep
					top = math.max(top, r.index)
				end
			end
		end
		u.index = top + 1
	end

	local function serve(fd, text)
		local u = assert(by_fd[fd], "invalid fd")
		local session = string.unpack(">I4", text, -4)
		local body = text:sub(1, -5)
		local r = u.response[session]
		if r and r.version == u.version then
			-- the same session again on this login: a new request, unless the old
			-- one is still running (then it is a conflict)
			u.response[session] = nil
			if r.packet == nil then
				local err = string.format("Conflict session %s", crypt.hexencode(session))
				skynet.error(err)
				error(err)
			end
			r = nil
		end
		if r then
			-- a request of an earlier login resent after a reconnect: answer again
			r.fd, r.version, r.index = fd, u.version, u.index
			if r.packet == nil then
				return -- still running; its answer goes to the new fd
			end
		else
			r = { fd = fd }
			u.response[session] = r
			local ok, reply = pcall(request_handler, u.username, body)
			-- the handler may have yielded: the connection can be gone by now
			if ok then
				reply = (reply or "") .. string.pack(">BI4", 1, session)
			else
				skynet.error(reply)
				reply = string.pack(">BI4", 0, session)
			end
			r.packet = string.pack(">s2", reply)
			r.version, r.index = u.version, u.index
		end
		u.index = u.index + 1
		if by_fd[r.fd] then
			socketdriver.send(r.fd, r.packet)
		end
		r.fd = nil
		trim(u)
	end

	function handler.message(fd, msg, sz)
		local addr = pending_handshake[fd]
		if addr then
			pending_handshake[fd] = nil
			return handshake(fd, addr, msg, sz)
		end
		local text = netpack.tostring(msg, sz)
		local ok, err = pcall(serve, fd, text)
		if not ok then
			skynet.error(string.format("Invalid package %s : %s", err, text))
			if by_fd[fd] then
				gateserver.closeclient(fd)
			end
		end
	end

	return gateserver.start(handler)
end

return server
