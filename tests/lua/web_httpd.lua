local skynet = require "skynet"
local socket = require "skynet.socket"
local httpd = require "http.httpd"
local sockethelper = require "http.sockethelper"
local urllib = require "http.url"

-- https when the config names a certificate (web_cert, web_key)
local cert, key = skynet.getenv "web_cert", skynet.getenv "web_key"
local tls, sslctx
if cert then
	tls = require "http.tlshelper"
	sslctx = tls.newctx()
	sslctx:set_cert(cert, key)
end

local function serve(id, addr)
	socket.start(id)
	local read = sockethelper.readfunc(id)
	local write = sockethelper.writefunc(id)
	local tls_ctx
	if tls then
		tls_ctx = tls.newtls("server", sslctx)
		local ok, err = pcall(tls.init_responsefunc(id, tls_ctx))
		if not ok then
			skynet.error("tls handshake failed fd=" .. id .. ": " .. tostring(err))
			socket.close(id)
			tls_ctx:close()
			return
		end
		read = tls.readfunc(id, tls_ctx)
		write = tls.writefunc(id, tls_ctx)
	end
	while true do
		local code, url, method, header, body = httpd.read_request(read, 8192, { timeout = 200, fd = id })
		if not code then
			skynet.error("httpd: " .. tostring(url) .. " fd=" .. id)
			break
		end
		if code ~= 200 then
			httpd.write_response(write, code, nil, { connection = "close" })
			skynet.error("httpd: answered " .. code .. " fd=" .. id)
			break
		end
		local path, query = urllib.parse(url)
		local t = { "method: " .. method, "path: " .. path }
		if query ~= "" then
			local q = urllib.parse_query(query)
			local keys = {}
			for k in pairs(q) do keys[#keys + 1] = k end
			table.sort(keys)
			for _, k in ipairs(keys) do
				local v = q[k]
				t[#t + 1] = "query: " .. k .. "=" .. (type(v) == "table" and table.concat(v, ",") or v)
			end
		end
		t[#t + 1] = "host: " .. tostring(header.host)
		t[#t + 1] = "body: " .. body
		local resp = table.concat(t, "\n")
		local ok
		if path == "/live" then
			-- tls contexts alive in the process (leak check)
			ok = httpd.write_response(write, 200, tostring(require("ltls.c").live()))
		elseif path == "/chunked" then
			local i = 0
			ok = httpd.write_response(write, 200, function()
				i = i + 1
				if i <= 3 then return "piece" .. i .. ";" end
			end)
		else
			ok = httpd.write_response(write, 200, resp, { ["x-served-by"] = "skynet" })
		end
		if not ok then break end
		if (header.connection or ""):lower() == "close" then break end
	end
	socket.close(id)
	if tls_ctx then
		tls_ctx:close()
	end
end

skynet.start(function()
	local id, addr, port = socket.listen("127.0.0.1", 0)
	socket.start(id, function(fd, addr)
		skynet.fork(serve, fd, addr)
	end)
	skynet.error("PORT " .. port)
end)
