-- The sample's command-line client (sample.md 8.3).
-- usage: simpleclient.lua ROOT [IP [PORT]]   (IP default 127.0.0.1, PORT 5678)
local root, ip, port = ...
root = root or "."
package.path = root .. "/client/?.lua;" .. root .. "/lualib/?.lua;" .. root .. "/skynet/lualib/?.lua"
package.cpath = root .. "/skynet/luaclib/?.so;" .. root .. "/lsocket/?.so"

io.stdout:setvbuf "line"

local message = require "simplemessage"

message.register(root .. "/proto/proto")
message.peer(ip or "127.0.0.1", tonumber(port) or 5678)
message.connect()

local event = {}
message.bind({}, event)

function event:__error(what, err, req, session)
	print("error", what, err)
end

function event:ping()
	print("ping")
end

function event:signin(req, resp)
	print("signin", req.userid, resp.ok)
	if resp.ok then
		message.request "ping" -- before login: the agent answers it with an error
		message.request "login"
	else
		message.request("signup", { userid = "alice" })
	end
end

function event:signup(req, resp)
	print("signup", resp.ok)
	if resp.ok then
		message.request("signin", { userid = req.userid })
	else
		error "Can't signup"
	end
end

function event:login(_, resp)
	print("login", resp.ok)
	if resp.ok then
		message.request "ping"
	else
		error "Can't login"
	end
end

function event:push(args)
	print("server push", args.text)
end

message.request("signin", { userid = "alice" })

while true do
	message.update()
end
