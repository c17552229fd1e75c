-- sproto request/response bookkeeping for the test client (sample.md 8.2).
local socket = require "simplesocket"
local sproto = require "sproto"

local message = {}
local var = {
	session_id = 0,
	session = {},
	object = {},
}

local function readfile(name)
	local f = assert(io.open(name, "rb"))
	local text = f:read "a"
	f:close()
	return text
end

-- base: path prefix of the schema pair, <base>.s2c.sproto / <base>.c2s.sproto
function message.register(base)
	var.host = sproto.parse(readfile(base .. ".s2c.sproto")):host "package"
	var.request = var.host:attach(sproto.parse(readfile(base .. ".c2s.sproto")))
end

function message.peer(addr, port)
	var.addr = addr
	var.port = port
end

function message.connect()
	socket.connect(var.addr, var.port)
end

function message.bind(obj, handler)
	var.object[obj] = handler
end

function message.request(name, args)
	var.session_id = var.session_id + 1
	var.session[var.session_id] = { name = name, req = args }
	socket.write(var.request(name, args, var.session_id))
	return var.session_id
end

local function on_push(name, args)
	for obj, handler in pairs(var.object) do
		local f = handler[name]
		if f then
			local ok, err = pcall(f, obj, args)
			if not ok then
				print(string.format("push %s for [%s] error : %s", name, tostring(obj), err))
			end
		end
	end
end

local function on_response(session_id, resp, ud)
	local session = var.session[session_id]
	var.session[session_id] = nil
	for obj, handler in pairs(var.object) do
		if ud then
			local f = handler.__error
			if f then
				local ok, err = pcall(f, obj, session.name, ud, session.req, session_id)
				if not ok then
					print(string.format("session %s[%d] error(%s) for [%s] error : %s",
						session.name, session_id, ud, tostring(obj), err))
				end
			end
		else
			local f = handler[session.name]
			if f then
				local ok, err = pcall(f, obj, session.req, resp, session_id)
				if not ok then
					print(string.format("session %s[%d] for [%s] error : %s",
						session.name, session_id, tostring(obj), err))
				end
			end
		end
	end
end

-- handle one incoming packet; false when none arrived within ti seconds
function message.update(ti)
	local msg = socket.read(ti)
	if not msg then
		return false
	end
	local t, a, b, c = var.host:dispatch(msg)
	if t == "REQUEST" then
		on_push(a, b) -- name, args
	else
		on_response(a, b, c) -- session, response, ud
	end
	return true
end

return message
