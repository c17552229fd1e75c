-- httpd requests/s case: a keep-alive HTTP server built only on skynet's public Lua
-- API (skynet.socket, http.httpd, http.sockethelper), so the same file runs on
-- upstream skynet and on this project. Config: httpd_port, httpd_agents (default 4).
-- The main service accepts and hands each connection to an agent, round robin;
-- agents answer every request with a 13-byte body until the client leaves.
-- With httpd_cert/httpd_key in the config it serves https (http.tlshelper).
-- Driven by bench/httpd.sh (wrk, 64 connections).
local skynet = require "skynet"
local socket = require "skynet.socket"

local mode = ...

if mode == "agent" then
	local httpd = require "http.httpd"
	local sockethelper = require "http.sockethelper"

	-- https when the config names a certificate (httpd_cert, httpd_key)
	local cert, key = skynet.getenv "httpd_cert", skynet.getenv "httpd_key"
	local tls, sslctx

	local function serve(id)
		socket.start(id)
		local read = sockethelper.readfunc(id)
		local write = sockethelper.writefunc(id)
		local tls_ctx
		if cert then
			if not tls then
				tls = require "http.tlshelper"
				sslctx = tls.newctx()
				sslctx:set_cert(cert, key)
			end
			tls_ctx = tls.newtls("server", sslctx)
			if not pcall(tls.init_responsefunc(id, tls_ctx)) then
				socket.close(id)
				tls_ctx:close()
				return
			end
			read = tls.readfunc(id, tls_ctx)
			write = tls.writefunc(id, tls_ctx)
		end
		while true do
			local code, url = httpd.read_request(read, 8192)
			if code ~= 200 then
				break
			end
			if not httpd.write_response(write, 200, "Hello, world!") then
				break
			end
		end
		socket.close(id)
		if tls_ctx then
			tls_ctx:close()
		end
	end

	skynet.start(function()
		skynet.dispatch("lua", function(_, _, id)
			skynet.fork(serve, id)
		end)
	end)
else
	skynet.start(function()
		local port = tonumber(skynet.getenv "httpd_port") or 8001
		local n = tonumber(skynet.getenv "httpd_agents") or 4
		local agents = {}
		for i = 1, n do
			agents[i] = skynet.newservice(SERVICE_NAME, "agent")
		end
		local next_agent = 1
		local id = socket.listen("127.0.0.1", port)
		socket.start(id, function(fd)
			skynet.send(agents[next_agent], "lua", fd)
			next_agent = next_agent % n + 1
		end)
		skynet.error("BENCH_HTTPD listening " .. port)
	end)
end
