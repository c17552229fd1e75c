-- snax.loginserver: a login service in the style of upstream's, wire-compatible with
-- its clients. `require "snax.loginserver"(conf)` starts the calling service as the
-- master (registered as "." .. (conf.name or "login")) plus conf.instance (8) slaves
-- running the same file; a connection is authenticated by a slave, then the master
-- runs conf.login_handler.
--
-- conf: host, port, instance, name, multilogin, auth_handler(token) -> server, uid
-- (in the slaves), login_handler(server, uid, secret) -> subid, command_handler(cmd,
-- ...) (the master's "lua" requests).
--
-- Line protocol (each line ends with "\n"):
--   S: base64(challenge: 8 random bytes)
--   C: base64(client key: 8 bytes)
--   S: base64(dhexchange(server key))        secret = dhsecret(client key, server key)
--   C: base64(hmac64(challenge, secret))
--   C: base64(desencode(secret, token))
--   S: "200 " .. base64(subid) | "401 Unauthorized" (auth_handler raised) |
--      "403 Forbidden" (login_handler raised) | "406 Not Acceptable" (already in login)
-- A slave reads at most 8 KiB of unanswered input per connection.
local skynet = require "skynet"
require "skynet.manager"
local socket = require "skynet.socket"
local crypt = require "skynet.crypt"

local CLOSED = {} -- raised when the peer is gone: no reply line, no error log

local function must(step, v, fd)
	if v then
		return v
	end
	skynet.error(string.format("%s failed: socket (fd = %d) closed", step, fd))
	error(CLOSED)
end

local function send_line(step, fd, text)
	must(step, socket.write(fd, text .. "\n"), fd)
end

local function read_line(step, fd)
	return must(step, socket.readline(fd), fd)
end

-- The slave side: the handshake, then auth_handler(token).
local function serve_slave(auth_handler)
	local function handshake(fd)
		socket.limit(fd, 8192)
		local challenge = crypt.randomkey()
		send_line("auth", fd, crypt.base64encode(challenge))
		local clientkey = crypt.base64decode(read_line("auth", fd))
		if #clientkey ~= 8 then
			error "Invalid client key"
		end
		local serverkey = crypt.randomkey()
		send_line("auth", fd, crypt.base64encode(crypt.dhexchange(serverkey)))
		local secret = crypt.dhsecret(clientkey, serverkey)
		local proof = crypt.base64decode(read_line("auth", fd))
		if proof ~= crypt.hmac64(challenge, secret) then
			error "challenge failed"
		end
		local token = crypt.desdecode(secret, crypt.base64decode(read_line("auth", fd)))
		local ok, server, uid = pcall(auth_handler, token)
		return ok, server, uid, secret
	end

	-- (pcall results of handshake) -> the packed reply: ok, server, uid, secret;
	-- false, err (auth refused or bad handshake); nil, "socket error"
	local function reply(ok, ...)
		if ok then
			return skynet.pack(...)
		end
		local err = ...
		if err == CLOSED then
			return skynet.pack(nil, "socket error")
		end
		return skynet.pack(false, err)
	end

	local function authenticate(fd, addr)
		skynet.error(string.format("connect from %s (fd = %d)", addr, fd))
		socket.start(fd)
		local msg, sz = reply(pcall(handshake, fd))
		socket.abandon(fd) -- the master writes the answer
		return msg, sz
	end

	skynet.dispatch("lua", function(_, _, fd, addr)
		local ok, msg, sz = pcall(authenticate, fd, addr)
		if ok then
			skynet.ret(msg, sz)
		else
			skynet.ret(skynet.pack(false, msg))
		end
	end)
end

-- The master side: accept, pick a slave, then login_handler.
local function serve_master(conf)
	local instances = conf.instance or 8
	assert(instances > 0, "loginserver: instance must be positive")
	local host = conf.host or "0.0.0.0"
	local port = assert(tonumber(conf.port), "loginserver: port required")
	local in_login = {}

	skynet.dispatch("lua", function(_, _, cmd, ...)
		skynet.ret(skynet.pack(conf.command_handler(cmd, ...)))
	end)

	local slaves = {}
	for i = 1, instances do
		slaves[i] = skynet.newservice(SERVICE_NAME)
	end
	local next_slave = 0

	local function login(fd, addr)
		next_slave = next_slave % #slaves + 1
		local ok, server, uid, secret = skynet.call(slaves[next_slave], "lua", fd, addr)
		if not ok then
			if ok == false then
				send_line("response 401", fd, "401 Unauthorized")
			end
			error(server)
		end
		if not conf.multilogin then
			if in_login[uid] then
				send_line("response 406", fd, "406 Not Acceptable")
				error(string.format("User %s is already login", uid))
			end
			in_login[uid] = true
		end
		local done, subid = pcall(conf.login_handler, server, uid, secret)
		in_login[uid] = nil
		if not done then
			send_line("response 403", fd, "403 Forbidden")
			error(subid)
		end
		send_line("response 200", fd, "200 " .. crypt.base64encode(subid or ""))
	end

	skynet.error(string.format("login server listen at : %s %d", host, port))
	local listener = socket.listen(host, port)
	socket.start(listener, function(fd, addr)
		local ok, err = pcall(login, fd, addr)
		if not ok and err ~= CLOSED then
			skynet.error(string.format("invalid client (fd = %d) error = %s", fd, tostring(err)))
		end
		-- The master never started fd (the slave did, then abandoned it): close it by
		-- id, after the answer line is written. (Upstream's socket.close here is a
		-- no-op, leaving the fd until the client hangs up.)
		socket.close_fd(fd)
	end)
end

return function(conf)
	local name = "." .. (conf.name or "login")
	skynet.start(function()
		if skynet.localname(name) then
			serve_slave(assert(conf.auth_handler, "loginserver: auth_handler required"))
		else
			assert(conf.login_handler, "loginserver: login_handler required")
			assert(conf.command_handler, "loginserver: command_handler required")
			skynet.register(name)
			serve_master(conf)
		end
	end)
end
