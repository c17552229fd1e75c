-- skynet.snax: services written as a file of `accept.*` (one-way) and `response.*`
-- (request/reply) methods plus `init`/`exit`/`hotfix` functions, run by `snaxd`.
--
-- A snax object is { type = name, handle = address, post = ..., req = ... }:
-- `obj.post.m(...)` sends, `obj.req.m(...)` calls, over the "snax" protocol
-- (PTYPE_SNAX) with the method id of snax.interface as the first value.
local skynet = require "skynet"
local load_interface = require "snax.interface"

local snax = {}

-- The snax_interface_g config key names a module whose table is the environment
-- the interface files are read with (upstream's hook for shared globals).
local interface_env = skynet.getenv "snax_interface_g"
interface_env = interface_env and require(interface_env) or { require = function() end }

skynet.register_protocol {
	name = "snax",
	id = skynet.PTYPE_SNAX,
	pack = skynet.pack,
	unpack = skynet.unpack,
}

local interfaces = {}

-- name -> { name, accept = {m = id}, response = {m = id}, system = {m = id} }
function snax.interface(name)
	local t = interfaces[name]
	if t then
		return t
	end
	t = { name = name, accept = {}, response = {}, system = {} }
	for _, m in ipairs(load_interface(name, interface_env)) do
		t[m[2]][m[3]] = m[1]
	end
	interfaces[name] = t
	return t
end

local function method_table(t, handle, kind, send)
	local ids = t[kind]
	local verb = kind == "accept" and "post" or "request"
	return setmetatable({}, {
		__index = function(_, m)
			local id = ids[m]
			if not id then
				error(string.format("%s %s:%s no exist", verb, t.name, m))
			end
			return function(...)
				return send(handle, "snax", id, ...)
			end
		end,
	})
end

local object_meta = {
	__tostring = function(o)
		return string.format("[%s:%x]", o.type, o.handle)
	end,
}

local bound = setmetatable({}, { __mode = "kv" })

function snax.bind(handle, name)
	local o = bound[handle]
	if o then
		assert(o.type == name, "snax.bind: the service has another type")
		return o
	end
	local t = snax.interface(name)
	o = setmetatable({
		type = name,
		handle = handle,
		post = method_table(t, handle, "accept", skynet.send),
		req = method_table(t, handle, "response", skynet.call),
	}, object_meta)
	bound[handle] = o
	return o
end

function snax.rawnewservice(name, ...)
	local t = snax.interface(name)
	local handle = skynet.newservice("snaxd", name)
	if t.system.init then
		skynet.call(handle, "snax", t.system.init, ...)
	end
	return handle
end

function snax.newservice(name, ...)
	return snax.bind(snax.rawnewservice(name, ...), name)
end

local function via_service_mgr(cmd, name, ...)
	return snax.bind(assert(skynet.call(".service", "lua", cmd, "snaxd", name, ...)), name)
end

function snax.uniqueservice(name, ...)
	return via_service_mgr("LAUNCH", name, ...)
end

function snax.globalservice(name, ...)
	return via_service_mgr("GLAUNCH", name, ...)
end

function snax.queryservice(name)
	return via_service_mgr("QUERY", name)
end

function snax.queryglobal(name)
	return via_service_mgr("GQUERY", name)
end

function snax.kill(obj, ...)
	skynet.call(obj.handle, "snax", snax.interface(obj.type).system.exit, ...)
end

function snax.self()
	return snax.bind(skynet.self(), SERVICE_NAME)
end

function snax.exit(...)
	snax.kill(snax.self(), ...)
end

local function raise_unless(ok, ...)
	if not ok then
		error((...))
	end
	return ...
end

-- Replace methods of a running service with the ones in `source` (a snax file);
-- returns what the patch's own `hotfix(...)` returns.
function snax.hotfix(obj, source, ...)
	local id = snax.interface(obj.type).system.hotfix
	return raise_unless(skynet.call(obj.handle, "snax", id, source, ...))
end

function snax.printf(fmt, ...)
	skynet.error(string.format(fmt, ...))
end

function snax.profile_info(obj)
	return skynet.call(obj.handle, "snax", snax.interface(obj.type).system.profile)
end

return snax
