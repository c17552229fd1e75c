-- starts the debug console on the port given in the config (dconsole_port)
local skynet = require "skynet"
skynet.start(function()
	local port = assert(skynet.getenv "dconsole_port")
	skynet.newservice("debug_console", port)
	skynet.newservice "t_debug_peer"
	skynet.uniqueservice "t_unique_target"
	skynet.error "DCONSOLE READY"
end)
