-- First Lua service (services.md §1): starts the system services, then `start`.
local skynet = require "skynet"
require "skynet.manager"

local function launch_or_abort(name)
	local ok, addr = pcall(skynet.newservice, name)
	if not ok or not addr then
		skynet.error("bootstrap: can't launch " .. name)
		skynet.abort()
		return
	end
	return addr
end

skynet.start(function()
	local standalone = skynet.getenv "standalone"

	local launcher = assert(skynet.launch("snlua", "launcher"))
	skynet.name(".launcher", launcher)

	local harbor_id = tonumber(skynet.getenv "harbor" or 0)
	if harbor_id == 0 then
		assert(standalone == nil)
		standalone = true
		skynet.setenv("standalone", "true")
		local slave = launch_or_abort "cdummy"
		if not slave then
			return
		end
		skynet.name(".cslave", slave)
	else
		if standalone and not launch_or_abort "cmaster" then
			return
		end
		local slave = launch_or_abort "cslave"
		if not slave then
			return
		end
		skynet.name(".cslave", slave)
	end

	if standalone then
		local datacenter = skynet.newservice "datacenterd"
		skynet.name("DATACENTER", datacenter)
	end
	skynet.newservice "service_mgr"

	pcall(skynet.newservice, skynet.getenv "start" or "main")
	skynet.exit()
end)
