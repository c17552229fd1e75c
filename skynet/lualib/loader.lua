-- skynet-rs service loader (contract: core.md §6.3).
-- Called by snlua with the whole launch parameter string.
local params = ...

local args = {}
for word in string.gmatch(params, "%S+") do
	args[#args + 1] = word
end
SERVICE_NAME = args[1]

local main, pattern
local errors = {}
for pat in string.gmatch(LUA_SERVICE, "([^;]+);*") do
	local filename = string.gsub(pat, "?", SERVICE_NAME)
	local f, msg = loadfile(filename)
	if f then
		main, pattern = f, pat
		break
	end
	errors[#errors + 1] = msg
end
if not main then
	error(table.concat(errors, "\n"))
end

LUA_SERVICE = nil
package.path, LUA_PATH = LUA_PATH, nil
package.cpath, LUA_CPATH = LUA_CPATH, nil

-- A pattern such as "service/?/main.lua" means the service lives in its own
-- directory: make its modules requirable.
local service_dir = string.match(pattern, "^(.*/)[^/?]+$")
if service_dir then
	service_dir = string.gsub(service_dir, "?", SERVICE_NAME)
	package.path = service_dir .. "?.lua;" .. package.path
	SERVICE_PATH = service_dir
else
	SERVICE_PATH = string.match(pattern, "^(.*/).+$")
end

if LUA_PRELOAD then
	local preload = assert(loadfile(LUA_PRELOAD))
	preload(table.unpack(args))
	LUA_PRELOAD = nil
end

-- Yield-safe require (skynet/require.lua), loaded only when a handler coroutine first
-- requires a module that is not loaded yet.
do
	local stock_require = require
	local loaded = package.loaded
	local co_running = coroutine.running
	_G.require = function(name)
		local m = loaded[name]
		if m ~= nil then
			return m
		end
		local _, ismain = co_running()
		if ismain then
			return stock_require(name)
		end
		return (loaded["skynet.require"] or stock_require "skynet.require").require(name)
	end
end

main(select(2, table.unpack(args)))
