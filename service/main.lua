-- The sample's start service (sample.md 3): consoles, protocol schemas, then the
-- hub listening for clients. Optional config keys (used by tests and benches; the
-- sample config leaves them unset): sample_ip / sample_port (default 0.0.0.0:5678)
-- and sample_console (debug console port, default 8000).
local skynet = require "skynet"
local log = require "log"

skynet.start(function()
	log "Server start"
	if not skynet.getenv "daemon" then
		skynet.newservice "console"
	end
	skynet.newservice("debug_console", tonumber(skynet.getenv "sample_console") or 8000)
	local proto = skynet.uniqueservice "protoloader"
	skynet.call(proto, "lua", "load", { "proto.c2s", "proto.s2c" })
	local hub = skynet.uniqueservice "hub"
	skynet.call(hub, "lua", "open", skynet.getenv "sample_ip" or "0.0.0.0",
		tonumber(skynet.getenv "sample_port") or 5678)
	skynet.exit()
end)
