-- Yield-safe `require` for skynet services (core.md §9.8, §9.12).
--
-- * In the service main chunk it is the stock `require`.
-- * From a handler coroutine the module body runs in the calling coroutine, so it
--   may block; other coroutines asking for the same module wait for it.
-- * `skynet.init(f)` called while a module is being loaded here runs f after that
--   module's body (the rest of skynet.init is in skynet.lua).
--
-- The loader installs a small `require` that only loads this file the first time a
-- module is required from a coroutine other than the main one.

local M = {}

local stock_require = require	-- (the loader's wrapper calls the stock one in the main coroutine)
local loaded = package.loaded
local co_running = coroutine.running
local pcall = pcall
local error = error
local format = string.format

local loading = {}         -- module name -> { co =, waiting = {}, inits = {}, parent = }
local current = setmetatable({}, { __mode = "k" })  -- coroutine -> innermost load record

local function find_loader(name)
	local msg = {}
	for _, searcher in ipairs(package.searchers) do
		local loader, extra = searcher(name)
		if type(loader) == "function" then
			return loader, extra
		elseif type(loader) == "string" then
			msg[#msg + 1] = loader
		end
	end
	error(format("module '%s' not found:%s", name, table.concat(msg)), 3)
end

local function run_module(rec, name, loader, extra)
	local ret = loader(name, extra)
	if ret ~= nil then
		loaded[name] = ret
	elseif loaded[name] == nil then
		loaded[name] = true
	end
	local inits = rec.inits
	for i = 1, #inits do
		inits[i]()
	end
end

function M.require(name)
	local m = loaded[name]
	if m ~= nil then
		return m
	end
	local co, ismain = co_running()
	if ismain then
		return stock_require(name)
	end
	local rec = loading[name]
	if rec then
		if rec.co == co then
			error "circular dependency"
		end
		local w = rec.waiting
		w[#w + 1] = co
		loaded.skynet.wait(co)
		m = loaded[name]
		if m == nil then
			error(format("require %s failed", name))
		end
		return m
	end
	local loader, extra = find_loader(name)
	rec = { co = co, waiting = {}, inits = {}, parent = current[co] }
	loading[name] = rec
	current[co] = rec
	local ok, err = pcall(run_module, rec, name, loader, extra)
	current[co] = rec.parent
	loading[name] = nil
	if not ok then
		loaded[name] = nil
	end
	local w = rec.waiting
	if #w > 0 then
		local skynet = loaded.skynet
		for i = 1, #w do
			skynet.wakeup(w[i])
		end
	end
	if not ok then
		error(err, 0)
	end
	return loaded[name], extra
end

-- skynet.init(f) from coroutine co: queue f after the module co is loading, if any.
function M.add_init(co, f)
	local rec = current[co]
	if rec then
		local inits = rec.inits
		inits[#inits + 1] = f
		return true
	end
	return false
end

function M.init(f)
	return loaded.skynet.init(f)
end

return M
