-- snax.loginserver for t_login: tokens are "<user>@<server>:<password>" (base64
-- parts), any password but "bad" is accepted; login asks the msg gate for a subid.
local login = require "snax.loginserver"
local crypt = require "skynet.crypt"
local skynet = require "skynet"

local gates = {}

local conf = {
	host = "127.0.0.1",
	port = tonumber(skynet.getenv "login_port"),
	instance = 2,
	multilogin = false,
}

function conf.auth_handler(token)
	local user, server, password = token:match "([^@]+)@([^:]+):(.+)"
	user, server, password = crypt.base64decode(user), crypt.base64decode(server),
		crypt.base64decode(password)
	assert(password ~= "bad", "Invalid password")
	return server, user
end

function conf.login_handler(server, uid, secret)
	local gate = assert(gates[server], "Unknown server")
	return skynet.call(gate, "lua", "login", uid, secret)
end

function conf.command_handler(cmd, server, address)
	assert(cmd == "register_gate")
	gates[server] = address
end

login(conf)
