-- skynet.sharedata: read-only data sets built once and shared by every service of the
-- process (one copy, held in Rust by skynet.sharedata.core; see sharedatad).
--
--   sharedata.new(name, value, ...)     value: a table, Lua source, "@file" or nil
--   sharedata.update(name, value, ...)  a new version: readers see it from their next
--                                       access on (their objects change in place)
--   sharedata.delete(name)
--   sharedata.query(name) -> object     a read-only table: index, #, pairs, ipairs
--   sharedata.deepcopy(name, ...) -> a plain Lua copy of object[...] (or a value)
--   sharedata.flush()                   lets go of versions nobody reads any more
local skynet = require "skynet"
local core = require "skynet.sharedata.core"

local sharedata = {}
local address
local objects = setmetatable({}, { __mode = "v" })	-- name -> root object

skynet.init(function()
	address = skynet.uniqueservice "sharedatad"
end)

-- Follows the versions of `name` for `obj` until the name is deleted.
local function follow(name, obj, ptr)
	while true do
		ptr = skynet.call(address, "lua", "monitor", name, ptr)
		if not ptr then
			break
		end
		core.switch(obj, ptr, true)	-- takes over the reference sharedatad took for us
	end
	if objects[name] == obj then
		objects[name] = nil
	end
end

function sharedata.query(name)
	local obj = objects[name]
	if obj then
		return obj
	end
	local ptr = skynet.call(address, "lua", "query", name)
	obj = objects[name]
	if obj then	-- another coroutine of ours got there first
		core.decref(ptr)
		return obj
	end
	obj = core.proxy(ptr, true)
	objects[name] = obj
	skynet.fork(follow, name, obj, ptr)
	return obj
end

function sharedata.new(name, v, ...)
	skynet.call(address, "lua", "new", name, v, ...)
end

function sharedata.update(name, v, ...)
	skynet.call(address, "lua", "update", name, v, ...)
end

function sharedata.delete(name)
	skynet.call(address, "lua", "delete", name)
end

function sharedata.flush()
	-- objects move to a new version as soon as it is announced; collecting lets the
	-- proxies nobody references go, and with them their hold on old versions
	collectgarbage()
end

function sharedata.deepcopy(name, ...)
	local obj = objects[name]
	if obj then
		return core.copy(obj, ...)
	end
	local ptr = skynet.call(address, "lua", "query", name)
	local ok, ret = pcall(core.copy, ptr, ...)
	core.decref(ptr)
	if not ok then
		error(ret, 0)
	end
	return ret
end

return sharedata
