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
	skynet.error("HTTPC DONE")
end)
