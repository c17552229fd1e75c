-- .service / SERVICE (services.md §3): unique services by name.
local skynet = require "skynet"
require "skynet.manager"

-- key -> address (number) | error text (string) | pending launch (table):
--   { launcher = { co, session, source } | nil, waiters = { { co, session, source } ... } }
local registry = {}
local cmd = {}

local function settled(key)
	local v = registry[key]
	if type(v) == "number" then
		return v
	elseif type(v) == "string" then
		error(v)
	end
	error("Service " .. key .. " is not available")
end

local function waiter()
	local session, source = skynet.context()
	return { co = coroutine.running(), session = session, source = source }
end

local function wait_for(key, entry)
	local w = waiter()
	entry.waiters[#entry.waiters + 1] = w
	skynet.wait(w.co)
	return settled(key)
end

-- Launch `key` once with launch_fn(...); concurrent requests wait for the first.
local function unique(key, launch_fn, ...)
	local v = registry[key]
	if v == nil then
		v = { waiters = {} }
		registry[key] = v
	elseif type(v) ~= "table" then
		return settled(key)
	end
	if v.launcher or not launch_fn then
		return wait_for(key, v)
	end
	v.launcher = waiter()
	local ok, addr = pcall(launch_fn, ...)
	if ok then
		registry[key] = addr	-- nil when the service exited during start
	else
		registry[key] = tostring(addr)
	end
	for _, w in ipairs(v.waiters) do
		skynet.wakeup(w.co)
	end
	if ok then
		return addr
	end
	error(tostring(addr))
end

local function launch_snax(name, ...)
	local snax = require "skynet.snax"
	return snax.rawnewservice(name, ...)
end

local function unique_key(name, ...)
	if name == "snaxd" then
		return "snaxd." .. tostring((...))
	end
	return name
end

function cmd.LAUNCH(name, ...)
	local key = unique_key(name, ...)
	if name == "snaxd" then
		return unique(key, launch_snax, ...)
	end
	local realname = name:sub(1, 1) == "@" and name:sub(2) or name
	return unique(key, skynet.newservice, realname, ...)
end

function cmd.QUERY(name, ...)
	return unique(unique_key(name, ...))
end

local function describe_pending(v)
	local lines = {}
	local l = v.launcher
	if l then
		local session = skynet.task(l.co)
		local addr = session and skynet.call(".launcher", "lua", "QUERY", session)
		if addr then
			lines[#lines + 1] = "Init as " .. skynet.address(addr)
			lines[#lines + 1] = tostring(skynet.call(addr, "debug", "TASK", "init"))
			lines[#lines + 1] = "Launching from " .. skynet.address(l.source)
			lines[#lines + 1] = tostring(skynet.call(l.source, "debug", "TASK", l.session))
		end
	end
	if #v.waiters > 0 then
		lines[#lines + 1] = "Querying:"
		for _, w in ipairs(v.waiters) do
			local ok, task = pcall(skynet.call, w.source, "debug", "TASK", w.session)
			lines[#lines + 1] = skynet.address(w.source) .. " " .. tostring(ok and task or "ERROR")
		end
	end
	return table.concat(lines, "\n")
end

local function list_local()
	local result = {}
	for k, v in pairs(registry) do
		if type(v) == "string" then
			result[k] = "Error: " .. v
		elseif type(v) == "table" then
			result[k] = describe_pending(v)
		else
			result[k] = skynet.address(v)
		end
	end
	return result
end

cmd.LIST = list_local

local function register_global()
	local nodes = {}	-- harbor id -> remote service_mgr

	function cmd.GLAUNCH(name, ...)
		return cmd.LAUNCH("@" .. name, ...)
	end

	function cmd.GQUERY(name, ...)
		return cmd.QUERY("@" .. name, ...)
	end

	function cmd.REPORT(addr)
		nodes[skynet.harbor(addr)] = addr
	end

	function cmd.LIST()
		local result = list_local()
		for id, addr in pairs(nodes) do
			local ok, list = pcall(skynet.call, addr, "lua", "LIST")
			if ok and type(list) == "table" then
				for k, v in pairs(list) do
					result[k .. "@" .. id] = v
				end
			end
		end
		return result
	end
end

local function register_local()
	local function forward(name, command, ...)
		local key = "@" .. name
		local v = registry[key]
		if type(v) == "number" then
			return v
		end
		local addr = skynet.call("SERVICE", "lua", command, name, ...)
		if addr then
			registry[key] = addr
		end
		return addr
	end

	function cmd.GLAUNCH(name, ...)
		return forward(name, "GLAUNCH", ...)
	end

	function cmd.GQUERY(name, ...)
		return forward(name, "GQUERY", ...)
	end

	skynet.send("SERVICE", "lua", "REPORT", skynet.self())
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, command, ...)
		local f = cmd[command]
		if not f then
			skynet.ret(skynet.pack(nil, "Invalid command " .. tostring(command)))
			return
		end
		local ok, r = pcall(f, ...)
		if ok then
			skynet.ret(skynet.pack(r))
		else
			skynet.ret(skynet.pack(nil, r))
		end
	end)
	local handle = skynet.localname ".service"
	if handle then
		skynet.error(".service is already register by ", skynet.address(handle))
		skynet.exit()
		return
	end
	skynet.register ".service"
	if skynet.getenv "standalone" then
		skynet.register "SERVICE"
		register_global()
	else
		register_local()
	end
end)
