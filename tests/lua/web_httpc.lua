-- httpc against a real HTTP server; config web_peer = "http://127.0.0.1:port" (or https://)
local skynet = require "skynet"
local httpc = require "http.httpc"

local peer = skynet.getenv "web_peer"

local function try(name, f, ...)
	local ok, a, b = pcall(f, ...)
	skynet.error(string.format("RESULT %s %s %s %s", name, tostring(ok), tostring(a), tostring(b)))
end

skynet.start(function()
	local h = {}
	try("len", httpc.get, peer, "/len", h)
	skynet.error("HEADER len content-type " .. tostring(h["content-type"]))
	local h2 = {}
	try("chunked", httpc.get, peer, "/chunked", h2)
	skynet.error("HEADER chunked trailer " .. tostring(h2["x-trailer"]))
	try("close", httpc.get, peer, "/close")
	try("post", httpc.post, peer, "/echo", { k = "v w" })
	try("stream", function()
		local stream = httpc.request_stream("GET", peer, "/chunked")
		local pieces = {}
		for piece in stream do
			pieces[#pieces + 1] = piece
		end
		return stream.status, table.concat(pieces, "|") .. " trailer=" .. tostring(stream.header["x-trailer"])
	end)
	try("stream_len", function()
		local stream <close> = httpc.request_stream("GET", peer, "/big")
		local n = 0
		for piece in stream do
			n = n + #piece
		end
		return stream.status, n
	end)
	try("missing", httpc.get, peer, "/nothing")
	try("big", function()
		local code, body = httpc.get(peer, "/big")
		return code, #body
	end)
	httpc.bodylimit = 1000
	try("limited", httpc.get, peer, "/big")
	httpc.bodylimit = nil
	httpc.timeout = 100
	local t0 = skynet.now()
	try("slow", httpc.get, peer, "/slow")
	skynet.error("ELAPSED " .. (skynet.now() - t0))
	httpc.timeout = nil
	try("refused", httpc.get, "http://127.0.0.1:1", "/")
	-- https to a plain HTTP server: every failed handshake closes its socket
	local wrong = skynet.getenv "web_wrong_peer"
	if wrong then
		local stat = assert(io.open("/proc/self/stat")) -- opened by this process
		local pid = stat:read "n"
		stat:close()
		local function fds()
			local p = io.popen("ls /proc/" .. pid .. "/fd | wc -l")
			local n = tonumber(p:read "a")
			p:close()
			return n
		end
		local before = fds()
		local failed = 0
		for _ = 1, 50 do
			if not pcall(httpc.get, wrong, "/len") then
				failed = failed + 1
			end
		end
		skynet.sleep(10)
		collectgarbage()
		skynet.error(string.format("WRONG failed=%d fds_before=%d fds_after=%d live=%d", failed, before, fds(), require("ltls.c").live()))
	end
	skynet.error("HTTPC DONE")
end)
