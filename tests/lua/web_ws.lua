local skynet = require "skynet"
local socket = require "skynet.socket"
local websocket = require "http.websocket"

local protocol = skynet.getenv "web_ws_protocol" or "ws"
local handle = {}
function handle.handshake(id, header, url)
	skynet.error("ws handshake " .. id .. " " .. url)
end
function handle.message(id, msg, op)
	if msg == "close-me" then
		websocket.close(id, 4000, "bye")
		return
	end
	websocket.write(id, op .. ":" .. msg, op == "binary" and "binary" or "text")
end
function handle.ping(id, data) skynet.error("ws ping " .. id .. " " .. tostring(data)) end
function handle.close(id, code, reason) skynet.error("ws close " .. id .. " " .. tostring(code) .. " " .. tostring(reason)) end
function handle.error(id) skynet.error("ws error " .. id) end

skynet.start(function()
	local id, addr, port = socket.listen("127.0.0.1", 0)
	socket.start(id, function(fd, addr)
		skynet.fork(function()
			local ok, err = websocket.accept(fd, handle, protocol, addr, { max_message = 100000, max_frame = 70000, handshake_timeout = 200 })
			if not ok then skynet.error("accept failed: " .. tostring(err)) end
		end)
	end)
	skynet.error("PORT " .. port)
	-- our own client against our server
	skynet.fork(function()
		local ws = websocket.connect(protocol .. "://127.0.0.1:" .. port .. "/self")
		websocket.write(ws, "hello")
		local m, op = websocket.read(ws)
		skynet.error("client got " .. tostring(m) .. " " .. tostring(op))
		websocket.write(ws, string.rep("x", 70000), "binary")
		m, op = websocket.read(ws)
		skynet.error("client got big " .. #m .. " " .. op)
		websocket.ping(ws)
		websocket.write(ws, "close-me")
		local m2, reason, code = websocket.read(ws)
		skynet.error("client closed " .. tostring(m2) .. " " .. tostring(reason) .. " " .. tostring(code))
	end)
end)
