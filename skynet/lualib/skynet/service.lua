-- skynet.service: named singleton services whose code travels as a function.
--
--   service.new(name, mainfunc, ...) -> address: the first caller for `name` has
--     mainfunc (which may use no upvalue but _ENV) dumped and started in a fresh
--     `service_cell` with `...`; concurrent callers wait for that boot, later ones get
--     the running address.
--   service.query(name) -> address: waits until `name` has booted (raises if its boot
--     failed).
--   service.close(name) -> true if a running `name` was forgotten and killed.
--
-- Every process-wide record lives in the `service_provider` unique service; this
-- module only caches addresses per calling service.
local skynet = require "skynet"
require "skynet.manager" -- skynet.kill

local service = {}
local known = {}
local provider

local function provider_address()
	if not provider then
		provider = skynet.uniqueservice "service_provider"
	end
	return provider
end

-- The code is shipped as a string dump, so it must not capture anything but _ENV.
local function assert_portable(f)
	assert(type(f) == "function", "service.new: main function required")
	local nups = debug.getinfo(f, "u").nups
	assert(nups == 1 and debug.getupvalue(f, 1) == "_ENV",
		"service.new: the main function may use no upvalue but _ENV")
end

function service.new(name, mainfunc, ...)
	local p = provider_address()
	local addr, booting = skynet.call(p, "lua", "test", name)
	if not addr then
		if booting then
			addr = skynet.call(p, "lua", "query", name)
		else
			assert_portable(mainfunc)
			addr = skynet.call(p, "lua", "launch", name, string.dump(mainfunc), ...)
		end
	end
	known[name] = addr
	return addr
end

function service.query(name)
	local addr = known[name]
	if not addr then
		addr = skynet.call(provider_address(), "lua", "query", name)
		known[name] = addr
	end
	return addr
end

function service.close(name)
	local addr = skynet.call(provider_address(), "lua", "close", name)
	known[name] = nil
	if addr then
		skynet.kill(addr)
		return true
	end
	return false
end

return service
