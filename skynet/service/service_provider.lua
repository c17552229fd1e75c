-- service_provider: the registry behind skynet.service (one per process, started with
-- uniqueservice). Per name: booting (with the callers waiting for it), running
-- (address), or failed (error text, raised to every later query).
--
-- lua commands: test(name) -> address | nil, true (booting) | nil; query(name) waits
-- for the boot; launch(name, code, ...) boots `name` once; close(name) forgets a
-- running `name` and returns its address (nil while booting or unknown).
local skynet = require "skynet"
require "skynet.manager"

local records = {}

local function record(name)
	local r = records[name]
	if not r then
		r = { waiting = {} }
		records[name] = r
	end
	return r
end

local function settle(r, ok, value)
	local waiting = r.waiting
	r.waiting = nil
	for _, resp in ipairs(waiting) do
		if ok then
			resp(true, value)
		else
			resp(false)
		end
	end
end

local command = {}

function command.test(name)
	local r = records[name]
	if not r then
		return skynet.ret(skynet.pack(nil))
	end
	if r.booting then
		return skynet.ret(skynet.pack(nil, true))
	end
	if r.address then
		return skynet.ret(skynet.pack(r.address))
	end
	if r.error then
		error(r.error)
	end
	skynet.ret(skynet.pack(nil))
end

function command.query(name)
	local r = record(name)
	if r.address then
		return skynet.ret(skynet.pack(r.address))
	end
	if r.error then
		error(r.error)
	end
	-- not there yet: answer once it boots (or fails)
	table.insert(r.waiting, skynet.response())
end

local function describe(...)
	local n = select("#", ...)
	if n == 0 then
		return nil
	end
	local parts = {}
	for i = 1, n do
		parts[i] = tostring((select(i, ...)))
	end
	return table.concat(parts, ",")
end

function command.launch(name, code, ...)
	local r = record(name)
	if r.address then
		return skynet.ret(skynet.pack(r.address))
	end
	if r.booting then
		return table.insert(r.waiting, skynet.response())
	end
	r.booting = true
	r.error = nil
	r.waiting = r.waiting or {}
	local ok, addr = pcall(skynet.newservice, "service_cell", name)
	local err
	if ok then
		ok, err = xpcall(skynet.call, debug.traceback, addr, "lua", "init", code, ...)
	else
		err, addr = addr, nil
	end
	r.booting = nil
	if ok then
		r.address = addr
		r.args = describe(...)
		r.time = skynet.time()
		settle(r, true, addr)
		return skynet.ret(skynet.pack(addr))
	end
	if addr then
		skynet.kill(addr)
	end
	r.error = tostring(err)
	settle(r, false)
	error(r.error)
end

function command.close(name)
	local r = records[name]
	if not r or r.booting then
		return skynet.ret(skynet.pack(nil))
	end
	records[name] = nil
	skynet.ret(skynet.pack(r.address))
end

skynet.info_func(function()
	local info = {}
	for name, r in pairs(records) do
		local key = r.address and skynet.address(r.address) or name
		info[key] = {
			name = name,
			init = r.args,
			status = r.booting and "booting" or (r.error and "error") or
				(r.waiting and #r.waiting > 0 and ("waiting(" .. #r.waiting .. ")")) or nil,
			time = r.time and os.date("%Y %b %d %T %z", math.floor(r.time)) or nil,
		}
	end
	return info
end)

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = command[cmd]
		if not f then
			error("service_provider: unknown command " .. tostring(cmd))
		end
		f(...)
	end)
end)
