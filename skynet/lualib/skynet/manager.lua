-- skynet.manager: service management extensions of the skynet table (core.md §10).
local skynet = require "skynet"
local c = require "skynet.core"

local function number_address(addr)
	if type(addr) == "number" then
		return addr
	end
	if type(addr) == "string" and addr:sub(1, 1) == ":" then
		return tonumber(addr:sub(2), 16)
	end
end

function skynet.launch(...)
	local addr = c.command("LAUNCH", table.concat({ ... }, " "))
	if addr then
		return tonumber(addr:sub(2), 16)
	end
end

function skynet.kill(name)
	local addr = number_address(name)
	if addr then
		skynet.send(".launcher", "lua", "REMOVE", addr, true)
		name = skynet.address(addr)
	end
	c.command("KILL", name)
end

function skynet.abort()
	c.command "ABORT"
end

local function globalname(name, handle)
	local first = name:sub(1, 1)
	if first == "." then
		return false
	end
	assert(first ~= ":", "Invalid global name " .. name)
	assert(#name < 16, "Global name is too long")
	assert(tonumber(name) == nil, "Global name can't be a number")
	skynet.send(".cslave", "lua", "REGISTER", name, handle)
	return true
end

function skynet.register(name)
	if not globalname(name, skynet.self()) then
		c.command("REG", name)
	end
end

function skynet.name(name, handle)
	if not globalname(name, handle) then
		c.command("NAME", name .. " " .. skynet.address(handle))
	end
end

local dispatch_message = skynet.dispatch_message

function skynet.forward_type(map, start_func)
	c.callback(function(ptype, msg, sz, ...)
		local prototype = map[ptype]
		if prototype then
			dispatch_message(prototype, msg, sz, ...)
		else
			local ok, err = pcall(dispatch_message, ptype, msg, sz, ...)
			c.trash(msg, sz)
			if not ok then
				error(err, 0)
			end
		end
	end, true)
	skynet.timeout(0, function()
		skynet.init_service(start_func)
	end)
end

function skynet.filter(f, start_func)
	c.callback(function(...)
		dispatch_message(f(...))
	end)
	skynet.timeout(0, function()
		skynet.init_service(start_func)
	end)
end

function skynet.monitor(service, query)
	local monitor
	if query then
		monitor = skynet.queryservice(true, service)
	else
		monitor = skynet.uniqueservice(true, service)
	end
	assert(monitor, "Monitor launch failed")
	c.command("MONITOR", string.format(":%08x", monitor))
	return monitor
end

return skynet
