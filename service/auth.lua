-- Signup/signin for fresh connections (sample.md 4.8). Users live in memory for the
-- life of the process. shakehand(fd) serves the connection until a successful
-- signin and returns the user id.
local service = require "service"
local client = require "client"
local log = require "log"

local auth = {}
local users = {}
local cli = client.handler()

local SUCC = { ok = true }
local FAIL = { ok = false }

function cli:signup(args)
	log("signup userid = %s", args.userid)
	if users[args.userid] then
		return FAIL
	end
	users[args.userid] = true
	return SUCC
end

function cli:signin(args)
	log("signin userid = %s", args.userid)
	if users[args.userid] then
		self.userid = args.userid
		self.exit = true
		return SUCC
	end
	return FAIL
end

function cli:ping()
	log "ping"
end

-- Returns the user id, or nil and why the handshake ended without one. A client
-- that goes away is ordinary traffic, not an error: the hub logs one line for it.
function auth.shakehand(fd)
	local ok, c = pcall(client.dispatch, { fd = fd })
	if ok then
		return c.userid
	end
	if client.disconnected(c) then
		return nil, "disconnect"
	end
	log("shakehand fd=%d: %s", fd, tostring(c))
	return nil, tostring(c)
end

service.init {
	command = auth,
	info = users,
	init = client.init "proto",
}
