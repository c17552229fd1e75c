-- skynet.sharetable: read-only tables loaded once per process and shared by every
-- service (one copy, held in Rust; see skynet.sharetable.core).
--
--   sharetable.loadfile(filename, ...)           run a Lua file (standard libraries
--                                                only, called with ...); it returns
--                                                the table
--   sharetable.loadstring(filename, source, ...) the same from source text
--   sharetable.loadtable(filename, t)
--   sharetable.query(filename) -> table or nil   (read-only; # pairs ipairs work)
--   sharetable.queryall([filenames]) -> { filename = table }
--   sharetable.update(filename, ...)             every table this service obtained
--                                                for these names shows the version
--                                                loaded last
--
-- Upstream shares real Lua tables through its patched Lua; stock Lua can't, so the
-- tables handed out are proxies over the shared data (see docs/COMPAT.md): they read
-- like tables, `next`/`rawget` see nothing, and `update` changes them in place where
-- upstream swapped references throughout the service.
local skynet = require "skynet"
local service = require "skynet.service"
local core = require "skynet.sharetable.core"

local function sharetable_service()
	local skynet = require "skynet"
	local core = require "skynet.sharetable.core"

	local files = {}	-- filename -> matrix (this service's hold on the current version)
	local CMD = {}

	local function replace(filename, m)
		local old = files[filename]
		files[filename] = m
		if old then
			old:close()	-- freed once no reader holds it
		end
	end

	function CMD.loadfile(filename, ...)
		replace(filename, core.matrix("@" .. filename, ...))
	end

	function CMD.loadstring(filename, source, ...)
		replace(filename, core.matrix(source, ...))
	end

	function CMD.loadtable(filename, msg, sz)
		local ok, t = pcall(skynet.unpack, msg, sz)
		skynet.trash(msg, sz)
		assert(ok, t)
		replace(filename, core.matrix(t))
	end

	-- a reference for the caller, which its table takes over
	local function handout(filename)
		local ptr = files[filename]:getptr()
		core.incref(ptr)
		return ptr
	end

	function CMD.query(filename)
		if files[filename] then
			return handout(filename)
		end
	end

	function CMD.queryall(filenames)
		local r = {}
		if filenames then
			for _, filename in ipairs(filenames) do
				if files[filename] then
					r[filename] = handout(filename)
				end
			end
		else
			for filename in pairs(files) do
				r[filename] = handout(filename)
			end
		end
		return r
	end

	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = CMD[cmd]
		if not f then
			error("sharetable: unknown command " .. tostring(cmd))
		end
		skynet.ret(skynet.pack(f(...)))
	end)

	skynet.info_func(function()
		local info = {}
		for filename, m in pairs(files) do
			info[filename] = { current = m:getptr(), size = m:size() }
		end
		return info
	end)
end

local sharetable = {}
local address
local tables = {}	-- filename -> { [table] = true } (weak keys): what this service holds

local function service_address()
	if not address then
		address = service.new("sharetable", sharetable_service)
	end
	return address
end

function sharetable.loadfile(filename, ...)
	skynet.call(service_address(), "lua", "loadfile", filename, ...)
end

function sharetable.loadstring(filename, source, ...)
	skynet.call(service_address(), "lua", "loadstring", filename, source, ...)
end

function sharetable.loadtable(filename, t)
	assert(type(t) == "table", "sharetable.loadtable needs a table")
	skynet.call(service_address(), "lua", "loadtable", filename, skynet.pack(t))
end

local function record(filename, ptr)
	local t = core.proxy(ptr, true)	-- takes over the reference taken for us
	local set = tables[filename]
	if not set then
		set = setmetatable({}, { __mode = "k" })
		tables[filename] = set
	end
	set[t] = true
	return t
end

function sharetable.query(filename)
	local ptr = skynet.call(service_address(), "lua", "query", filename)
	if ptr then
		return record(filename, ptr)
	end
end

function sharetable.queryall(filenames)
	local list = {}
	local ptrs = skynet.call(service_address(), "lua", "queryall", filenames)
	for filename, ptr in pairs(ptrs) do
		list[filename] = record(filename, ptr)
	end
	return list
end

function sharetable.update(...)
	for _, filename in ipairs { ... } do
		local set = tables[filename]
		if set and next(set) then
			local ptr = skynet.call(service_address(), "lua", "query", filename)
			if ptr then
				for t in pairs(set) do
					core.switch(t, ptr)
				end
				core.decref(ptr)
			end
		end
	end
end

return sharetable
