-- .launcher (services.md §2): launches services and tracks them.
local skynet = require "skynet"
local core = require "skynet.core"
require "skynet.manager"

local services = {}		-- addr -> "<module> <param>"
local pending = {}		-- addr -> response closure of the LAUNCH request
local launch_session = {}	-- addr -> session of that request

local NORET = {}
local command = {}

local function to_handle(addr)
	if type(addr) == "string" and addr:sub(1, 1) == ":" then
		return tonumber(addr:sub(2), 16)
	end
	return addr
end

local function finish_launch(addr, ok, ...)
	local resp = pending[addr]
	if resp then
		pending[addr] = nil
		launch_session[addr] = nil
		resp(ok, ...)
	end
end

function command.LIST()
	local list = {}
	for addr, desc in pairs(services) do
		list[skynet.address(addr)] = desc
	end
	return list
end

-- Ask every service the same debug question concurrently; fmt(result, addr)
local function ask_all(ti, fmt, ...)
	local list = {}
	local unanswered = {}
	local req = skynet.request()
	for addr in pairs(services) do
		local r = { addr, "debug", ... }
		req:add(r)
		unanswered[r] = addr
	end
	for r, resp in req:select(ti) do
		local addr = r[1]
		if resp then
			list[skynet.address(addr)] = fmt(resp[1], addr)
		else
			list[skynet.address(addr)] = fmt("ERROR", addr)
		end
		unanswered[r] = nil
	end
	for _, addr in pairs(unanswered) do
		list[skynet.address(addr)] = fmt("TIMEOUT", addr)
	end
	return list
end

function command.STAT(_, ti)
	return ask_all(ti, function(stat) return stat end, "STAT")
end

local function format_mem(kb, addr)
	local desc = services[addr]
	if type(kb) == "string" then
		return string.format("%s (%s)", kb, desc)
	end
	return string.format("%.2f Kb (%s)", kb, desc)
end

function command.MEM(_, ti)
	return ask_all(ti, format_mem, "MEM")
end

function command.GC(source, ti)
	for addr in pairs(services) do
		skynet.send(addr, "debug", "GC")
	end
	return command.MEM(source, ti)
end

function command.KILL(_, addr)
	addr = to_handle(addr)
	skynet.kill(addr)
	local ret = { [skynet.address(addr)] = tostring(services[addr]) }
	services[addr] = nil
	return ret
end

function command.REMOVE(_, addr, kill)
	services[addr] = nil
	-- a service leaving during its start: newservice returns nil (exit) or fails (kill)
	finish_launch(addr, not kill)
	return NORET
end

local function launch(service, ...)
	local param = table.concat({ ... }, " ")
	local session = skynet.context()
	local resp = skynet.response()
	local addr = skynet.launch(service, param)
	if not addr then
		resp(false)
		return
	end
	services[addr] = service .. " " .. param
	pending[addr] = resp
	launch_session[addr] = session
	return addr
end

function command.LAUNCH(_, service, ...)
	launch(service, ...)
	return NORET
end

function command.LOGLAUNCH(_, service, ...)
	local addr = launch(service, ...)
	if addr then
		core.command("LOGON", skynet.address(addr))
	end
	return NORET
end

function command.ERROR(addr)
	-- the new service failed to start
	finish_launch(addr, false)
	services[addr] = nil
	return NORET
end

function command.LAUNCHOK(addr)
	finish_launch(addr, true, addr)
	return NORET
end

function command.QUERY(_, session)
	for addr, s in pairs(launch_session) do
		if s == session then
			return addr
		end
	end
end

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	unpack = skynet.tostring,
	dispatch = function(_, source, cmd)
		if cmd == nil or cmd == "" then
			command.LAUNCHOK(source)
		elseif cmd == "ERROR" then
			command.ERROR(source)
		else
			error("Invalid text command " .. cmd)
		end
	end,
}

skynet.dispatch("lua", function(_, source, cmd, ...)
	local f = command[string.upper(cmd)]
	if not f then
		skynet.ret(skynet.pack { "Unknown command" })
		return
	end
	local ret = f(source, ...)
	if ret ~= NORET then
		skynet.ret(skynet.pack(ret))
	end
end)

skynet.start(function() end)
