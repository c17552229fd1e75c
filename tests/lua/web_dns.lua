-- skynet.dns and httpc.dns against a real DNS server (dnsmasq) on web_dns_port,
-- which knows web.test (127.0.0.1, ::1) and other.test; web_peer_port is an HTTP
-- server on 127.0.0.1.
local skynet = require "skynet"
local dns = require "skynet.dns"
local httpc = require "http.httpc"

local function show(name, ...)
	local t = table.pack(...)
	for i = 1, t.n do
		local v = t[i]
		t[i] = type(v) == "table" and table.concat(v, ",") or tostring(v)
	end
	skynet.error("DNS " .. name .. " " .. table.concat(t, " ", 1, t.n))
end

skynet.start(function()
	local port = tonumber(skynet.getenv "web_dns_port")
	dns.server("127.0.0.1", port)
	show("a", dns.resolve "web.test")
	show("aaaa", dns.resolve("WEB.test", true))
	show("literal", dns.resolve "10.1.2.3")
	show("family", dns.resolve("10.1.2.3", true))
	show("illegal", dns.resolve "bad..name")
	show("missing", pcall(dns.resolve, "nothere.test"))
	-- concurrent questions for one name
	local done = 0
	for _ = 1, 5 do
		skynet.fork(function()
			local ip = dns.resolve "other.test"
			if ip == "127.0.0.1" then
				done = done + 1
			end
		end)
	end
	skynet.sleep(50)
	show("concurrent", done)
	httpc.dns("127.0.0.1", port)
	show("httpc", httpc.get("http://web.test:" .. skynet.getenv "web_peer_port", "/len"))
	-- a server that does not answer: the query times out
	dns.flush()
	dns.timeout = 100
	dns.server("127.0.0.1", tonumber(skynet.getenv "web_dead_port"))
	local t0 = skynet.now()
	show("dead", pcall(dns.resolve, "web.test"))
	show("elapsed", skynet.now() - t0)
	skynet.error("DNS DONE")
end)
